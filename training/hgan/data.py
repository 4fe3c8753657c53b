"""H-GAN's two domains: real hand crops of a dataset, and hands rendered from its keypoints (turned, mirrored).

The rendered set is kept in the run folder (``synthetic.npz``) with a key of everything that made it, so a resumed
run reuses it and a changed setting renders anew.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.hgan.config import HGANConfig
from training.hgan.render import RenderSettings, render_hands, source_poses
from training.io import atomic_savez


@dataclass
class SyntheticHands:
    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    masks: np.ndarray  # (N, S, S) uint8, 255 on the hand
    keypoints: np.ndarray  # (N, 21, 2) float32, fractions of the crop
    landmarks: np.ndarray  # (N, 21, 3) float32, the posed 3-D keypoints they were drawn from
    labels: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.labels)


def real_crops(config: HGANConfig, datasets=None, cache_dir=None, progress: bool = True):
    """The real domain: the dataset's hand crops, minus the held-out signers."""
    from training.gan.trainer import resolve_dataset
    from training.hand_crops import load_hand_crops

    crops = load_hand_crops(resolve_dataset(config.dataset, datasets), config.size, "hand", labels=config.labels,
                            cache_dir=cache_dir, progress=progress)
    keep = ~np.isin(crops.signers, config.exclude_signers)
    if not keep.any():
        raise ValueError(f"no real crops left in {config.dataset} after leaving out {config.exclude_signers}")
    return crops.subset(np.flatnonzero(keep))


def pose_pool(config: HGANConfig, datasets=None, cache_dir=None, progress: bool = True):
    """(landmarks (N, 21, 3), labels (N,)) of every detected hand of the pose datasets, minus held-out signers."""
    from training.gan.trainer import resolve_dataset
    from training.keypoints import load_keypoints

    lms, labels = [], []
    for name in config.pose_datasets or [config.dataset]:
        kp = load_keypoints(resolve_dataset(name, datasets), cache_dir=cache_dir, progress=progress)
        keep = kp.detected & ~np.isin(kp.signers, config.exclude_signers)
        if config.labels is not None:
            keep &= np.isin(kp.labels, config.labels)
        lms.append(kp.landmarks[keep])
        labels.append(kp.labels[keep].astype(str))
    lm, lab = np.concatenate(lms), np.concatenate(labels)
    if not len(lab):
        raise ValueError("no detected hands to draw synthetic poses from")
    return lm, lab


def render_settings(config: HGANConfig) -> RenderSettings:
    return RenderSettings(size=config.size, background=config.background)


def synthetic_key(config: HGANConfig, pool_labels: np.ndarray, pool_landmarks: np.ndarray) -> str:
    fields = {k: getattr(config, k) for k in ("synthetic", "yaw", "pitch", "roll", "mirror", "background", "size",
                                               "seed", "labels", "exclude_signers", "pose_datasets", "dataset")}
    h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    h.update(np.ascontiguousarray(pool_landmarks).tobytes())
    h.update("\n".join(pool_labels.tolist()).encode())
    return h.hexdigest()[:16]


def synthetic_hands(config: HGANConfig, out: str | os.PathLike, datasets=None, cache_dir=None,
                    progress: bool = True) -> SyntheticHands:
    """The rendered domain for ``config``, from ``out/synthetic.npz`` when it was made with the same settings."""
    lm_pool, lab_pool = pose_pool(config, datasets, cache_dir, progress)
    key = synthetic_key(config, lab_pool, lm_pool)
    path = Path(out) / "synthetic.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return SyntheticHands(z["images"], z["masks"], z["keypoints"], z["landmarks"], z["labels"])
    lm, labels = source_poses(lm_pool, lab_pool, config.synthetic, config.seed, config.yaw, config.pitch,
                              config.roll, config.mirror)
    r = render_hands(lm, config.seed, render_settings(config), progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(path, key=np.array(key), images=r["images"], masks=r["masks"], keypoints=r["keypoints"],
                 landmarks=lm, labels=labels.astype(str))
    return SyntheticHands(r["images"], r["masks"], r["keypoints"], lm, labels.astype(str))
