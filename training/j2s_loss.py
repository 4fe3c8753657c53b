"""J2S losses (paper 003, section 4.4): masked L2 regression, cross-entropy, and two ways to weigh them.

- :func:`masked_l2` -- eq. 3: squared distance summed over the keypoints present in the ground
  truth (missing ones excluded), averaged over the images that have any.
- :class:`StaticWeighting` -- eq. 4: ``alpha * L_reg + (1 - alpha) * L_cls``.
- :class:`DynamicWeighting` -- eq. 5-6: each loss weighted by ``(L_B / L_0) ** alpha``, where
  ``L_B`` is the current batch's loss and ``L_0`` the loss of the epoch's first batch. The
  weights are constants for back-propagation (computed from detached values). One deviation:
  a weight is capped at ``MAX_DYNAMIC_WEIGHT``. Late in training the first batch's loss can be
  small, a later batch's spike then multiplies the step several times over, which raises the
  loss further: our uncapped run on the random split diverged to NaN at epoch 17 of 40.
"""
from __future__ import annotations

import torch

MAX_DYNAMIC_WEIGHT = 3.0


def masked_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred, target (B, 21, 2); mask (B, 21) bool. NaNs in missing targets are ignored."""
    target = torch.where(mask[..., None], target, pred.detach())  # missing points contribute exactly 0
    per_point = ((pred - target) ** 2).sum(-1) * mask
    images = mask.any(dim=1).sum().clamp(min=1)
    return per_point.sum() / images


class StaticWeighting:
    name = "static"

    def __init__(self, alpha: float):
        self.alpha = alpha

    def start_epoch(self) -> None:
        pass

    def weights(self, l_reg: torch.Tensor, l_cls: torch.Tensor) -> tuple[float, float]:
        return self.alpha, 1.0 - self.alpha

    def __call__(self, l_reg: torch.Tensor, l_cls: torch.Tensor) -> torch.Tensor:
        w_reg, w_cls = self.weights(l_reg, l_cls)
        return w_reg * l_reg + w_cls * l_cls


class DynamicWeighting(StaticWeighting):
    name = "dynamic"

    def __init__(self, alpha: float):
        super().__init__(alpha)
        self.first: tuple[float, float] | None = None

    def start_epoch(self) -> None:
        self.first = None

    def weights(self, l_reg: torch.Tensor, l_cls: torch.Tensor) -> tuple[float, float]:
        reg, cls = float(l_reg.detach()), float(l_cls.detach())
        if self.first is None:
            self.first = (reg, cls)
        reg0, cls0 = self.first
        w_reg = (reg / max(reg0, 1e-12)) ** self.alpha
        w_cls = (cls / max(cls0, 1e-12)) ** self.alpha
        return min(w_reg, MAX_DYNAMIC_WEIGHT), min(w_cls, MAX_DYNAMIC_WEIGHT)


def make_weighting(kind: str, alpha: float) -> StaticWeighting:
    if kind == "static":
        return StaticWeighting(alpha)
    if kind == "dynamic":
        return DynamicWeighting(alpha)
    raise ValueError(f"loss weighting must be static or dynamic, got {kind!r}")
