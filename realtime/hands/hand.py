"""What every hand pipeline returns: :class:`Hand` (21 landmarks) or, from a palm detector alone, :class:`HandBox`
(the hand's rotated region of interest); and :func:`pick_hand`, which of the hands found is spelling."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WHICH_HAND = ("any", "right", "left")  # --hand: which of the hands found spells ("any": the largest)
MODEL_SIZES = ("lite", "full")  # MediaPipe's two hand-model sizes, which every pipeline runs
MAX_HANDS = 4  # the most hands a pipeline tracks at once (--max-hands)


@dataclass
class Hand:
    """One detected hand: 21 landmarks in pixels of the image it was found in."""

    landmarks: np.ndarray  # (21, 3) float32: x, y in pixels, z relative depth * image width
    handedness: str  # "Left" or "Right" (physical hand, unmirrored image)
    score: float  # handedness classification score
    image_size: tuple[int, int]  # (width, height)
    # (21, 3) float32 metres about the hand's centre (MediaPipe's world landmarks: camera-independent 3-D), where the
    # pipeline gives them (MediaPipe's own); None elsewhere
    world: np.ndarray | None = None
    # the keypoint classifier's probabilities, where the hands stage read the letter itself on the device
    # (realtime.torch_reader: --hands torch --backend torch); None elsewhere
    reading: np.ndarray | None = None

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


@dataclass
class HandBox:
    """A hand's region of interest from the palm detector, in pixels of the frame it was found in."""

    center: tuple[float, float]
    side: float  # the ROI square's side
    rotation: float  # radians, MediaPipe's convention (the hand's up direction)
    score: float  # palm detection score
    image_size: tuple[int, int]  # (width, height)
    handedness: str = "unknown"  # a palm detector cannot tell

    @property
    def area(self) -> float:
        return self.side * self.side


def pick_hand(hands: list[Hand], which: str = "any") -> Hand | None:
    """The hand that spells: 'right', 'left', or 'any' (the largest in view)."""
    if which not in WHICH_HAND:
        raise ValueError(f"hand must be any, left or right, got {which!r}")
    if which != "any":
        hands = [h for h in hands if h.handedness.lower() == which]
    return max(hands, key=lambda h: h.area) if hands else None
