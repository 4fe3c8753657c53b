"""H-GAN's networks (paper 001): ResNet translation generators and three discriminators.

- ``ResnetGenerator``: CycleGAN's generator (7x7 stem, two stride-2 downsamplings, 4/6/9 residual blocks, two
  upsamplings, tanh), instance-normalised, reflection-padded.
- ``PatchDiscriminator`` (PatchGAN) and ``PixelDiscriminator`` (PixelGAN, 1x1 PatchGAN): CycleGAN's.
- ``PerceptualDiscriminator``: the multi-scale perceptual discriminator. A frozen feature network gives
  activations at four scales; learnable conv blocks process each scale, stacked with the previous scale's result
  (after Sungatullina et al.'s perceptual discriminator), and a patch output is taken at the three coarsest
  scales (16, 8 and 4 for a 32-pixel crop, as the paper's 16/8/4 patches).

Every discriminator returns a list of patch maps (one per output scale), so one least-squares loss serves all.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

DISCRIMINATORS = ("patch", "pixel", "perceptual")
FEATURE_NETS = ("hand-cnn", "vgg16")


class ResnetBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf: int = 32, blocks: int = 6, channels: int = 3):
        super().__init__()
        if blocks < 1:
            raise ValueError("the generator needs at least one residual block")
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for k in (1, 2):
            layers += [nn.Conv2d(ngf * k, ngf * 2 * k, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * 2 * k),
                       nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(blocks)]
        for k in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * k, ngf * k // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(ngf * k // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``layers`` stride-2 convolutions, then two stride-1 ones; one map of overlapping-patch scores."""

    def __init__(self, ndf: int = 32, layers: int = 3, channels: int = 3):
        super().__init__()
        seq = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, layers):
            nxt = ndf * min(2 ** i, 8)
            seq += [nn.Conv2d(ch, nxt, 4, 2, 1), nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2, True)]
            ch = nxt
        nxt = ndf * min(2 ** layers, 8)
        seq += [nn.Conv2d(ch, nxt, 3, 1, 1), nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2, True), nn.Conv2d(nxt, 1, 3, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x):
        return [self.net(x)]


class PixelDiscriminator(nn.Module):
    """PixelGAN: a per-pixel real/fake decision (1x1 convolutions only)."""

    def __init__(self, ndf: int = 32, channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, ndf, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(ndf, ndf * 2, 1),
                                 nn.InstanceNorm2d(ndf * 2), nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 2, 1, 1))

    def forward(self, x):
        return [self.net(x)]


class FrozenFeatures(nn.Module):
    """Four-scale activations of a frozen network, for images in -1..1. Never trained, always in eval mode;
    gradients still flow to its input (the generator learns through it)."""

    channels: tuple[int, ...]
    body: nn.Sequential
    taps: list[int]  # the indices in ``body`` whose outputs are the four scales

    def train(self, mode: bool = True):
        return super().train(False)

    def prepare(self, x):
        """Images in -1..1 -> the network's own input range."""
        return x

    def forward(self, x):
        out, x = [], self.prepare(x)
        for i, m in enumerate(self.body):
            x = m(x)
            if i in self.taps:
                out.append(x)
        return out


class HandCNNFeatures(FrozenFeatures):
    """The four stages of the project's ``SmallCNN`` trained on real hand crops (``training.image_classifier``):
    the stand-in for ImageNet VGG-16, which cannot be downloaded here."""

    def __init__(self, body: nn.Sequential):
        super().__init__()
        convs = [m for m in body if isinstance(m, nn.Conv2d)]
        if len(convs) != 8:
            raise ValueError("expected a SmallCNN body (4 stages of 2 convolutions)")
        self.body = body
        self.taps = [i for i, m in enumerate(body) if isinstance(m, nn.ReLU)][1::2]  # each stage's last ReLU
        self.channels = tuple(convs[i].out_channels for i in (1, 3, 5, 7))
        self.requires_grad_(False)
        self.train(False)

    @classmethod
    def load(cls, path: str | Path) -> "HandCNNFeatures":
        from training.image_classifier import ImageClassifier, SmallCNN

        clf = ImageClassifier.load(path)
        if not isinstance(clf.model, SmallCNN):
            raise ValueError(f"{path}: the perceptual features need a 'cnn' classifier, got {clf.info.get('arch')}")
        return cls(clf.model.body)


class VGG16Features(FrozenFeatures):
    """ImageNet VGG-16 as in the paper (relu1_2, relu2_2, relu3_3, relu4_3), from a user's own weights file
    (torchvision's ``vgg16`` state dict); nothing is downloaded."""

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, weights_file: str | Path):
        super().__init__()
        from torchvision.models import vgg16

        net = vgg16()
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        self.body = net.features[:23]
        self.taps = [3, 8, 15, 22]
        self.channels = (64, 128, 256, 512)
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.train(False)

    def prepare(self, x):
        return ((x + 1) / 2 - self.mean) / self.std


class PerceptualDiscriminator(nn.Module):
    """Multi-scale perceptual discriminator: learnable blocks over frozen features at 4 scales, outputs at the
    3 coarsest. Scale i's block sees its own features stacked with scale i-1's result, downsampled."""

    def __init__(self, features: FrozenFeatures, ndf: int = 32, outputs: tuple[int, ...] = (1, 2, 3)):
        super().__init__()
        self.features = features
        self.outputs = tuple(outputs)
        self.blocks, self.heads = nn.ModuleList(), nn.ModuleDict()
        prev = 0
        for i, ch in enumerate(features.channels):
            width = ndf * min(2 ** i, 8)
            self.blocks.append(nn.Sequential(nn.Conv2d(ch + prev, width, 3, 1, 1), nn.LeakyReLU(0.2, True),
                                             nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2, True)))
            if i in self.outputs:
                self.heads[str(i)] = nn.Conv2d(width, 1, 3, 1, 1)
            prev = width

    def forward(self, x):
        feats = self.features(x)
        outs, h = [], None
        for i, (f, block) in enumerate(zip(feats, self.blocks)):
            if h is not None:
                h = F.interpolate(h, size=f.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
                f = torch.cat([f, h], 1)
            h = block(f)
            if str(i) in self.heads:
                outs.append(self.heads[str(i)](h))
        return outs


def xavier_init(module: nn.Module) -> None:
    """The paper's initialisation (Xavier, with the CycleGAN code's gain of 0.02), on every learnable convolution;
    frozen feature nets (``requires_grad`` off) are left alone."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.requires_grad:
            nn.init.xavier_normal_(m.weight, gain=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_discriminator(kind: str, ndf: int, features: FrozenFeatures | None = None,
                        patch_layers: int = 3) -> nn.Module:
    if kind == "patch":
        return PatchDiscriminator(ndf, patch_layers)
    if kind == "pixel":
        return PixelDiscriminator(ndf)
    if kind == "perceptual":
        if features is None:
            raise ValueError("the perceptual discriminator needs a frozen feature network")
        return PerceptualDiscriminator(features, ndf)
    raise ValueError(f"discriminator must be one of {DISCRIMINATORS}, got {kind!r}")
