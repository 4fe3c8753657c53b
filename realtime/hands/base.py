"""The contract every hand pipeline keeps, and what they share.

A hands stage is called on a BGR frame and returns the hands it found, in that frame's pixels::

    hands = stage(frame_bgr)     # list[Hand] (a palm detector alone: list[HandBox])
    stage.close()

A tracker (video) also has ``reset()``, which forgets the hands it is tracking (a new clip, a cut). Static
detectors (photos) find hands in each image on its own, through the upscale-and-pad cascade of
:func:`static_views` with the settings of :class:`StaticSettings` (part of the keypoint cache's key).
:class:`Redetect` wraps a tracker with a second look when it keeps finding nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from realtime.hands.hand import Hand, HandBox


@runtime_checkable
class HandsStage(Protocol):
    """Frame in, hands out (see the module's docstring)."""

    def __call__(self, frame_bgr: np.ndarray) -> list: ...

    def close(self) -> None: ...


# (padding as a fraction of the longer side, OpenCV border mode name) tried in order; the first view that finds a
# hand wins. The last two (wider black borders) only ever look at photos the first four missed: tight hand crops
# (lis's 64x64 photos) where the hand fills the frame and the palm detector, trained on people at arm's length, sees
# no palm. They read new photos (eval, calibration from photos, held-out people); the keypoint models learn only from
# hands the first four found (TRAINING_VIEWS), because learning from the tight crops' landmarks cost the LIS webcam
# person 3.6 points over three seeds (README, Results).
FOUR_VIEWS = ((0.5, "constant"), (0.25, "constant"), (0.25, "replicate"), (0.0, "constant"))
TRAINING_VIEWS = len(FOUR_VIEWS)
DEFAULT_VIEWS = FOUR_VIEWS + ((0.75, "constant"), (1.0, "constant"))


@dataclass(frozen=True)
class StaticSettings:
    """Everything that changes what the static detector returns (part of the keypoint cache key)."""

    model: str = "full"
    min_detection: float = 0.3
    min_side: int = 256  # smaller images are upscaled to this before padding
    views: tuple = DEFAULT_VIEWS
    max_hands: int = 1

    def to_dict(self) -> dict:
        return {"model": self.model, "min_detection": self.min_detection, "min_side": self.min_side,
                "views": [list(v) for v in self.views], "max_hands": self.max_hands, "mediapipe": "0.10.21"}


MAX_UPSCALED_SIDE = 2048  # photos' cascade: upscaling stops where the long side reaches this


def static_views(image_bgr: np.ndarray, min_side: int, views=DEFAULT_VIEWS):
    """The cascade for photos: yields (RGB view, scale, pad). A view's pixel p maps back to the photo's
    (p - pad) / scale. Small photos are upscaled to ``min_side`` first, then padded as ``views`` say."""
    import cv2

    h, w = image_bgr.shape[:2]
    scale = min_side / min(h, w) if min(h, w) < min_side else 1.0
    # a thin strip (a 1920x40 banner) must not be blown up to gigabytes: never upscale past MAX_UPSCALED_SIDE
    scale = min(scale, max(1.0, MAX_UPSCALED_SIDE / max(h, w)))
    base = cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1.0 else image_bgr
    base = cv2.cvtColor(base, cv2.COLOR_BGR2RGB)
    for pad_frac, border in views:
        pad = int(round(pad_frac * max(base.shape[:2])))
        mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
        yield (cv2.copyMakeBorder(base, pad, pad, pad, pad, mode, value=0) if pad else base), scale, pad


def redetect_settings(max_hands: int) -> "StaticSettings":
    """What :class:`Redetect` looks again with: the full model, on the whole frame as it is (no padding views)."""
    return StaticSettings(model="full", min_detection=0.5, views=((0.0, "constant"),), max_hands=max_hands)


class RedetectSchedule:
    """When a second detector should look again: after ``after`` frames in a row without a hand, then every ``every``
    frames until a hand is back. :class:`Redetect` follows it for one camera; several streams keep one each and
    look at every stream that is due in one batch (:meth:`realtime.streams.MultiStreamRecognizer.redetect`)."""

    def __init__(self, after: int = 5, every: int = 5):
        if after < 1 or every < 1:
            raise ValueError(f"re-detection needs after >= 1 and every >= 1 frames, got {after}, {every}")
        self.after, self.every = after, every
        self.missed = 0
        self.redetections = 0  # frames where the second detector found what the tracker did not

    def due(self, hands: list[Hand]) -> bool:
        """Count a frame where the tracker found ``hands``; True when the second detector should look at this frame
        (then give what it finds to :meth:`accept`)."""
        if hands:
            self.missed = 0
            return False
        self.missed += 1
        return self.missed >= self.after and (self.missed - self.after) % self.every == 0

    def accept(self, hands: list[Hand]) -> list[Hand]:
        """What the second detector found on a frame :meth:`due` chose (the count starts again when it found one)."""
        if hands:
            self.redetections += 1
            self.missed = 0
        return hands


class Redetect(RedetectSchedule):
    """Hands stage around a tracker: when the tracker has found no hand for ``after`` frames in a row, a second,
    independent detector (the pipeline's full model on the whole frame) looks again every ``every``
    frames until a hand is back.

    Why: in tracking mode the lite model can keep missing a hand the full model finds (a soak test lost 12 of
    186 held letters that way: dropped letters, stray spaces). Counting frames, not seconds, keeps a video's
    result independent of machine speed. The extra cost falls only on frames with no hand.
    """

    def __init__(self, tracker, fallback=None, after: int = 5, every: int = 5, build_fallback=None):
        super().__init__(after, every)
        if (fallback is None) == (build_fallback is None):
            raise ValueError("re-detection needs a fallback stage or a function that builds one, not both")
        self.tracker = tracker
        # built on first need when given as a builder: most sessions never miss a hand long enough
        self._fallback, self._build_fallback = fallback, build_fallback
        self.backend = getattr(tracker, "backend", "mediapipe")

    @property
    def fallback(self):
        if self._fallback is None:
            self._fallback = self._build_fallback()
        return self._fallback

    def __call__(self, frame_bgr: np.ndarray) -> list[Hand]:
        hands = self.tracker(frame_bgr)
        return self.accept(self.fallback(frame_bgr)) if self.due(hands) else hands

    def __getattr__(self, name):  # the tracker's own attributes (model, providers, ...) stay visible
        if name == "tracker":  # not set yet (during construction or unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.tracker, name)

    def close(self) -> None:
        for stage in (self.tracker, self._fallback):
            close = getattr(stage, "close", None)
            if close:
                close()


def static_palm_boxes(detect_rgb, image_bgr: np.ndarray, min_side: int) -> list[HandBox]:
    """The first view of the upscale-and-pad cascade where ``detect_rgb`` finds a palm, mapped back to the photo."""
    h, w = image_bgr.shape[:2]
    for view, scale, pad in static_views(image_bgr, min_side):
        boxes = detect_rgb(view)
        if boxes:
            return [HandBox(((b.center[0] - pad) / scale, (b.center[1] - pad) / scale), b.side / scale, b.rotation,
                            b.score, (w, h)) for b in boxes]
    return []
