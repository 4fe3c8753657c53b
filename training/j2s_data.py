"""Images and keypoint targets for J2S: crops in memory, MediaPipe landmarks as ground truth.

The ground truth is the cached MediaPipe extraction (the paper used OpenPose), in the crop's
pixel frame, stored as fractions of the crop (0..1). Images where MediaPipe found no hand keep
a mask of zeros: they still train the classifier, never the regressor.

Decoding 11,000 JPEGs takes a while, so the resized crops are cached as one ``.npy`` per
dataset and size, keyed by the dataset's content hash.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.images import ImageFolder, read_image
from training.keypoints import default_cache_dir, load_keypoints

MEAN = (0.5, 0.5, 0.5)  # inputs are RGB in 0..1, then (x - MEAN) / STD: the manifest records both
STD = (0.25, 0.25, 0.25)


@dataclass
class CropSet:
    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    keypoints: np.ndarray  # (N, 21, 2) float32, fractions of the crop; NaN where undetected
    mask: np.ndarray  # (N, 21) bool: keypoint present in the ground truth
    labels: np.ndarray  # (N,) str
    signers: np.ndarray  # (N,) str
    rel: np.ndarray  # (N,) str
    readable: np.ndarray  # (N,) bool
    data_sha256: str

    def __len__(self) -> int:
        return len(self.labels)


def _load_images(ds: ImageFolder, size: int, cache_dir: Path, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    key = ds.content_hash()[:16]
    path = cache_dir / f"{ds.name}-{key}-rgb{size}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["images"], z["readable"]
    images = np.zeros((len(ds), size, size, 3), np.uint8)
    readable = np.zeros(len(ds), bool)
    for i, s in enumerate(tqdm(ds.samples, desc=f"decode {ds.name}", unit="img", disable=not progress)):
        img = read_image(s.path)
        if img is None:
            continue
        interp = cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_CUBIC
        images[i] = cv2.cvtColor(cv2.resize(img, (size, size), interpolation=interp), cv2.COLOR_BGR2RGB)
        readable[i] = True
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, images=images, readable=readable)
    os.replace(tmp, path)
    return images, readable


def load_crops(root: str | os.PathLike, labels: list[str], size: int = 64, cache_dir: str | os.PathLike | None = None,
               progress: bool = True) -> CropSet:
    """The dataset's images resized to ``size`` x ``size`` (RGB) and their MediaPipe keypoints as targets.

    Images are squashed to a square if they are not one (``lis`` crops are all 64x64).
    """
    ds = ImageFolder(root)
    kp = load_keypoints(root, cache_dir=cache_dir, progress=progress)
    images, readable = _load_images(ds, size, Path(cache_dir) if cache_dir else default_cache_dir().parent / "images",
                                    progress)
    keep = np.flatnonzero(np.isin(kp.labels, labels))
    wh = np.maximum(kp.image_size[keep].astype(np.float32), 1)[:, None, :]
    target = kp.landmarks[keep, :, :2] / wh
    mask = np.repeat((kp.detected[keep] & readable[keep])[:, None], 21, axis=1)
    return CropSet(images[keep], target.astype(np.float32), mask, kp.labels[keep], kp.signers[keep], kp.rel[keep],
                   readable[keep], ds.content_hash())


def normalise(images_u8: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32, the network's input."""
    x = images_u8.astype(np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@dataclass
class CropAugment:
    """Random similarity transform of crop and keypoints together, horizontal flip, brightness and contrast.

    Off in the paper's recipe; on for the shipped real-time model, whose crops come from a palm
    detector and a webcam rather than from the dataset's own cropping.
    """

    scale: float = 0.0  # zoom factor range 1 +- scale
    shift: float = 0.0  # translation, fraction of the crop
    rotate_deg: float = 0.0
    hflip: float = 0.0  # probability (a mirrored right hand is a left hand signing the same letter)
    brightness: float = 0.0  # additive, fraction of full range
    contrast: float = 0.0  # multiplicative range 1 +- contrast

    @property
    def active(self) -> bool:
        return any((self.scale, self.shift, self.rotate_deg, self.hflip, self.brightness, self.contrast))

    def __call__(self, images: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        if not self.active:
            return images, keypoints
        import cv2

        from realtime.j2s import pixel_centre_affine

        n, s = images.shape[0], images.shape[1]
        out_img = np.empty_like(images)
        out_kp = keypoints.copy()
        for i in range(n):
            k = rng.uniform(1 - self.scale, 1 + self.scale)
            a = np.deg2rad(rng.uniform(-self.rotate_deg, self.rotate_deg))
            t = rng.uniform(-self.shift, self.shift, 2) * s
            flip = rng.random() < self.hflip
            c = s / 2.0
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * k
            if flip:
                rot = rot @ np.array([[-1.0, 0.0], [0.0, 1.0]])
            m = np.concatenate([rot, (np.array([c, c]) + t - rot @ np.array([c, c]))[:, None]], axis=1)
            out_img[i] = cv2.warpAffine(images[i], pixel_centre_affine(m), (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            px = keypoints[i] * s
            out_kp[i] = (px @ m[:, :2].T + m[:, 2]) / s
        if self.brightness or self.contrast:
            b = rng.uniform(-self.brightness, self.brightness, (n, 1, 1, 1)) * 255
            g = rng.uniform(1 - self.contrast, 1 + self.contrast, (n, 1, 1, 1))
            mean = out_img.reshape(n, -1).mean(1)[:, None, None, None]
            out_img = np.clip((out_img - mean) * g + mean + b, 0, 255).astype(np.uint8)
        return out_img, out_kp.astype(np.float32)
