"""Turn a noisy per-frame letter stream into spelled text.

:class:`ProbabilitySmoother` averages class probabilities over time; :class:`Speller` is the
state machine that commits letters:

- a letter is committed once it has been the (confident) reading for ``hold_s`` seconds;
- the same letter twice needs a *release* in between: the hand leaves, or another (or no
  confident) reading lasts, for at least ``release_s`` (a single dropped frame is not a release);
- a space is added once when the hand has been gone for ``space_after_s`` (never twice, never
  at the start).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class ProbabilitySmoother:
    """Exponential moving average of class probabilities with a time constant (frame-rate independent)."""

    def __init__(self, time_constant_s: float = 0.15):
        self.tau = time_constant_s
        self._p: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._p = self._t = None

    def __call__(self, probs: np.ndarray, t: float) -> np.ndarray:
        if self._p is None or self.tau <= 0 or self._p.shape != probs.shape:
            self._p = probs.astype(np.float64)
        else:
            a = 1.0 - np.exp(-max(t - self._t, 0.0) / self.tau)
            self._p = (1 - a) * self._p + a * probs
        self._t = t
        return self._p


@dataclass
class SpellerConfig:
    hold_s: float = 0.5  # a letter must be stable this long to be committed
    release_s: float = 0.2  # another / no confident reading this long re-arms the same letter
    space_after_s: float = 1.5  # hand gone this long adds one space
    min_confidence: float = 0.6  # below this the reading counts as 'unsure'


@dataclass
class Speller:
    config: SpellerConfig = field(default_factory=SpellerConfig)
    text: str = ""

    def __post_init__(self):
        self._candidate: object = object()  # a sentinel: no reading yet
        self._since = 0.0
        self._last: str | None = None  # last committed letter
        self._released = True
        self._gone_since: float | None = None
        self._spaced = False

    def update(self, t: float, letter: str | None, confidence: float = 1.0, hand_present: bool = True) -> str | None:
        """Feed one frame; returns what was committed this frame ('A', ' ') or None.

        A reading (or an absence) lasts from its first frame until the frame that ends it, so
        durations come out right at any frame rate.
        """
        c = self.config
        if not hand_present:
            if self._gone_since is None:
                self._end_reading(t)
                self._gone_since = t
            if (not self._spaced and self.text and not self.text.endswith(" ")
                    and t - self._gone_since >= c.space_after_s):
                self.text += " "
                self._spaced = True
                return " "
            return None
        if self._gone_since is not None:  # the hand is back: the absence ends here
            if t - self._gone_since >= c.release_s:
                self._released = True
            self._gone_since = None
            self._candidate, self._since = object(), t  # no reading carries over a gap
        self._spaced = False
        reading = letter if (letter is not None and confidence >= c.min_confidence) else None
        if reading != self._candidate:
            self._end_reading(t)
            self._candidate, self._since = reading, t
        held = t - self._since
        if reading is not None and held >= c.hold_s and (reading != self._last or self._released):
            self.text += reading
            self._last, self._released = reading, False
            return reading
        return None

    def _end_reading(self, t: float) -> None:
        """The current reading ends at t: another letter, or an unsure shape, that lasted release_s is a release."""
        if self._candidate != self._last and t - self._since >= self.config.release_s:
            self._released = True

    def backspace(self) -> None:
        self.text = self.text[:-1]
        self._last, self._released = None, True

    def clear(self) -> None:
        self.text = ""
        self._last, self._released = None, True
