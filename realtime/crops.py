"""Square hand crops from landmarks: the framing shared by the GAN data, the image classifier and live use.

A crop is the landmarks' bounding box, squared on its long side and enlarged by ``scale`` (landmarks sit on
joint centres, so the fingertips and the heel of the palm lie outside their box). Parts of the square
outside the frame replicate the border, so a hand at the edge keeps its size and position in the crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_SCALE = 1.5


@dataclass(frozen=True)
class SquareBox:
    cx: float
    cy: float
    side: float

    @classmethod
    def around(cls, landmarks_xy: np.ndarray, scale: float = CROP_SCALE, min_side: float = 8.0) -> "SquareBox":
        xy = np.asarray(landmarks_xy, np.float32)[:, :2]
        lo, hi = xy.min(0), xy.max(0)
        c = (lo + hi) / 2
        return cls(float(c[0]), float(c[1]), max(float((hi - lo).max()) * scale, min_side))

    def affine(self, size: int) -> np.ndarray:
        """2x3 matrix from frame pixels to crop pixels (pixel centres map to pixel centres)."""
        s = size / self.side
        x0, y0 = self.cx - self.side / 2, self.cy - self.side / 2
        return np.array([[s, 0, -x0 * s + 0.5 * s - 0.5], [0, s, -y0 * s + 0.5 * s - 0.5]], np.float32)

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        """Frame pixel coordinates -> fractions of the crop (0..1)."""
        xy = np.asarray(xy, np.float32)[..., :2]
        return (xy - np.array([self.cx - self.side / 2, self.cy - self.side / 2], np.float32)) / self.side


def crop_square(image: np.ndarray, box: SquareBox, size: int) -> np.ndarray:
    """The box resampled to ``size`` x ``size``: area-averaged when shrinking, so small crops do not alias."""
    factor = box.side / size
    if factor > 1.5:  # warp at about the box's own resolution, then average down
        inner = int(min(round(box.side), size * 8))
        out = cv2.warpAffine(image, box.affine(inner), (inner, inner), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(image, box.affine(size), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def crops_to_input(crops_rgb: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB crops -> (N, 3, S, S) float32 in -1..1, as the image classifiers take them."""
    return (np.asarray(crops_rgb, np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0).copy()


def input_to_crops(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`crops_to_input`: (N, 3, S, S) in -1..1 -> (N, S, S, 3) uint8 RGB."""
    return np.clip(np.rint((np.asarray(x).transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255).astype(np.uint8)
