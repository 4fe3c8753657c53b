"""Joins2Sign (paper 003): image -> 21 keypoints -> polar coordinates -> BatchNorm -> class, one network.

Three parts, each a module of its own:

- :class:`KeypointRegressor` (section 4.1): DeepPose's first stage, 5 convolutions and 3 fully
  connected layers, max-pooling and local response normalisation after the first two
  convolutions, no dropout; out come 21 (x, y) as fractions of the crop (0..1).
- :class:`PolarConversion` (section 4.2): eq. 1-2, the same numbers as
  :func:`realtime.features.j2s_polar` (tests hold them equal), differentiable.
- the classification stage (section 4.3): BatchNorm then 3 fully connected layers with ReLU and
  dropout -- :class:`training.keypoint_model.KeypointClassifier`, the same module the
  MediaPipe-landmark models use.

Backbones (``BACKBONES``). The paper fed 256x256 images to a conv1 of 96 11x11 filters, stride 4
(AlexNet geometry, FC6 input 256x6x6). Our ``lis`` images are 64x64 crops, so:

- ``paper`` keeps that geometry exactly and upsamples the crop to 256 (for GPUs);
- ``paper64`` keeps the widths (96, 256, 384, 384, 256; FC 4096, 4096) but takes the 64x64 crop
  as is, with a 5x5 stride-2 conv1 (an 11x11 stride-4 filter would leave 14x14 after conv1);
- ``small`` is the CPU / real-time variant: the ``paper64`` geometry at a third of the widths,
  FC 512, 512 (about 30 M multiply-adds per crop), with BatchNorm after every convolution in
  place of local response normalisation: with LRN, 15 CPU epochs left the keypoint error
  barely below the "every point at the centre" guess; BatchNorm converges within a CPU budget.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from training.keypoint_model import KeypointClassifier

NUM_JOINTS = 21
WRIST = 0


@dataclass(frozen=True)
class Backbone:
    input_size: int
    widths: tuple[int, int, int, int, int]
    conv1_kernel: int
    conv1_stride: int
    conv1_padding: int
    fc: tuple[int, int]
    norm: str = "lrn"  # "lrn": local response normalisation after conv1-2 (the paper); "batch": BatchNorm after each conv


BACKBONES = {
    "paper": Backbone(256, (96, 256, 384, 384, 256), 11, 4, 1, (4096, 4096)),
    "paper64": Backbone(64, (96, 256, 384, 384, 256), 5, 2, 2, (4096, 4096)),
    "small": Backbone(64, (32, 64, 96, 96, 64), 5, 2, 2, (512, 512), "batch"),
    "tiny": Backbone(32, (8, 16, 16, 16, 16), 3, 1, 1, (64, 64), "batch"),  # tests only
}


@dataclass
class J2SConfig:
    num_classes: int
    backbone: str = "small"
    cls_hidden: tuple[int, int] = (256, 128)
    dropout: float = 0.5
    mean_wrist: tuple[float, float] = (0.5, 0.5)  # training-set mean wrist, fraction of (width, height)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose from {sorted(BACKBONES)}")

    @property
    def input_size(self) -> int:
        return BACKBONES[self.backbone].input_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cls_hidden"], d["mean_wrist"] = list(self.cls_hidden), list(self.mean_wrist)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "J2SConfig":
        return cls(num_classes=int(d["num_classes"]), backbone=d["backbone"], cls_hidden=tuple(d["cls_hidden"]),
                   dropout=float(d["dropout"]), mean_wrist=tuple(d["mean_wrist"]))


def _pool_out(n: int) -> int:
    return (n - 3) // 2 + 1  # MaxPool2d(3, stride 2), AlexNet's overlapping pooling


class KeypointRegressor(nn.Module):
    """Image (B, 3, S, S), normalised -> keypoints (B, 21, 2) as fractions of the image's width and height."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        w, b = backbone.widths, backbone
        if b.norm not in ("lrn", "batch"):
            raise ValueError(f"backbone norm must be 'lrn' or 'batch', got {b.norm!r}")
        batch = b.norm == "batch"

        def conv(cin, cout, k, stride=1, pad=1):
            layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=not batch)]
            return layers + ([nn.BatchNorm2d(cout)] if batch else []) + [nn.ReLU(inplace=True)]

        lrn = [] if batch else [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)]
        self.features = nn.Sequential(
            *conv(3, w[0], b.conv1_kernel, b.conv1_stride, b.conv1_padding), nn.MaxPool2d(3, 2), *lrn,
            *conv(w[0], w[1], 5, pad=2), nn.MaxPool2d(3, 2), *lrn,
            *conv(w[1], w[2], 3), *conv(w[2], w[3], 3), *conv(w[3], w[4], 3),
            nn.MaxPool2d(3, 2),
        )
        n = (b.input_size + 2 * b.conv1_padding - b.conv1_kernel) // b.conv1_stride + 1
        n = _pool_out(_pool_out(_pool_out(n)))
        if n < 1:
            raise ValueError(f"backbone leaves no spatial extent for a {b.input_size}px input")
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(w[4] * n * n, b.fc[0]), nn.ReLU(inplace=True),
            nn.Linear(b.fc[0], b.fc[1]), nn.ReLU(inplace=True), nn.Linear(b.fc[1], NUM_JOINTS * 2))
        nn.init.zeros_(self.head[-1].weight)  # start every keypoint at the crop centre: a sane first guess
        nn.init.constant_(self.head[-1].bias, 0.5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image)).view(-1, NUM_JOINTS, 2)


