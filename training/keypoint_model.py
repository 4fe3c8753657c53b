"""The J2S classification stage (paper 003, section 4.3) as a stand-alone keypoint classifier.

BatchNorm on the input features (the paper found raw polar coordinates hurt the classifier),
then three fully connected layers interleaved with ReLU and dropout, AlexNet-style.
"""
from __future__ import annotations

import torch
from torch import nn


class KeypointClassifier(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, hidden: tuple[int, int] = (256, 128), dropout: float = 0.3):
        super().__init__()
        self.in_dim, self.num_classes, self.hidden, self.dropout = in_dim, num_classes, tuple(hidden), dropout
        self.norm = nn.BatchNorm1d(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, in_dim) -> the penultimate activations (B, hidden[1]): what personal calibration compares."""
        x = self.norm(features)
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.act(self.fc2(x)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, in_dim) -> logits (B, num_classes)."""
        return self.fc3(self.embed(features))

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "num_classes": self.num_classes, "hidden": list(self.hidden),
                "dropout": self.dropout}


class WithSoftmax(nn.Module):
    """Wraps a logits model so the exported graph outputs probabilities, and with ``embedding`` also its
    penultimate activations (output ``embedding``, for personal calibration: realtime/calibration.py)."""

    def __init__(self, model: nn.Module, embedding: bool = False):
        super().__init__()
        self.model, self.embedding = model, embedding

    def forward(self, features: torch.Tensor):
        if not self.embedding:
            return torch.softmax(self.model(features), dim=-1)
        h = self.model.embed(features)
        return torch.softmax(self.model.fc3(h), dim=-1), h


def fold_batchnorm(model: KeypointClassifier):
    """A trained :class:`KeypointClassifier` (eval mode) -> the same network as numpy arrays
    (:class:`realtime.personal_tuning.MLP`, which personal tuning tunes), its input BatchNorm folded into fc1."""
    from realtime.personal_tuning import MLP

    bn = model.norm
    scale_t = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().double()
    scale = scale_t.numpy()
    shift = (bn.bias.detach().double() - bn.running_mean.double() * scale_t).numpy()
    w1 = model.fc1.weight.detach().double().numpy().T  # (dim, hidden0)
    b1 = model.fc1.bias.detach().double().numpy()
    return MLP(scale[:, None] * w1, shift @ w1 + b1, model.fc2.weight.detach().double().numpy().T,
               model.fc2.bias.detach().double().numpy(), model.fc3.weight.detach().double().numpy().T,
               model.fc3.bias.detach().double().numpy())
