"""Hand-keypoint features: the one definition used by training and by the live loop.

Every function takes landmarks as an array of shape ``(..., 21, 3)`` in *pixel* coordinates
(x right, y down, z MediaPipe's relative depth scaled by the image width), so the same code
serves one hand in the live loop and a whole cached dataset in training.

Parts (concatenated by :class:`FeatureSpec`):

- ``j2s_polar`` -- paper 003 (Joins2Sign) eq. 1-2, exactly: radius over the image diagonal,
  ``arctan(dy/dx) / 2pi``. Depends on the image size and folds opposite directions together
  (arctan, not atan2), as the paper wrote it.
- ``polar_scaled`` -- the scale-invariant variant: radius over the hand size, and the full-circle
  angle ``atan2(dy, dx) / 2pi`` so that a finger pointing down (ASL P, Q) differs from one
  pointing up (K, G).
- ``cart_scaled`` -- wrist-relative x, y, z over the hand size: the Cartesian twin of
  ``polar_scaled`` without the angle's wrap-around at +-pi.

Left hands are mirrored first (``canonical=True``) so that one model serves both hands.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

NUM_JOINTS = 21
WRIST = 0
PALM_BASES = (5, 9, 13, 17)  # index, middle, ring, pinky MCP joints
FINGERS = {
    "thumb": (1, 2, 3, 4),
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}
HAND_CONNECTIONS = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
    (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)


def _check(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"landmarks must have shape (..., 21, 3), got {lm.shape}")
    return lm


def canonicalize(landmarks: np.ndarray, is_left: np.ndarray | bool, image_width: np.ndarray | float) -> np.ndarray:
    """Mirror left hands about the image's vertical centre line (x -> W - x) so they look like right hands."""
    lm = _check(landmarks).copy()
    is_left = np.asarray(is_left, dtype=bool)
    width = np.asarray(image_width, dtype=np.float64)
    mirrored_x = width[..., None] - lm[..., 0] if width.ndim else width - lm[..., 0]
    lm[..., 0] = np.where(is_left[..., None], mirrored_x, lm[..., 0])
    return lm


def wrist_relative(landmarks: np.ndarray) -> np.ndarray:
    """x, y, z of every joint minus the wrist's: translation invariant, shape (..., 21, 3)."""
    lm = _check(landmarks)
    return lm - lm[..., WRIST : WRIST + 1, :]


def hand_size(landmarks: np.ndarray) -> np.ndarray:
    """Mean 3-D distance from the wrist to the four finger-base (MCP) joints, in pixels.

    The palm is rigid, so this scale barely changes between handshapes (unlike the bounding
    box), and using z keeps it stable when the palm turns away from the camera.
    """
    rel = wrist_relative(landmarks)
    return np.linalg.norm(rel[..., PALM_BASES, :], axis=-1).mean(axis=-1)


def j2s_polar(
    landmarks: np.ndarray,
    image_size: np.ndarray | Sequence[float],
    wrist_present: np.ndarray | bool = True,
    mean_wrist: Sequence[float] | None = None,
) -> np.ndarray:
    """Paper 003 eq. 1-2, shape (..., 21, 2): ``r = |p_i - p_1| / sqrt(W^2 + H^2)``,
    ``theta = arctan((y_i - y_1) / (x_i - x_1)) / 2pi``.

    ``image_size`` is (width, height). Where the wrist was not detected (``wrist_present`` false)
    the training set's mean wrist is used instead; ``mean_wrist`` is given as a fraction of
    (width, height) so one value serves images of any size. dx = 0 gives +-pi/2 (the limit of
    arctan); the wrist itself (dx = dy = 0) gets angle 0.
    """
    lm = _check(landmarks)
    size = np.asarray(image_size, dtype=np.float64)
    wrist = lm[..., WRIST, :2]
    if mean_wrist is not None:
        fallback = np.asarray(mean_wrist, dtype=np.float64) * size
        wrist = np.where(np.asarray(wrist_present, dtype=bool)[..., None], wrist, fallback)
    d = lm[..., :2] - wrist[..., None, :]
    dx, dy = d[..., 0], d[..., 1]
    diagonal = np.sqrt((size[..., 0] ** 2 + size[..., 1] ** 2))
    r = np.sqrt(dx**2 + dy**2) / np.asarray(diagonal)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(dx == 0, np.sign(dy) * (np.pi / 2), np.arctan(dy / np.where(dx == 0, 1.0, dx)))
    return np.stack([r, theta / (2 * np.pi)], axis=-1)