class PolarConversion(nn.Module):
    """Eq. 1-2 on keypoints given as fractions of the image: with x = X/W and y = Y/H for a W x H image,
    ``r = |p_i - p_1| / sqrt(2)`` and ``theta = arctan(dy / dx) / 2pi`` equal the paper's formulas for a
    square crop (W = H), which is what J2S sees. Output (B, 21, 2) flattened joint-major to (B, 42),
    the layout of ``FeatureSpec(parts=("j2s_polar",))``.

    ``wrist_present`` (B,) false -> the training set's mean wrist (``mean_wrist``) is the origin. The
    regressor always predicts a wrist, so :class:`J2S` itself never passes it; the paper's fallback
    serves keypoints from elsewhere (e.g. a detector that may miss the wrist).
    """

    def __init__(self, mean_wrist: tuple[float, float] = (0.5, 0.5)):
        super().__init__()
        self.register_buffer("mean_wrist", torch.tensor(mean_wrist, dtype=torch.float32))

    def forward(self, keypoints: torch.Tensor, wrist_present: torch.Tensor | None = None) -> torch.Tensor:
        wrist = keypoints[:, WRIST, :]
        if wrist_present is not None:
            wrist = torch.where(wrist_present[:, None], wrist, self.mean_wrist.expand_as(wrist))
        d = keypoints - wrist[:, None, :]
        dx, dy = d[..., 0], d[..., 1]
        # clamp: sqrt's gradient at 0 (the wrist itself) would be infinite
        r = torch.sqrt(torch.clamp(dx * dx + dy * dy, min=1e-12)) / math.sqrt(2.0)
        tiny = 1e-6  # arctan(dy/dx) with |dx| kept off zero for a finite gradient; dx == 0 gives +-pi/2 exactly
        away = torch.where(dx < 0, -tiny, tiny)  # python scalars: the default dtype, float32
        if away.dtype != dx.dtype:  # fp16 (the torch backend on CUDA): stay in the input's dtype, or the BatchNorm
            away = away.to(dx.dtype)  # after this layer gets float32 features and half weights and refuses them
        safe_dx = torch.where(dx.abs() < tiny, away * torch.ones_like(dx), dx)
        theta = torch.where(dx == 0, torch.sign(dy) * (math.pi / 2), torch.atan(dy / safe_dx))
        return torch.stack([r, theta / (2 * math.pi)], dim=-1).flatten(1)


class J2S(nn.Module):
    """The whole model: normalised crop (B, 3, S, S) -> (keypoints (B, 21, 2) in 0..1, class logits (B, C))."""

    def __init__(self, config: J2SConfig):
        super().__init__()
        self.config = config
        self.regressor = KeypointRegressor(BACKBONES[config.backbone])
        self.polar = PolarConversion(config.mean_wrist)
        self.classifier = KeypointClassifier(NUM_JOINTS * 2, config.num_classes, config.cls_hidden, config.dropout)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keypoints = self.regressor(image)
        return keypoints, self.classifier(self.polar(keypoints))


class J2SExport(nn.Module):
    """What ships: outputs keypoints (fractions of the crop) and class probabilities."""

    def __init__(self, model: J2S):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keypoints, logits = self.model(image)
        return keypoints, torch.softmax(logits, dim=-1)

