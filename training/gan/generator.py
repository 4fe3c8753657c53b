"""The ResNet generator shared by both GANs (BigGAN/StudioGAN style), conditioned only through its norms.

z -> linear -> 4x4 -> one up-block per doubling (norm, ReLU, 2x nearest upsample, 3x3 conv, norm, ReLU,
3x3 conv, plus a 1x1 shortcut) -> norm, ReLU, 3x3 conv, tanh. ``cond="label"`` makes every norm a
class-conditional BatchNorm (ReACGAN); ``cond="pose"`` makes it SPADE on the pose maps. Spectral norm on
the convolutions, as the paper does for all its GANs.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from training.gan.normalization import SPADE, ConditionalBatchNorm2d


def _sn(module: nn.Module, use: bool) -> nn.Module:
    return spectral_norm(module) if use else module


def channel_widths(size: int, ch: int) -> list[int]:
    """Block widths from 4x4 up to ``size``: halving from 8*ch (64 px: 8,8,4,2,1 x ch; 32 px: 4,4,4 x ch)."""
    n = int(math.log2(size // 4))
    if 4 * 2 ** n != size or n < 1:
        raise ValueError(f"image size must be 4 x a power of two (8, 16, 32, 64, 128), got {size}")
    if n <= 3:
        return [4 * ch] * (n + 1)
    return [min(8, 2 ** (n - 1 - i)) * ch for i in range(-1, n)]


class _Norm(nn.Module):
    def __init__(self, features: int, cond: str, num_classes: int, pose_channels: int, spade_hidden: int):
        super().__init__()
        self.norm = (ConditionalBatchNorm2d(features, num_classes) if cond == "label"
                     else SPADE(features, pose_channels, spade_hidden))

    def forward(self, x, c):
        return self.norm(x, c)


class GenBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm_args: dict, sn: bool):
        super().__init__()
        self.norm1 = _Norm(cin, **norm_args)
        self.conv1 = _sn(nn.Conv2d(cin, cout, 3, padding=1), sn)
        self.norm2 = _Norm(cout, **norm_args)
        self.conv2 = _sn(nn.Conv2d(cout, cout, 3, padding=1), sn)
        self.shortcut = _sn(nn.Conv2d(cin, cout, 1), sn)
        self.act = nn.ReLU()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x, c):
        h = self.up(self.act(self.norm1(x, c)))
        h = self.conv2(self.act(self.norm2(self.conv1(h), c)))
        return h + self.shortcut(self.up(x))


class Generator(nn.Module):
    def __init__(self, size: int = 64, z_dim: int = 128, ch: int = 64, cond: str = "label", num_classes: int = 0,
                 pose_channels: int = 0, spade_hidden: int = 64, sn: bool = True):
        super().__init__()
        if cond not in ("label", "pose"):
            raise ValueError(f"cond must be 'label' or 'pose', got {cond!r}")
        if cond == "label" and num_classes < 1:
            raise ValueError("a label-conditioned generator needs num_classes")
        if cond == "pose" and pose_channels < 1:
            raise ValueError("a pose-conditioned generator needs pose_channels")
        self.size, self.z_dim, self.cond = size, z_dim, cond
        widths = channel_widths(size, ch)
        norm_args = dict(cond=cond, num_classes=num_classes, pose_channels=pose_channels, spade_hidden=spade_hidden)
        self.linear = _sn(nn.Linear(z_dim, widths[0] * 16), sn)
        self.blocks = nn.ModuleList(GenBlock(a, b, norm_args, sn) for a, b in zip(widths[:-1], widths[1:]))
        self.norm = _Norm(widths[-1], **norm_args)
        self.to_rgb = _sn(nn.Conv2d(widths[-1], 3, 3, padding=1), sn)
        self.act = nn.ReLU()
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight if not hasattr(m, "weight_orig") else m.weight_orig)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``cond``: (B,) class indices for ReACGAN, (B, C, S, S) pose maps for SPADE. Output in -1..1."""
        h = self.linear(z).view(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return torch.tanh(self.to_rgb(self.act(self.norm(h, cond))))
