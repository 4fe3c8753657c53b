"""Hand detection and landmarks with MediaPipe Hands (0.10.21, the models bundled in its wheel).

Two stages with one output type, :class:`Hand`:

- :class:`HandTracker` -- the live loop's stage: MediaPipe's tracking mode, where the palm
  detector runs only when the landmark model loses the hand.
- :class:`StaticHandDetector` -- one independent photo at a time (datasets, ``eval``). Small
  or tightly cropped photos are upscaled and padded first; if no hand is found it retries a
  few other views (a cascade) and maps the landmarks back to the original pixels.

Handedness: MediaPipe labels hands as if the image were mirrored (a selfie view). We report
the *physical* hand for an unmirrored image (camera frames and dataset photos as stored), so
``mirrored_input=True`` must be passed for selfie-flipped images.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class Hand:
    """One detected hand: 21 landmarks in pixels of the image it was found in."""

    landmarks: np.ndarray  # (21, 3) float32: x, y in pixels, z relative depth * image width
    handedness: str  # "Left" or "Right" (physical hand, unmirrored image)
    score: float  # handedness classification score
    image_size: tuple[int, int]  # (width, height)

    @property
    def is_left(self) -> bool:
        return self.handedness == "Left"

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the landmarks in pixels."""
        xy = self.landmarks[:, :2]
        return (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    def to_dict(self) -> dict:
        return {"handedness": self.handedness, "score": round(self.score, 4),
                "landmarks": np.round(self.landmarks, 2).tolist()}


def _mp_hands():
    try:
        import mediapipe as mp
    except ImportError as e:  # pragma: no cover - dependency declared in pyproject
        raise RuntimeError("mediapipe is not installed: pip install 'mediapipe==0.10.21'") from e
    return mp.solutions.hands


def _to_hands(results, width: int, height: int, mirrored_input: bool, scale: float = 1.0, offset: float = 0.0,
              orig_size: tuple[int, int] | None = None) -> list[Hand]:
    """MediaPipe results (normalised to the processed view) -> Hands in original pixels."""
    hands: list[Hand] = []
    if not results.multi_hand_landmarks:
        return hands
    for lms, cls in zip(results.multi_hand_landmarks, results.multi_handedness):
        arr = np.array([(p.x * width, p.y * height, p.z * width) for p in lms.landmark], dtype=np.float32)
        arr = (arr - np.array([offset, offset, 0.0], dtype=np.float32)) / scale
        label = cls.classification[0].label
        if not mirrored_input:
            label = "Left" if label == "Right" else "Right"
        hands.append(Hand(arr, label, float(cls.classification[0].score), orig_size or (width, height)))
    return hands


class HandTracker:
    """Live stage: BGR frame -> list of :class:`Hand` (MediaPipe tracking mode)."""

    def __init__(self, model: str = "lite", max_hands: int = 2, min_detection: float = 0.5,
                 min_tracking: float = 0.5, mirrored_input: bool = False):
        if model not in ("lite", "full"):
            raise ValueError(f"hand model must be 'lite' or 'full', got {model!r}")
        self.model, self.mirrored_input, self.max_hands = model, mirrored_input, max_hands
        self._hands = _mp_hands().Hands(
            static_image_mode=False, max_num_hands=max_hands, model_complexity=0 if model == "lite" else 1,
            min_detection_confidence=min_detection, min_tracking_confidence=min_tracking)

    def __call__(self, frame_bgr: np.ndarray) -> list[Hand]:
        import cv2

        h, w = frame_bgr.shape[:2]
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        return _to_hands(self._hands.process(rgb), w, h, self.mirrored_input)

    def close(self) -> None:
        self._hands.close()


class Redetect:
    """Hands stage around a tracker: when the tracker has found no hand for ``after`` frames in a row, a second,
    independent detector (MediaPipe's full model on the whole frame, by default) looks again every ``every``
    frames until a hand is back.

    Why: in tracking mode the lite model can keep missing a hand the full model finds (a soak test lost 12 of
    186 held letters that way: dropped letters, stray spaces). Counting frames, not seconds, keeps a video's
    result independent of machine speed. The extra cost falls only on frames with no hand.
    """

    def __init__(self, tracker, fallback=None, after: int = 5, every: int = 5):
        if after < 1 or every < 1:
            raise ValueError(f"re-detection needs after >= 1 and every >= 1 frames, got {after}, {every}")
        self.tracker, self.after, self.every = tracker, after, every
        self._fallback = fallback  # built on first need: most sessions never miss a hand long enough
        self.missed = 0
        self.redetections = 0  # frames where the fallback found what the tracker did not
        self.backend = getattr(tracker, "backend", "mediapipe")

    @property
    def fallback(self):
        if self._fallback is None:
            self._fallback = StaticHandDetector(redetect_settings(getattr(self.tracker, "max_hands", 2)),
                                                mirrored_input=getattr(self.tracker, "mirrored_input", False))
        return self._fallback

    def __call__(self, frame_bgr: np.ndarray) -> list[Hand]:
        hands = self.tracker(frame_bgr)
        if hands:
            self.missed = 0
            return hands
        self.missed += 1
        if self.missed >= self.after and (self.missed - self.after) % self.every == 0:
            hands = self.fallback(frame_bgr)
            if hands:
                self.redetections += 1
                self.missed = 0
        return hands

    def __getattr__(self, name):  # the tracker's own attributes (model, providers, ...) stay visible
        if name == "tracker":  # not set yet (during construction or unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.tracker, name)

    def close(self) -> None:
        for stage in (self.tracker, self._fallback):
            close = getattr(stage, "close", None)
            if close:
                close()


def redetect_settings(max_hands: int) -> "StaticSettings":
    """What :class:`Redetect` looks again with: the full model, on the whole frame as it is (no padding views)."""
    return StaticSettings(model="full", min_detection=0.5, views=((0.0, "constant"),), max_hands=max_hands)


# (padding as a fraction of the longer side, OpenCV border mode name) tried in order.
DEFAULT_VIEWS = ((0.5, "constant"), (0.25, "constant"), (0.25, "replicate"), (0.0, "constant"))


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


def static_views(image_bgr: np.ndarray, min_side: int, views=DEFAULT_VIEWS):
    """The cascade for photos: yields (RGB view, scale, pad). A view's pixel p maps back to the photo's
    (p - pad) / scale. Small photos are upscaled to ``min_side`` first, then padded as ``views`` say."""
    import cv2

    h, w = image_bgr.shape[:2]
    scale = min_side / min(h, w) if min(h, w) < min_side else 1.0
    base = cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1.0 else image_bgr
    base = cv2.cvtColor(base, cv2.COLOR_BGR2RGB)
    for pad_frac, border in views:
        pad = int(round(pad_frac * max(base.shape[:2])))
        mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
        yield (cv2.copyMakeBorder(base, pad, pad, pad, pad, mode, value=0) if pad else base), scale, pad


class StaticHandDetector:
    """Photo -> list of :class:`Hand` (static-image mode, upscale + pad cascade)."""

    def __init__(self, settings: StaticSettings = StaticSettings(), mirrored_input: bool = False):
        self.settings, self.mirrored_input = settings, mirrored_input
        self._hands = _mp_hands().Hands(
            static_image_mode=True, max_num_hands=settings.max_hands,
            model_complexity=0 if settings.model == "lite" else 1, min_detection_confidence=settings.min_detection)

    def __call__(self, image_bgr: np.ndarray) -> list[Hand]:
        h, w = image_bgr.shape[:2]
        for view, scale, pad in static_views(image_bgr, self.settings.min_side, self.settings.views):
            vh, vw = view.shape[:2]
            hands = _to_hands(self._hands.process(view), vw, vh, self.mirrored_input, scale=scale,
                              offset=pad, orig_size=(w, h))
            if hands:
                return hands
        return []

    def close(self) -> None:
        self._hands.close()


def pick_hand(hands: list[Hand], which: str = "any") -> Hand | None:
    """The hand that spells: 'right', 'left', or 'any' (the largest in view)."""
    if which not in ("any", "left", "right"):
        raise ValueError(f"hand must be any, left or right, got {which!r}")
    if which != "any":
        hands = [h for h in hands if h.handedness.lower() == which]
    return max(hands, key=lambda h: h.area) if hands else None
