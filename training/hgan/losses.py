"""H-GAN's losses: least squares over every output scale (the paper's eq. for multi-scale discriminators), cycle
consistency and identity (CycleGAN's L1 losses)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan_d(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Discriminator: sum over output scales of 1/2 (D(real) - 1)^2 + 1/2 D(fake)^2 (each a mean over patches)."""
    return sum(0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean() for r, f in zip(real, fake))


def lsgan_g(fake: list[torch.Tensor]) -> torch.Tensor:
    """Generator: sum over output scales of 1/2 (D(G(x)) - 1)^2."""
    return sum(0.5 * ((f - 1) ** 2).mean() for f in fake)


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """|G_s(G_r(s)) - s|_1 (and the same for the real side)."""
    return F.l1_loss(reconstructed, original)


def identity_loss(same: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """|G_r(r) - r|_1: a generator given an image of its own output domain should leave it alone."""
    return F.l1_loss(same, original)
