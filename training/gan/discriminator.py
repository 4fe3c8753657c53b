"""The ResNet discriminator shared by both GANs, with spectral norm everywhere.

Image (plus, for SPADE, the pose maps concatenated as extra channels) -> down-blocks to 4x4 -> ReLU, global
sum pooling -> ``adv`` logit. For ReACGAN it also returns the sample's embedding and its class proxy, the
inputs of D2D-CE (the losses module projects both onto the unit sphere).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm as sn

from training.gan.generator import channel_widths


class DiscBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, preactivation: bool):
        super().__init__()
        self.conv1 = sn(nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = sn(nn.Conv2d(cout, cout, 3, padding=1))
        self.shortcut = sn(nn.Conv2d(cin, cout, 1)) if (cin != cout or downsample) else None
        self.pool = nn.AvgPool2d(2) if downsample else nn.Identity()
        self.pre = preactivation
        self.act = nn.ReLU()

    def forward(self, x):
        h = self.act(x) if self.pre else x
        h = self.pool(self.conv2(self.act(self.conv1(h))))
        s = x
        if self.shortcut is not None:
            s = self.pool(self.shortcut(s)) if self.pre else self.shortcut(self.pool(s))
        return h + s


class Discriminator(nn.Module):
    def __init__(self, size: int = 64, ch: int = 64, in_channels: int = 3, num_classes: int = 0,
                 embed_dim: int = 256):
        super().__init__()
        widths = list(reversed(channel_widths(size, ch)))  # mirror of the generator: narrow to wide
        widths = [max(w, ch) for w in widths]
        blocks, cin = [], in_channels
        for i, w in enumerate(widths[1:]):
            blocks.append(DiscBlock(cin, w, downsample=True, preactivation=i > 0))
            cin = w
        blocks.append(DiscBlock(cin, cin, downsample=False, preactivation=True))
        self.blocks = nn.Sequential(*blocks)
        self.act = nn.ReLU()
        self.adv = sn(nn.Linear(cin, 1))
        self.num_classes = num_classes
        if num_classes:
            self.embed = sn(nn.Linear(cin, embed_dim))
            self.proxy = sn(nn.Embedding(num_classes, embed_dim))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight_orig)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        h = self.act(self.blocks(x)).sum(dim=(2, 3))
        out = {"adv": self.adv(h).squeeze(1)}
        if self.num_classes:
            out["embed"] = self.embed(h)
            if labels is not None:
                out["proxy"] = self.proxy(labels)
        return out
