"""Hand poses drawn as images for SPADE (paper 000 §4.2): one channel per keypoint or one per bone.

Keypoints are fractions of the crop (0..1), as ``training.hand_crops`` stores them. Drawing happens in torch
on the batch's device, so no map is ever stored: ``heatmaps`` puts an isotropic Gaussian at each of the 21
keypoints, ``bones`` a soft line of the same width along each of the hand's 20 bones.
"""
from __future__ import annotations

import torch

# The hand's kinematic tree: wrist to each finger base, then along the finger (MediaPipe's numbering).
BONES = ((0, 1), (1, 2), (2, 3), (3, 4),
         (0, 5), (5, 6), (6, 7), (7, 8),
         (0, 9), (9, 10), (10, 11), (11, 12),
         (0, 13), (13, 14), (14, 15), (15, 16),
         (0, 17), (17, 18), (18, 19), (19, 20))
POSE_KINDS = {"keypoints": 21, "bones": len(BONES)}


def _pixel_grid(size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    c = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size  # pixel centres as fractions
    return c[None, None, :, None], c[None, None, None, :]  # y (1,1,S,1), x (1,1,1,S)


def heatmaps(keypoints: torch.Tensor, size: int, sigma: float = 1.5) -> torch.Tensor:
    """(B, 21, 2) fractions -> (B, 21, S, S) in 0..1, peak 1 at each keypoint; ``sigma`` in pixels."""
    y, x = _pixel_grid(size, keypoints.device)
    kx, ky = keypoints[..., 0, None, None], keypoints[..., 1, None, None]
    d2 = ((x - kx) ** 2 + (y - ky) ** 2) * size ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


def bones(keypoints: torch.Tensor, size: int, sigma: float = 1.5) -> torch.Tensor:
    """(B, 21, 2) fractions -> (B, 20, S, S): a Gaussian of the distance to each bone's segment."""
    y, x = _pixel_grid(size, keypoints.device)
    a = keypoints[:, [i for i, _ in BONES]]  # (B, 20, 2)
    b = keypoints[:, [j for _, j in BONES]]
    ab = b - a
    ax, ay = a[..., 0, None, None], a[..., 1, None, None]
    abx, aby = ab[..., 0, None, None], ab[..., 1, None, None]
    t = ((x - ax) * abx + (y - ay) * aby) / (abx ** 2 + aby ** 2).clamp_min(1e-12)
    t = t.clamp(0, 1)
    d2 = ((x - ax - t * abx) ** 2 + (y - ay - t * aby) ** 2) * size ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


def pose_maps(keypoints: torch.Tensor, size: int, kind: str, sigma: float | None = None) -> torch.Tensor:
    """Maps of ``kind`` ('keypoints' or 'bones'); ``sigma`` defaults to 1/32 of the image side, at least 1 px."""
    if kind not in POSE_KINDS:
        raise ValueError(f"pose kind must be one of {tuple(POSE_KINDS)}, got {kind!r}")
    sigma = sigma if sigma is not None else max(size / 32, 1.0)
    return heatmaps(keypoints, size, sigma) if kind == "keypoints" else bones(keypoints, size, sigma)


def flip_keypoints(keypoints: torch.Tensor) -> torch.Tensor:
    """The keypoints of the horizontally mirrored crop."""
    out = keypoints.clone()
    out[..., 0] = 1 - out[..., 0]
    return out
