"""How paper 000 (§3.1) combines generated and real images when training a classifier.

- REAL: real data only.
- PRETRAIN: train on the generated set, then fine-tune on the real set (``training.image_classifier``
  runs the two phases; nothing here).
- REGULARIZER (eq. 1-3): the real loss plus a weighted loss on generated data,

      L_reg(t) = L(C(x_r), y_r) + lambda(t) * L(C(x_g), y_g)                               (1)

  with a weight that moves with the epoch t from a starting value lambda_0 at a change rate gamma,
  either up towards 1 or down towards 0:

      lambda_inc(t) = 1 - (1 - lambda_0) * (1 - gamma)^t                                   (2)
      lambda_dec(t) = lambda_0 * (1 - gamma)^t                                             (3)

- MIXUP (eq. 4-5): each real sample (x_i, y_i) is mixed with a partner (x_j, y_j),

      x~ = a * x_i + (1 - a) * x_j,   y~ = a * y_i + (1 - a) * y_j,   a ~ Beta(alpha, alpha)  (4)
      the partner is drawn from the generated set with probability lambda(t), else from the real set  (5)

  so lambda sets how much of the mixing is synthetic. The paper tunes "a decay and growth factor" for both
  methods, so lambda(t) follows the same schedules (or stays constant) in both.

The text of the paper we have lost its typeset equations; (1), (4) and (5) follow its prose exactly, (2) and
(3) are our reading of "a starting value and a change rate" for an increasing and a decreasing weight,
written as geometric schedules so that both stay within [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

STRATEGIES = ("real", "pretrain", "regularizer", "mixup")
SCHEDULES = ("increasing", "decreasing", "constant")


@dataclass
class StrategyConfig:
    strategy: str = "real"
    pretrain_epochs: int = 10  # PRETRAIN: epochs on generated data before fine-tuning on real data
    schedule: str = "decreasing"  # lambda(t): eq. 2 (increasing), eq. 3 (decreasing) or constant
    lambda0: float = 0.5  # lambda at epoch 0: generated-loss weight (REGULARIZER), synthetic-partner odds (MIXUP)
    rate: float = 0.1  # lambda's change rate per epoch
    mixup_alpha: float = 0.4  # MIXUP: Beta(alpha, alpha) draws the mixing weight (eq. 4)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("lambda0", "rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.mixup_alpha <= 0:
            raise ValueError(f"mixup_alpha must be > 0, got {self.mixup_alpha}")
        if self.strategy == "pretrain" and self.pretrain_epochs < 1:
            raise ValueError("pretrain needs pretrain_epochs >= 1")

    @property
    def uses_generated(self) -> bool:
        return self.strategy != "real"


def regularizer_weight(epoch: int, lambda0: float, rate: float, schedule: str) -> float:
    """lambda(t) of eq. 2 (increasing) or eq. 3 (decreasing), t counted in epochs from 0; or lambda0 (constant)."""
    decay = (1.0 - rate) ** epoch
    if schedule == "increasing":
        return 1.0 - (1.0 - lambda0) * decay
    if schedule == "decreasing":
        return lambda0 * decay
    if schedule == "constant":
        return lambda0
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def regularized_loss(logits_real: torch.Tensor, y_real: torch.Tensor, logits_gen: torch.Tensor,
                     y_gen: torch.Tensor, weight: float) -> torch.Tensor:
    """Eq. 1: cross-entropy on the real batch plus ``weight`` times cross-entropy on the generated batch."""
    return F.cross_entropy(logits_real, y_real) + weight * F.cross_entropy(logits_gen, y_gen)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (rows summing to 1), the loss of mixed samples."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def mixup_batch(x_real: torch.Tensor, y_real: torch.Tensor, x_gen: torch.Tensor, y_gen: torch.Tensor,
                num_classes: int, synthetic_prob: float, alpha: float):
    """Eq. 4-5 for one batch: every real sample is mixed with a partner, generated with probability
    ``synthetic_prob`` (``x_gen[i]`` is sample i's candidate) or else another real sample of the batch.

    Returns the mixed inputs, their soft targets, and the mask of samples whose partner was generated.
    Random draws come from torch's global generator, which the trainer seeds.
    """
    n = len(x_real)
    if len(x_gen) < n:
        raise ValueError(f"need a generated candidate for each of the {n} real samples, got {len(x_gen)}")
    synthetic = (torch.rand(n) < synthetic_prob).to(x_real.device)  # draws on the CPU: seeded, portable
    perm = torch.randperm(n).to(x_real.device)
    a = torch.distributions.Beta(alpha, alpha).sample((n,)).to(x_real.device)
    onehot_real = F.one_hot(y_real, num_classes).float()
    onehot_partner = torch.where(synthetic[:, None], F.one_hot(y_gen[:n], num_classes).float(), onehot_real[perm])
    partner = torch.where(synthetic[:, None, None, None], x_gen[:n], x_real[perm])
    x = a[:, None, None, None] * x_real + (1 - a[:, None, None, None]) * partner
    y = a[:, None] * onehot_real + (1 - a[:, None]) * onehot_partner
    return x, y, synthetic
