"""Image classifiers of hand crops: EfficientNetV2 (paper 000) and a small CNN.

The small CNN is the project's *evaluator*: trained on real crops in minutes on a CPU, it scores generated
images (filtering, "does it show its label?") and its penultimate layer is the feature space of the GAN
metrics, since Inception weights cannot be downloaded here. EfficientNetV2 trains from scratch unless a
weight file is given. Inputs are RGB crops scaled to -1..1, the GANs' output range, so generated batches
feed in as they are.

Training: Adam (lr 1e-4, betas (0, 0.999), eps 1e-6, the paper's), the best epoch by validation loss kept,
a checkpoint after every epoch so a killed run resumes where it stopped. The generated data of paper 000's
strategies (``training.strategies``) enters through ``train_with_strategy``.

``efficientnet_v2_t`` is the CPU preset: EfficientNetV2-S's stages at half the width and a third of the depth
(about 1/12 of its compute), for experiments that must run on 2 CPU cores.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.strategies import (StrategyConfig, mixup_batch, regularized_loss, regularizer_weight,
                                 soft_cross_entropy)
from training.io import atomic_torch_save, atomic_write_text, load_checkpoint

ARCHS = ("cnn", "efficientnet_v2_t", "efficientnet_v2_s", "efficientnet_v2_m")


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.3):
        super().__init__()
        layers, cin = [], 3
        for w in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                       nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            cin = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))
        self.feature_dim = cin

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class EfficientNetV2(nn.Module):
    """torchvision's EfficientNetV2 with our class count; ``features`` is the pooled penultimate layer."""

    def __init__(self, num_classes: int, variant: str = "s", weights_file: str | None = None):
        super().__init__()
        import torchvision

        net = (_efficientnet_v2_tiny() if variant == "t"
               else getattr(torchvision.models, f"efficientnet_v2_{variant}")(weights=None))
        if weights_file:  # e.g. ImageNet weights downloaded elsewhere; the classifier layer is replaced below
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
            missing, unexpected = net.load_state_dict(state, strict=False)
            if len([k for k in missing if not k.startswith("classifier")]) or unexpected:
                raise ValueError(f"{weights_file} does not fit efficientnet_v2_{variant}: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
        self.body, self.pool = net.features, net.avgpool
        self.feature_dim = net.classifier[1].in_features
        self.head = nn.Sequential(nn.Dropout(net.classifier[0].p), nn.Linear(self.feature_dim, num_classes))

    def features(self, x):
        return torch.flatten(self.pool(self.body(x)), 1)

    def forward(self, x):
        return self.head(self.features(x))


def _efficientnet_v2_tiny():
    """EfficientNetV2-S's six stages with channels x 0.5 (multiples of 8) and layers x 1/3 (at least one)."""
    from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig

    setting = [FusedMBConvConfig(1, 3, 1, 16, 16, 1), FusedMBConvConfig(4, 3, 2, 16, 24, 2),
               FusedMBConvConfig(4, 3, 2, 24, 32, 2), MBConvConfig(4, 3, 2, 32, 64, 2),
               MBConvConfig(6, 3, 1, 64, 80, 3), MBConvConfig(6, 3, 2, 80, 128, 5)]
    return EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.1, last_channel=640)


def build_classifier(arch: str, num_classes: int, weights_file: str | None = None) -> nn.Module:
    if arch == "cnn":
        if weights_file:
            raise ValueError("--weights applies to the EfficientNetV2 architectures only")
        return SmallCNN(num_classes)
    if arch.startswith("efficientnet_v2_"):
        return EfficientNetV2(num_classes, arch.rsplit("_", 1)[1], weights_file)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def to_input(images_u8: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float in -1..1."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


@dataclass
class ClassifierConfig:
    arch: str = "cnn"
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.999)
    eps: float = 1e-6
    flip: bool = True
    cosine: bool = False  # decay the lr to zero over the epochs (the evaluator's recipe; the paper's is constant)
    augment: bool = False  # new views and light (training.image_classifier.augment_batch): for other people's photos
    seed: int = 0
    weights: str | None = None
    extra: dict = field(default_factory=dict)  # provenance: data, split, command


