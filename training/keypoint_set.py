"""The keypoints of a dataset, row by row: what the keypoint cache holds for photos and what the landmark-only
datasets are read into (:mod:`training.keypoints`, :mod:`training.landmark_sets`)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from realtime.features import POINTS


@dataclass
class KeypointSet:
    """Landmarks of a whole dataset, aligned with its samples. Undetected rows hold NaN."""

    dataset: np.ndarray  # (N,) str: dataset name
    rel: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) str
    signers: np.ndarray  # (N,) str
    source_splits: np.ndarray  # (N,) str
    landmarks: np.ndarray  # (N, 21, 3) float32
    is_left: np.ndarray  # (N,) bool
    hand_score: np.ndarray  # (N,) float32
    detected: np.ndarray  # (N,) bool
    readable: np.ndarray  # (N,) bool
    image_size: np.ndarray  # (N, 2) int32 (width, height)
    # (N, 21, 3) float32 MediaPipe world landmarks (metres); NaN where no hand was found and for the landmark-only
    # datasets, which recorded image landmarks only
    world: np.ndarray | None = None
    # (N,) int8: which view of the photo cascade (realtime.hands.DEFAULT_VIEWS) found the hand, -1 where none did;
    # 0 for the landmark-only datasets, which recorded the frame itself
    view: np.ndarray | None = None

    FIELDS = ("dataset", "rel", "labels", "signers", "source_splits", "landmarks", "is_left", "hand_score",
              "detected", "readable", "image_size", "world", "view")

    def __post_init__(self):
        if self.world is None:
            self.world = np.full((len(self.labels), 21, 3), np.nan, np.float32)
        if self.view is None:
            self.view = np.where(self.detected, 0, -1).astype(np.int8)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "KeypointSet":
        return KeypointSet(**{f: getattr(self, f)[idx] for f in self.FIELDS})

    @classmethod
    def concat(cls, sets: list["KeypointSet"]) -> "KeypointSet":
        return cls(**{f: np.concatenate([getattr(s, f) for s in sets]) for f in cls.FIELDS})

    def with_points(self, points: str) -> "KeypointSet":
        """The set as a model reading ``points`` sees it: ``image`` as it is; ``world``: the world landmarks in place
        of the image ones (unit image size, so that every feature stays wrist-relative and scale-free), and rows
        without world landmarks counted as no hand found."""
        if points not in POINTS:
            raise ValueError(f"points must be one of {POINTS}, got {points!r}")
        if points == "image":
            return self
        has = np.isfinite(self.world).all(axis=(1, 2))
        return replace(self, landmarks=self.world, detected=self.detected & has,
                       image_size=np.ones_like(self.image_size))

    def found_by_first(self, views: int) -> "KeypointSet":
        """The set as a photo cascade of only its first ``views`` views would have read it: hands that a later view
        found count as not found (the cascade stops at the first view that finds a hand, so the rest are the same)."""
        later = self.view >= views
        return replace(self, detected=self.detected & ~later, view=np.where(later, -1, self.view).astype(np.int8),
                       landmarks=np.where(later[:, None, None], np.nan, self.landmarks).astype(np.float32),
                       world=np.where(later[:, None, None], np.nan, self.world).astype(np.float32))

    def features(self, spec, rows=None) -> np.ndarray:
        """The model inputs of ``rows`` (all by default): ``spec`` (a :class:`realtime.features.FeatureSpec`) computed
        on the points it reads, so that no caller can feed a world-landmark model image points."""
        kp = self.with_points(spec.points)
        rows = slice(None) if rows is None else rows
        return spec.compute(kp.landmarks[rows], kp.is_left[rows], kp.image_size[rows].astype(np.float64))

    def groups(self) -> np.ndarray:
        """'dataset/signer' per row: the unit that balanced sampling and signer splits work on."""
        return np.char.add(np.char.add(self.dataset.astype(str), "/"), self.signers.astype(str))

    def summary(self) -> str:
        n = len(self)
        return (f"{n} images, {int((~self.readable).sum())} unreadable, {int(self.detected.sum())} with a hand "
                f"({self.detected.mean():.1%})" if n else "0 images")
