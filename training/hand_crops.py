"""Square hand crops of a whole dataset, with their keypoints in the crop: the GANs' and image classifiers' data.

``crop="hand"`` frames every image by its cached MediaPipe landmarks (``realtime.crops``, the same framing as
live use) and keeps only images where a hand was found. ``crop="whole"`` squashes the whole image to a square
(datasets that are hand crops already and where detection often fails, e.g. gloved ``lsa16``); keypoints are
then given where detected. Decoding thousands of photos takes minutes, so the crops are cached as one ``.npz``
per dataset, size and framing, keyed by the keypoint cache's key (dataset content and detector settings).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.crops import CROP_SCALE, SquareBox, crop_square
from realtime.hands.base import StaticSettings
from realtime.images import ImageFolder, read_image
from training.io import atomic_savez
from training.keypoints import cache_key, default_cache_dir, load_keypoints

CROPS = ("hand", "whole")


@dataclass
class HandCrops:
    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    keypoints: np.ndarray  # (N, 21, 2) float32, fractions of the crop; NaN where no hand was detected
    has_pose: np.ndarray  # (N,) bool
    labels: np.ndarray  # (N,) str
    signers: np.ndarray  # (N,) str
    rel: np.ndarray  # (N,) str, path inside the dataset
    dataset: str
    data_sha256: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "HandCrops":
        idx = np.asarray(idx)
        return HandCrops(self.images[idx], self.keypoints[idx], self.has_pose[idx], self.labels[idx],
                         self.signers[idx], self.rel[idx], self.dataset, self.data_sha256)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))


def images_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir) if cache_dir else default_cache_dir().parent / "images"


def hand_crops_path(dataset: ImageFolder, size: int, crop: str = "hand", scale: float = CROP_SCALE,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """The crop cache file of a dataset: named by the keypoint cache's key, because the crops follow the landmarks
    (a changed dataset or detector setting never reuses stale crops)."""
    key = cache_key(dataset, StaticSettings())
    return images_cache_dir(cache_dir) / f"{dataset.name}-{key}-{crop}{size}-s{scale:g}.npz"


def load_hand_crops(root: str | os.PathLike, size: int = 64, crop: str = "hand", scale: float = CROP_SCALE,
                    labels: list[str] | None = None, cache_dir: str | os.PathLike | None = None,
                    progress: bool = True) -> HandCrops:
    """All images of the dataset at ``root`` as ``size`` x ``size`` RGB crops (see the module docstring)."""
    import cv2

    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    ds = ImageFolder(root)
    kp = load_keypoints(root, cache_dir=cache_dir, progress=progress)
    path = hand_crops_path(ds, size, crop, scale, cache_dir)
    if path.exists():
        with np.load(path) as z:
            images, keypoints, ok = z["images"], z["keypoints"], z["ok"]
    else:
        images = np.zeros((len(ds), size, size, 3), np.uint8)
        keypoints = np.full((len(ds), 21, 2), np.nan, np.float32)
        ok = np.zeros(len(ds), bool)
        for i, s in enumerate(tqdm(ds.samples, desc=f"crop {ds.name} {crop}{size}", unit="img", disable=not progress)):
            detected = bool(kp.detected[i])
            if crop == "hand" and not detected:
                continue
            img = read_image(s.path)
            if img is None:
                continue
            h, w = img.shape[:2]
            if crop == "hand":
                box = SquareBox.around(kp.landmarks[i, :, :2], scale)
                out = crop_square(img, box, size)
                keypoints[i] = box.to_crop(kp.landmarks[i, :, :2])
            else:
                interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_CUBIC
                out = cv2.resize(img, (size, size), interpolation=interp)
                if detected:
                    keypoints[i] = kp.landmarks[i, :, :2] / np.array([w, h], np.float32)
            images[i] = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
            ok[i] = True
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_savez(path, images=images, keypoints=keypoints, ok=ok)
    keep = ok.copy()
    if labels is not None:
        unknown = sorted(set(labels) - set(kp.labels.tolist()))
        if unknown:
            raise ValueError(f"labels not in {ds.name}: {unknown}; it has {sorted(set(kp.labels.tolist()))}")
        keep &= np.isin(kp.labels, labels)
    idx = np.flatnonzero(keep)
    has_pose = ~np.isnan(keypoints[idx, 0, 0])
    return HandCrops(images[idx], keypoints[idx], has_pose, kp.labels[idx].astype(str), kp.signers[idx].astype(str),
                     kp.rel[idx].astype(str), ds.name, ds.content_hash())