class ImageClassifier:
    """A trained classifier loaded for inference: labels, input size, probabilities and features."""

    def __init__(self, model: nn.Module, labels: list[str], size: int, info: dict | None = None):
        self.model, self.labels, self.size, self.info = model.eval(), list(labels), size, info or {}

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> "ImageClassifier":
        path = Path(path)
        file = path / "best.pt" if path.is_dir() else path
        if not file.exists():
            raise FileNotFoundError(f"no classifier at {file}: train one with 'fingerspell train classifier'")
        ck = torch.load(file, map_location=device, weights_only=False)
        for key in ("arch", "labels", "size", "model"):
            if key not in ck:
                raise ValueError(f"{file} is not an image-classifier checkpoint (no {key!r})")
        model = build_classifier(ck["arch"], len(ck["labels"]))
        model.load_state_dict(ck["model"])
        return cls(model.to(device), ck["labels"], ck["size"], {k: v for k, v in ck.items() if k != "model"})

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _batches(self, x: torch.Tensor, batch: int):
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].to(self.device)
            if xb.shape[-1] != self.size:
                xb = F.interpolate(xb, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                   antialias=xb.shape[-1] > self.size)
            yield xb

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch: int = 256) -> np.ndarray:
        """``x``: (N, 3, S, S) in -1..1 (any S: resized to the classifier's size)."""
        return np.concatenate([F.softmax(self.model(b), 1).cpu().numpy() for b in self._batches(x, batch)]) \
            if len(x) else np.zeros((0, len(self.labels)), np.float32)

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 256) -> np.ndarray:
        return np.concatenate([self.model.features(b).cpu().numpy() for b in self._batches(x, batch)])