def _scale(landmarks: np.ndarray, size: np.ndarray | None) -> np.ndarray:
    """:func:`hand_size`, floored at 1e-6 (``size``: already computed, as FeatureSpec.compute passes it to each part)."""
    return np.maximum(hand_size(landmarks) if size is None else size, 1e-6)


def polar_scaled(landmarks: np.ndarray, size: np.ndarray | None = None) -> np.ndarray:
    """Scale-invariant polar coordinates, shape (..., 21, 2): radius over :func:`hand_size`, atan2 angle over 2pi."""
    rel = wrist_relative(landmarks)
    size = _scale(landmarks, size)[..., None]
    r = np.linalg.norm(rel[..., :2], axis=-1) / size
    theta = np.arctan2(rel[..., 1], rel[..., 0]) / (2 * np.pi)
    return np.stack([r, theta], axis=-1)


def cart_scaled(landmarks: np.ndarray, size: np.ndarray | None = None) -> np.ndarray:
    """Wrist-relative x, y, z over :func:`hand_size`, shape (..., 21, 3)."""
    rel = wrist_relative(landmarks)
    return rel / _scale(landmarks, size)[..., None, None]


TIPS = (4, 8, 12, 16, 20)
TIP_PAIRS = tuple((a, b) for i, a in enumerate(TIPS) for b in TIPS[i + 1:])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


# every finger's bones, wrist -> MCP -> PIP -> DIP -> tip, finger by finger; and consecutive bone pairs (the bends)
_CHAINS = [(WRIST,) + joints for joints in FINGERS.values()]
_BONE_FROM = np.array([c[k] for c in _CHAINS for k in range(4)])
_BONE_TO = np.array([c[k + 1] for c in _CHAINS for k in range(4)])
_BEND_A = np.array([4 * f + k for f in range(5) for k in range(3)])
_TIP_A, _TIP_B = np.array([a for a, _ in TIP_PAIRS]), np.array([b for _, b in TIP_PAIRS])


def hand_geometry(landmarks: np.ndarray, size: np.ndarray | None = None) -> np.ndarray:
    """View-robust shape descriptors, shape (..., 28): how the hand is bent, not where it points.

    - 15 joint bends: cosine between consecutive bones of each finger (wrist->MCP->PIP->DIP->tip), in 3-D;
    - 10 distances between fingertip pairs over the hand size (3-D), e.g. thumb touching index (ASL F, O);
    - 3 components of the palm's unit normal (wrist, index MCP, pinky MCP) in the canonical frame,
      which tells palm-forward from palm-sideways (ASL G/H vs U).

    Vectorised over all bones at once: it runs on every live frame (all stages after the landmarks share 1 ms).
    """
    lm = _check(landmarks)
    bones = _unit(lm[..., _BONE_TO, :] - lm[..., _BONE_FROM, :])
    bends = (bones[..., _BEND_A, :] * bones[..., _BEND_A + 1, :]).sum(-1)
    size = _scale(lm, size)[..., None]
    dists = np.linalg.norm(lm[..., _TIP_A, :] - lm[..., _TIP_B, :], axis=-1) / size
    normal = _unit(np.cross(lm[..., 5, :] - lm[..., WRIST, :], lm[..., 17, :] - lm[..., WRIST, :]))
    return np.concatenate([bends, dists, normal], axis=-1)


# part name -> (channels per joint, or None for a whole-hand part, total size)
PARTS = {"j2s_polar": (2, 42), "polar_scaled": (2, 42), "cart_scaled": (3, 63), "geometry": (None, 28)}


# which landmarks a model reads: "image" (pixels of the frame) or "world" (MediaPipe's metric world landmarks, which
# only the MediaPipe hand pipeline passes on; an experiment of issue 14, see docs/results-world.md)
POINTS = ("image", "world")


