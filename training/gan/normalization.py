"""Conditional normalisation layers: the only place where the generators see their condition.

Both normalise without learned affine parameters and take the scale and shift from the condition:
``ConditionalBatchNorm2d`` from the class label (ReACGAN's generator), ``SPADE`` from pose maps, one 3x3-conv
MLP per layer, so the modulation varies over the image (Park et al. 2019).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.zeros_(self.gain.weight)  # starts as plain BatchNorm: gain 1 + 0, bias 0
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        g = 1 + self.gain(labels)[:, :, None, None]
        b = self.bias(labels)[:, :, None, None]
        return self.bn(x) * g + b


class SPADE(nn.Module):
    def __init__(self, num_features: int, pose_channels: int, hidden: int = 64):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(pose_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, num_features, 3, padding=1)
        self.beta = nn.Conv2d(hidden, num_features, 3, padding=1)

    def forward(self, x: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        if pose.shape[-2:] != x.shape[-2:]:
            pose = F.interpolate(pose, size=x.shape[-2:], mode="bilinear", align_corners=False)
        h = self.shared(pose)
        return self.bn(x) * (1 + self.gamma(h)) + self.beta(h)
