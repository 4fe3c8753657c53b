"""Adversarial and conditioning losses: hinge (both models) and ReACGAN's data-to-data cross-entropy.

D2D-CE (Kang et al. 2021, eq. 7): embeddings ``f`` and class proxies ``v`` on the unit sphere;
for sample i with label y_i,

    L_i = -log( exp(a_i) / (exp(a_i) + sum_{j in N(i)} exp(b_ij)) ),
    a_i  = min(f_i . v_{y_i} - m_p, 0) / tau          (positive term, saturates past the margin m_p)
    b_ij = max(f_i . f_j   - m_n, 0) / tau            (negatives: other samples of other classes only)

so easy positives and easy negatives stop contributing (the margins), and same-class samples are never
pushed apart (false-negative removal). Computed with logsumexp, which keeps it exact and stable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def d2d_ce(embed: torch.Tensor, proxy: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5,
           m_p: float = 0.98, m_n: float = 0.02) -> torch.Tensor:
    """Mean D2D-CE of a batch: ``embed`` (B, d) sample embeddings, ``proxy`` (B, d) their label's proxies."""
    f = F.normalize(embed, dim=1)
    v = F.normalize(proxy, dim=1)
    a = (torch.sum(f * v, dim=1) - m_p).clamp(max=0) / temperature  # (B,)
    b = (f @ f.t() - m_n).clamp(min=0) / temperature  # (B, B)
    negative = labels[:, None] != labels[None, :]  # also removes the diagonal
    b = b.masked_fill(~negative, float("-inf"))
    logits = torch.cat([a[:, None], b], dim=1)
    return (torch.logsumexp(logits, dim=1) - a).mean()
