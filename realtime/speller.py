"""Turn a noisy per-frame letter stream into spelled text.

:class:`ProbabilitySmoother` averages class probabilities over time; :class:`Speller` is the
state machine that commits letters:

- a letter is committed once it has been the (confident) reading for ``hold_s`` seconds;
- the same letter twice needs a *release* in between: the hand leaves, or another (or no
  confident) reading lasts, for at least ``release_s``;
- a change counts once it is on two of the last three frames: a single frame that differs (a
  dropped frame, a misread shape) is ignored at any frame rate, so a sparse stream neither types
  a held letter twice nor loses one;
- a space is added once when the hand has been gone for ``space_after_s`` (never twice, never
  at the start), also when that absence is a single frame held that long (a variable-frame-rate source).
"""
from __future__ import annotations

from collections import deque
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


_GONE = object()  # the observation 'no hand'
_START = object()  # no observation yet


@dataclass
class Speller:
    config: SpellerConfig = field(default_factory=SpellerConfig)
    text: str = ""

    def __post_init__(self):
        self._obs: object = _START  # what the frames show now: a letter, None (unsure) or _GONE
        self._since = 0.0  # ... since this time (its first frame)
        self._recent: deque = deque(maxlen=3)  # the last frames: (observation, time)
        self._last: str | None = None  # last committed letter
        self._released = True
        self._spaced = False

    def update(self, t: float, letter: str | None, confidence: float = 1.0, hand_present: bool = True,
               probs: np.ndarray | None = None) -> str | None:
        """Feed one frame; returns what was committed this frame ('A', ' ') or None. ``probs`` (the smoothed
        probabilities the letter was read from) serve a word list (:class:`realtime.lexicon.WordListSpeller`) only.

        A reading (or an absence) lasts from its first frame until the first frame of the next one, so durations
        come out right at any frame rate. A change counts once the new reading is on two of the last three frames:
        a single frame that differs (a misread shape, a hand missed once) is a glitch, ignored, whatever the frame
        rate. At 2 frames/s such a frame lasts 0.5 s, longer than ``release_s``: counted, it would type a held
        letter twice, or cut it in two halves too short to be typed. A change is dated from its first frame in
        that window, so no time is lost; until it is confirmed, the current reading counts as lasting only until
        the first frame that differed.
        """
        c = self.config
        if not hand_present:
            obs = _GONE
        else:
            obs = letter if (letter is not None and confidence >= c.min_confidence) else None
        self._recent.append((obs, t))
        committed = None
        if self._long_absence(t):  # one frame without a hand that lasted a space (a variable-frame-rate source)
            committed = self._tick(self._recent[-2][1])
            self._change(_GONE, self._recent[-2][1])
            if not self._spaced and self.text and not self.text.endswith(" "):
                self.text += " "
                self._spaced, committed = True, " "
            self._change(obs, t)
            return self._tick(t) or committed
        if self._obs is _START:
            self._obs, self._since = obs, t
        elif obs != self._obs and sum(o == obs for o, _ in self._recent) >= 2:
            # frames with the same time as the current reading's first (a source without timestamps) date the
            # change from there
            start = min((ft for o, ft in self._recent if o == obs and ft > self._since), default=self._since)
            committed = self._tick(start)  # the current reading, held until the change began
            self._change(obs, start)
        return self._tick(self._seen_until(t)) or committed

    def _long_absence(self, t: float) -> bool:
        """The frame before this one showed no hand, alone (its neighbours show one), and lasted ``space_after_s``
        until this frame: not a glitch to ignore, whatever the two-of-three rule says (a GIF or a stream that sends
        a frame only when something changes holds one blank frame for seconds)."""
        if len(self._recent) < 2 or self._obs is _GONE or self._obs is _START:
            return False
        gone, t_gone = self._recent[-2]
        before = self._recent[-3][0] if len(self._recent) >= 3 else None
        return (gone is _GONE and before is not _GONE and self._recent[-1][0] is not _GONE
                and t - t_gone >= self.config.space_after_s)

    def _seen_until(self, t: float) -> float:
        """Until when the current reading is known to last: now, or the first later frame that differed."""
        if self._recent[-1][0] == self._obs:
            return t
        after = None
        for o, ft in reversed(self._recent):
            if o == self._obs:
                break
            after = ft
        return max(after, self._since)

    def _change(self, obs, t: float) -> None:
        """The current observation ends at t and ``obs`` begins. An absence, an unsure shape or another letter that
        lasted ``release_s`` is a release: the last letter may be typed again."""
        if self._obs != self._last and t - self._since >= self.config.release_s:
            self._released = True
        if obs is not _GONE:
            self._spaced = False
        self._obs, self._since = obs, t

    def _tick(self, until: float) -> str | None:
        """Commit what the current observation, lasting until ``until``, calls for: its letter, or a space."""
        c = self.config
        held = until - self._since
        if self._obs is _GONE:  # a space once the hand is gone long enough, and on the last frames (no glitch)
            if (not self._spaced and self.text and not self.text.endswith(" ") and held >= c.space_after_s
                    and all(o is _GONE for o, _ in self._recent)):
                self.text += " "
                self._spaced = True
                return " "
            return None
        if self._obs is not None and self._obs is not _START and held >= c.hold_s and (
                self._obs != self._last or self._released):
            self.text += self._obs
            self._last, self._released = self._obs, False
            return self._obs
        return None

    def backspace(self) -> None:
        self.text = self.text[:-1]
        self._used_now()

    def clear(self) -> None:
        self.text = ""
        self._used_now()

    def resume(self, text: str) -> None:
        """Go on from ``text`` typed by another speller (the recognizer was rebuilt for another model or hand): its
        last letter counts as just typed, so the letter still held is not typed again until it is released."""
        self.text = text
        self._last = text[-1] if text and not text.endswith(" ") else None
        self._released = self._last is None

    def _used_now(self) -> None:
        """After a deletion, the letter still held counts as typed: it is typed again only after a release (the
        user deleted it because it was wrong, and is still showing it); any other letter types as usual."""
        held = self._obs if isinstance(self._obs, str) else None
        self._last, self._released = held, held is None

    def finish(self) -> None:
        """The input ended. Nothing is pending here (a letter is typed when held); the sequence reader corrects
        its last word with a lexicon."""