@dataclass(frozen=True)
class FeatureSpec:
    """Which feature parts a model consumes, in order; saved in every model's manifest.

    The feature vector is laid out joint-major inside each part: part p, joint j, channel c.
    """

    parts: tuple[str, ...] = ("polar_scaled", "cart_scaled")
    canonical: bool = True
    mean_wrist: tuple[float, float] | None = None  # only used by j2s_polar
    points: str = "image"  # one of POINTS

    def __post_init__(self):
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"unknown feature part(s) {unknown}; choose from {sorted(PARTS)}")
        if self.points not in POINTS:
            raise ValueError(f"points must be one of {POINTS}, got {self.points!r}")

    @property
    def dim(self) -> int:
        return sum(PARTS[p][1] for p in self.parts)

    def columns_for_joints(self, joints: Sequence[int]) -> np.ndarray:
        """Feature columns that belong to the given joints (used to drop fingers in augmentation)."""
        cols, offset = [], 0
        for part in self.parts:
            ch, size = PARTS[part]
            if ch is not None:
                for j in joints:
                    cols.extend(range(offset + j * ch, offset + (j + 1) * ch))
            offset += size
        return np.asarray(cols, dtype=np.int64)

    def compute(
        self,
        landmarks: np.ndarray,
        is_left: np.ndarray | bool = False,
        image_size: np.ndarray | Sequence[float] = (1.0, 1.0),
        wrist_present: np.ndarray | bool = True,
    ) -> np.ndarray:
        """Landmarks (..., 21, 3) in pixels -> features (..., dim) float32.

        ``wrist_present`` matters only to ``j2s_polar`` (a regressor may miss the wrist; MediaPipe never does).
        """
        lm = _check(landmarks)
        size = np.broadcast_to(np.asarray(image_size, dtype=np.float64), lm.shape[:-2] + (2,))
        if self.canonical:
            lm = canonicalize(lm, is_left, size[..., 0])
        out = []
        scale = hand_size(lm) if set(self.parts) - {"j2s_polar"} else None  # once for every part that divides by it
        for part in self.parts:
            if part == "j2s_polar":
                f = j2s_polar(lm, size, wrist_present, mean_wrist=self.mean_wrist)
            elif part == "polar_scaled":
                f = polar_scaled(lm, scale)
            elif part == "geometry":
                f = hand_geometry(lm, scale)
            else:
                f = cart_scaled(lm, scale)
            out.append(f.reshape(lm.shape[:-2] + (PARTS[part][1],)))  # explicit size: works for empty batches
        return np.concatenate(out, axis=-1).astype(np.float32)

    def to_dict(self) -> dict:
        return {"parts": list(self.parts), "canonical": self.canonical,
                "mean_wrist": list(self.mean_wrist) if self.mean_wrist else None, "dim": self.dim,
                **({"points": self.points} if self.points != "image" else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        spec = cls(parts=tuple(d["parts"]), canonical=bool(d.get("canonical", True)),
                   mean_wrist=tuple(d["mean_wrist"]) if d.get("mean_wrist") else None,
                   points=str(d.get("points", "image")))
        if "dim" in d and int(d["dim"]) != spec.dim:
            raise ValueError(f"feature spec says dim {d['dim']} but its parts give {spec.dim}")
        return spec


@dataclass
class FeatureExtractor:
    """Per-frame stage: one detected hand -> one feature vector (1, dim)."""

    spec: FeatureSpec = field(default_factory=FeatureSpec)

    def __call__(self, hand, frame=None) -> np.ndarray:
        """``frame`` is unused: the signature every features stage shares (the J2S cropper needs it)."""
        return self.many([hand])

    def many(self, hands: list) -> np.ndarray:
        """Several hands (one per camera) -> (N, dim): one vectorised computation instead of N calls, the same
        features (the many-stream step calls it once; per hand it cost 0.23 ms on the GPU machine's CPU)."""
        if not hands:
            return np.zeros((0, self.spec.dim), np.float32)
        left = np.array([h.is_left for h in hands])
        if self.spec.points == "world":
            if any(h.world is None for h in hands):
                raise ValueError("this model reads MediaPipe's world landmarks, which only --hands mediapipe passes on")
            return self.spec.compute(np.stack([h.world for h in hands]), left, np.ones((len(hands), 2)))
        return self.spec.compute(np.stack([h.landmarks for h in hands]), left,
                                 np.array([h.image_size for h in hands], dtype=np.float64))