class _Batches:
    """Random training batches of one set (real or generated), flipped at random, as model inputs."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, index: dict, flip: bool, device, augment: bool = False):
        self.x, self.y = to_input(images), torch.tensor([index[c] for c in labels])
        self.flip, self.device, self.augment = flip, device, augment

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: torch.Tensor):
        xb, yb = self.x[idx].to(self.device), self.y[idx].to(self.device)
        if self.flip:
            flip = torch.rand(len(xb)).to(self.device) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if self.augment:
            xb = augment_batch(xb)
        return xb, yb

    def draw(self, n: int):
        return self.take(torch.randint(len(self.y), (n,)))


def augment_batch(x: torch.Tensor, rotate_deg: float = 15.0, scale: float = 0.15, shift: float = 0.1) -> torch.Tensor:
    """Other framings and other light for a batch (B, 3, S, S) in -1..1: a random rotation, scale and shift of the
    crop (the border replicated, as the live crop does), then per image brightness, contrast, saturation (a fifth
    made grey) and a white-balance gain per channel. The landmark framing fixes the hand's place only roughly, and
    other people's photos differ most in light and camera colour."""
    b, dev = len(x), x.device
    u = lambda lo, hi: torch.empty(b, device=dev).uniform_(lo, hi)  # noqa: E731
    ang = u(-rotate_deg, rotate_deg) * np.pi / 180
    s = 1 / u(1 - scale, 1 + scale)
    theta = torch.stack([torch.stack([s * torch.cos(ang), -s * torch.sin(ang), u(-shift, shift) * 2], 1),
                         torch.stack([s * torch.sin(ang), s * torch.cos(ang), u(-shift, shift) * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    v = (x + 1) / 2  # 0..1
    grey = (0.299 * v[:, 0] + 0.587 * v[:, 1] + 0.114 * v[:, 2]).unsqueeze(1)
    sat = torch.where(torch.rand(b, device=dev) < 0.2, torch.zeros(b, device=dev), u(0.5, 1.5))
    v = grey + (v - grey) * sat[:, None, None, None]
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    v = mean + (v - mean) * u(0.6, 1.4)[:, None, None, None] + u(-0.2, 0.2)[:, None, None, None]
    v = v * torch.empty(b, 3, 1, 1, device=dev).uniform_(0.85, 1.15)
    return v.clamp(0, 1) * 2 - 1


# what the other trainers leave in their run folders and this one never writes: the keypoint, J2S and sequence
# trainers' checkpoint.pt, model.pt and metrics.json, the GANs' checkpoint.pt (training.io, each trainer's train())
OTHER_RUN_FILES = ("checkpoint.pt", "model.pt", "metrics.json")


def check_run_folder(out: str | os.PathLike) -> None:
    """Refuse ``out`` when it holds another kind of training run, before anything is written there: this run's
    history.json (and best.pt, report.json, plots) would go over that run's and leave a folder of two runs' records,
    one of them half overwritten. A folder of this kind's run (last.pt, best.pt) resumes or is refused by
    :func:`_check_resumable`."""
    out = Path(out)
    found = [f for f in OTHER_RUN_FILES if (out / f).exists()]
    if found:
        raise ValueError(f"{out} holds another kind of training run ({', '.join(found)}: a keypoint, J2S, sequence "
                         "or GAN run); an image classifier would write its history.json over that run's: give --out "
                         "a folder of its own")


def _check_labels(names: np.ndarray, labels: list[str], what: str) -> None:
    unknown = sorted(set(np.unique(names).tolist()) - set(labels))
    if unknown:
        raise ValueError(f"{what} labels {unknown} are not in the classifier's labels {labels}")


def train_classifier(train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray,
                     val_labels: np.ndarray, labels: list[str], out: str | os.PathLike,
                     config: ClassifierConfig = ClassifierConfig(), device: str = "cpu",
                     progress: bool = True, strategy: StrategyConfig | None = None,
                     generated: tuple[np.ndarray, np.ndarray] | None = None,
                     init: dict | None = None, sample_weights: np.ndarray | None = None) -> ImageClassifier:
    """Train on uint8 crops, keep the epoch with the lowest validation loss in ``out/best.pt``. Resumable.

    ``strategy`` REGULARIZER or MIXUP draws on ``generated`` (images, labels) every step (eq. 1-5);
    PRETRAIN is two calls of this function (``train_with_strategy``); ``init`` starts from given weights.
    ``sample_weights`` (one per training image): each epoch draws as many images as there are, with replacement,
    with these probabilities (e.g. balanced by dataset and class, ``training.image_sets``); default: each once.
    """
    strategy = strategy or StrategyConfig()
    out = Path(out)
    check_run_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    index = {c: i for i, c in enumerate(labels)}
    _check_labels(train_labels, labels, "training")
    _check_labels(val_labels, labels, "validation")
    if not len(val_labels):
        raise ValueError("no validation images: the best epoch is chosen by validation loss")
    if len(train_labels) < 2:
        raise ValueError(f"{len(train_labels)} training images: at least 2 are needed")
    mixing = strategy.strategy in ("regularizer", "mixup")
    if mixing:
        if generated is None or not len(generated[0]):
            raise ValueError(f"strategy {strategy.strategy!r} needs generated images")
        _check_labels(generated[1], labels, "generated")
    if sample_weights is not None and (len(sample_weights) != len(train_labels) or not np.all(sample_weights >= 0)
                                       or not np.sum(sample_weights) > 0):
        raise ValueError("sample_weights: one non-negative weight per training image, not all zero")
    draw = None if sample_weights is None else torch.as_tensor(np.asarray(sample_weights, np.float64))
    torch.manual_seed(config.seed)
    real = _Batches(train_images, train_labels, index, config.flip, device, config.augment)
    fake = _Batches(*generated, index, config.flip, device, config.augment) if mixing else None
    xva, yva = to_input(val_images), torch.tensor([index[c] for c in val_labels])
    size = train_images.shape[1]
    model = build_classifier(config.arch, len(labels), config.weights).to(device)
    if init is not None:
        model.load_state_dict(init)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps)
    steps_per_epoch = (len(real) + config.batch_size - 1) // config.batch_size
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + np.cos(np.pi * min(i / (steps_per_epoch * config.epochs), 1))) if config.cosine else 1.0)
    meta = {"arch": config.arch, "labels": list(labels), "size": size, "config": asdict(config),
            "strategy": asdict(strategy)}
    state = {"epoch": 0, "best_loss": float("inf"), "history": []}
    last = out / "last.pt"
    if last.exists():
        ck = load_checkpoint(last, needs=("model", "optimizer", "scheduler", "state", "rng"), map_location=device)
        _check_resumable(ck.get("meta"), meta, last)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        state = ck["state"]
        torch.set_rng_state(ck["rng"].cpu())
        if progress:
            print(f"resuming from epoch {state['epoch']} ({last})")
    bar = tqdm(range(state["epoch"], config.epochs), desc=f"train {config.arch} ({strategy.strategy})", unit="epoch",
               disable=not progress, initial=state["epoch"], total=config.epochs)
    for epoch in bar:
        model.train()
        weight = (regularizer_weight(epoch, strategy.lambda0, strategy.rate, strategy.schedule)
                  if mixing else None)
        total, n = 0.0, 0
        order = torch.randperm(len(real)) if draw is None else torch.multinomial(draw, len(real), replacement=True)
        for idx in order.split(config.batch_size):
            if len(idx) < 2 and n:  # BatchNorm cannot train on one sample (1x1 maps at 32 px): skip that remainder
                continue
            xb, yb = real.take(idx)
            if strategy.strategy == "regularizer":
                xg, yg = fake.draw(len(idx))
                logits = model(torch.cat([xb, xg]))
                loss = regularized_loss(logits[:len(idx)], yb, logits[len(idx):], yg, weight)
            elif strategy.strategy == "mixup":
                xg, yg = fake.draw(len(idx))
                xm, ym, _ = mixup_batch(xb, yb, xg, yg, len(labels), weight, strategy.mixup_alpha)
                loss = soft_cross_entropy(model(xm), ym)
            else:
                loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        val_loss, val_acc = evaluate(model, xva, yva, device)
        row = {"epoch": epoch + 1, "train_loss": total / max(n, 1), "val_loss": val_loss, "val_acc": val_acc}
        if weight is not None:
            row["lambda"] = weight
        state["history"].append(row)
        if val_loss < state["best_loss"]:
            state["best_loss"] = val_loss
            atomic_torch_save({**meta, "model": model.state_dict(), "epoch": epoch + 1, "val_loss": val_loss,
                                "val_acc": val_acc}, out / "best.pt")
        state["epoch"] = epoch + 1
        atomic_torch_save({"meta": meta, "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(), "state": state, "rng": torch.get_rng_state()}, last)
        bar.set_postfix(loss=f"{total / max(n, 1):.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
    atomic_write_text(out / "history.json", json.dumps(state["history"], indent=1))
    return ImageClassifier.load(out, device)


def _check_resumable(saved: dict | None, now: dict, path: Path) -> None:
    """A checkpoint resumes only the same recipe and data: anything else would mix runs. More epochs are allowed at
    a constant learning rate (the run goes on as it was); with ``--cosine`` the epochs set the schedule, so they
    must match; fewer epochs than the checkpoint holds would report a best epoch past the end."""
    if saved is None:
        return
    done, asked = saved["config"]["epochs"], now["config"]["epochs"]
    if asked < done or (asked != done and now["config"].get("cosine")):
        why = "its cosine schedule spans" if now["config"].get("cosine") else "it was made for"
        raise ValueError(f"{path}: {why} {done} epochs, not {asked}; give --epochs {done} to resume it, or use "
                         "another output folder")
    defaults = asdict(ClassifierConfig())

    def strip(m):
        config = {k: v for k, v in {**defaults, **m["config"]}.items() if k != "epochs"}  # older runs lack new keys
        config["extra"] = {k: v for k, v in (config.get("extra") or {}).items() if k != "command"}
        return {**m, "config": config}

    if strip(saved) != strip(now):
        raise ValueError(f"{path} was written by a different recipe; use another output folder or delete it")


def train_with_strategy(train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray,
                        val_labels: np.ndarray, labels: list[str], out: str | os.PathLike,
                        config: ClassifierConfig, strategy: StrategyConfig,
                        generated: tuple[np.ndarray, np.ndarray] | None = None, device: str = "cpu",
                        progress: bool = True, sample_weights: np.ndarray | None = None) -> ImageClassifier:
    """One of paper 000's four strategies. PRETRAIN trains ``out/pretrain`` on the generated images (the
    best epoch by loss on the real validation set), then fine-tunes it on the real images in ``out``."""
    if strategy.strategy != "pretrain":
        return train_classifier(train_images, train_labels, val_images, val_labels, labels, out, config, device,
                                progress, strategy, generated, sample_weights=sample_weights)
    if generated is None or not len(generated[0]):
        raise ValueError("strategy 'pretrain' needs generated images")
    out = Path(out)
    check_run_folder(out)  # before out/pretrain is made in it
    first = train_classifier(generated[0], generated[1], val_images, val_labels, labels, out / "pretrain",
                             replace(config, epochs=strategy.pretrain_epochs), device, progress,
                             StrategyConfig("real"))
    return train_classifier(train_images, train_labels, val_images, val_labels, labels, out, config, device,
                            progress, strategy, init=first.model.state_dict(), sample_weights=sample_weights)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device, batch: int = 256) -> tuple[float, float]:
    if not len(x):
        return float("nan"), float("nan")
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch].to(device))
        yb = y[i:i + batch].to(device)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return loss / len(x), correct / len(x)


def held_out_report(clf, images, labels, out: Path | None = None) -> dict:
    """training.metrics' classification report on held-out crops (every crop has a hand), with its plots."""
    from training.metrics import classification_report

    if not len(images):
        return {"accuracy": None}
    pred = clf.probabilities(to_input(images)).argmax(1)
    report = classification_report(np.array([clf.labels.index(c) for c in labels]), pred, clf.labels)
    if out is not None:
        from training.plots import plot_confusion, plot_per_class

        plot_confusion(report, out / "confusion_matrix.png")
        plot_per_class(report, out / "per_class.png")
    return report
