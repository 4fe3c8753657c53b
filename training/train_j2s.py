"""Train J2S end to end (paper 003, sections 4.4-4.6): ``fingerspell train j2s``.

The paper's recipe: SGD, momentum 0.9, weight decay 5e-5, batch 128, 150 epochs, the learning
rate divided by 10 every 90 epochs; static weighting with lr 0.01 and alpha 0.5, dynamic with
lr 0.005 and alpha 0.8. Splits: the paper's random 66/17/17, or signer-independent (the test
signer held out, validation drawn from the others).

A checkpoint is written atomically after every epoch; the same command resumes a killed run
and, on the CPU, ends with the same weights as an uninterrupted one (cuDNN kernels are not
bit-reproducible, so on a GPU the resumed run is equivalent, not identical).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training.j2s_data import MEAN, STD, CropAugment, CropSet, load_crops, normalise
from training.j2s_loss import make_weighting, masked_l2
from training.j2s_model import J2S, BACKBONES, J2SConfig
from training.metrics import classification_report, format_report, keypoint_report
from training.splits import grouped_stratified_indices
from training.io import CheckpointError, atomic_torch_save, atomic_write_text, command_line, load_checkpoint
from training.train_keypoints import LIS_LETTERS

PAPER_INPUT = 256  # the paper's input size: EPE is also reported scaled to it

# the shipped real-time model's augmentation: palm-detector crops from a webcam are framed less tightly
RUNTIME_AUGMENT = CropAugment(scale=0.15, shift=0.08, rotate_deg=15, hflip=0.5, brightness=0.15, contrast=0.3)


@dataclass
class J2STrainConfig:
    data: str  # dataset folder (lis)
    out: str
    labels: list[str] = field(default_factory=lambda: list(LIS_LETTERS))
    split: str = "signer"  # "signer": hold out test_signers; "random": the paper's stratified 66/17/17
    test_signers: list[str] = field(default_factory=lambda: ["GIULIA"])
    val_fraction: float = 0.17
    backbone: str = "small"
    weighting: str = "static"  # or "dynamic"
    alpha: float = 0.5
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-5
    epochs: int = 150
    step_size: int = 90  # epochs between learning-rate divisions by 10
    batch_size: int = 128
    dropout: float = 0.5
    cls_hidden: list[int] = field(default_factory=lambda: [256, 128])
    augment: bool = False  # RUNTIME_AUGMENT (not in the paper)
    grad_clip: float = 10.0  # max gradient norm, not in the paper: typical norms are 3-5, and without it the
    #                          dynamic run on the random split blew up at epoch 17 of 40 and never recovered
    seed: int = 0
    threads: int | None = None
    cache_dir: str | None = None
    device: str = "auto"  # "auto" trains on CUDA when torch sees a GPU

    def __post_init__(self):
        if self.split not in ("signer", "random"):
            raise ValueError(f"split must be 'signer' or 'random', got {self.split!r}")
        if self.weighting not in ("static", "dynamic"):
            raise ValueError(f"loss weighting must be static or dynamic, got {self.weighting!r}")
        if self.weighting == "static" and not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"static weighting needs 0 <= alpha <= 1 (alpha L_reg + (1 - alpha) L_cls), got {self.alpha}")
        if self.alpha < 0 or self.lr <= 0 or self.epochs < 1 or self.step_size < 1:
            raise ValueError("alpha must be >= 0, lr > 0, epochs and step size >= 1")

    def fingerprint(self) -> str:
        d = asdict(self)
        for k in ("out", "threads", "cache_dir", "device"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class J2SData:
    crops: CropSet
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    description: str


def prepare(cfg: J2STrainConfig, progress: bool = True) -> J2SData:
    size = BACKBONES[cfg.backbone].input_size
    crops = load_crops(cfg.data, cfg.labels, size=size, cache_dir=cfg.cache_dir, progress=progress)
    ok = np.flatnonzero(crops.readable)
    y = np.array([cfg.labels.index(l) for l in crops.labels], np.int64)
    if cfg.split == "random":
        test_frac = (1 - 0.66 - cfg.val_fraction)
        tr, va, te = grouped_stratified_indices(crops.labels[ok], crops.rel[ok],
                                                (0.66, cfg.val_fraction, test_frac), cfg.seed)
        return J2SData(crops, y, ok[tr], ok[va], ok[te], f"random stratified 66/{round(100 * cfg.val_fraction)}/{round(100 * test_frac)}")
    missing = set(cfg.test_signers) - set(crops.signers.tolist())
    if missing:
        raise ValueError(f"test signer(s) {sorted(missing)} not in {sorted(set(crops.signers.tolist()))}")
    is_test = np.isin(crops.signers[ok], cfg.test_signers)
    test, pool = ok[is_test], ok[~is_test]
    tr, va = grouped_stratified_indices(crops.labels[pool], crops.rel[pool], (1 - cfg.val_fraction, cfg.val_fraction),
                                        cfg.seed)
    return J2SData(crops, y, pool[tr], pool[va], test, f"test signers {cfg.test_signers}; validation "
                                                       f"{cfg.val_fraction:.0%} of the others")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no GPU")
    return torch.device(name)


def predict(model: J2S, images_u8: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) uint8 -> keypoints (N, 21, 2) as fractions of the crop, probabilities (N, C)."""
    model.eval()
    device = next(model.parameters()).device
    kps, probs = [], []
    with torch.no_grad():
        for i in range(0, len(images_u8), batch):
            k, logits = model(torch.from_numpy(normalise(images_u8[i:i + batch])).to(device))
            kps.append(k.cpu().numpy())
            probs.append(torch.softmax(logits, -1).cpu().numpy())
    c = model.config.num_classes
    return (np.concatenate(kps) if kps else np.zeros((0, 21, 2), np.float32),
            np.concatenate(probs) if probs else np.zeros((0, c), np.float32))


def evaluate_split(model: J2S, data: J2SData, idx: np.ndarray, labels: list[str]) -> dict:
    """Classification report and keypoint report (EPE in crop pixels and scaled to 256) on rows ``idx``."""
    c = data.crops
    kp, probs = predict(model, c.images[idx])
    size = c.images.shape[1]
    cls = classification_report(data.y[idx], probs.argmax(1), labels)
    mask = c.mask[idx]
    true = np.nan_to_num(c.keypoints[idx]) * size
    return {"classification": cls,
            "keypoints_crop_px": keypoint_report(kp * size, true, mask, 1.0, max_threshold=50.0 * size / PAPER_INPUT),
            "keypoints_256px": keypoint_report(kp * size, true, mask, PAPER_INPUT / size, max_threshold=50.0)}


def _val_losses(model: J2S, data: J2SData) -> tuple[float, float, float, float]:
    """Validation L_reg, L_cls, accuracy, EPE median (crop px)."""
    c = data.crops
    kp, probs = predict(model, c.images[data.val])
    y = data.y[data.val]
    target = torch.from_numpy(np.nan_to_num(c.keypoints[data.val]))
    mask = torch.from_numpy(c.mask[data.val])
    l_reg = float(masked_l2(torch.from_numpy(kp), target, mask))
    l_cls = float(nn.functional.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.from_numpy(y)))
    size = c.images.shape[1]
    rep = keypoint_report(kp * size, target.numpy() * size, c.mask[data.val])
    return l_reg, l_cls, float((probs.argmax(1) == y).mean()), rep["epe_median"]


def mean_wrist(data: J2SData) -> tuple[float, float]:
    """The training set's mean wrist (fraction of the crop): the polar origin when the wrist is missing."""
    c = data.crops
    rows = data.train[c.mask[data.train, 0]]
    if not len(rows):
        return (0.5, 0.5)
    w = c.keypoints[rows, 0].mean(0)
    return (float(w[0]), float(w[1]))


def train_j2s(cfg: J2STrainConfig, resume: bool = True, progress: bool = True, data: J2SData | None = None,
              on_epoch_end=None, evaluate_test: bool = True) -> dict:
    """Train; write model.pt, metrics.json, history.json and plots into ``cfg.out``. Returns the summary."""
    from training.plots import plot_confusion, plot_j2s_history, plot_pck

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads or max(1, min(os.cpu_count() or 1, 8)))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = data or prepare(cfg, progress)
    c = data.crops
    device = resolve_device(cfg.device)
    model = J2S(J2SConfig(len(cfg.labels), cfg.backbone, tuple(cfg.cls_hidden), cfg.dropout, mean_wrist(data)))
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=0.1)
    weighting = make_weighting(cfg.weighting, cfg.alpha)
    augment = RUNTIME_AUGMENT if cfg.augment else CropAugment()
    history: list[dict] = []
    start = 0
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        ck = load_checkpoint(ckpt, needs=("fingerprint", "data_sha256", "model", "optimizer"), map_location=device)
        if ck["fingerprint"] != cfg.fingerprint() or ck["data_sha256"] != c.data_sha256:
            raise CheckpointError(f"{ckpt} was made with a different configuration or data; use a new --out or "
                                  "--no-resume")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        history, start = ck["history"], ck["epoch"] + 1
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())
        if device.type == "cuda" and ck.get("cuda_rng") is not None:  # dropout on the GPU draws from its own generator
            torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), device)
        if progress:
            print(f"resuming from epoch {start} ({ckpt})")

    steps = int(np.ceil(len(data.train) / cfg.batch_size))
    bar = tqdm(range(start, cfg.epochs), desc=f"train j2s ({cfg.weighting})", unit="epoch", initial=start,
               total=cfg.epochs, disable=not progress)
    for epoch in bar:
        t0 = time.time()
        model.train()
        weighting.start_epoch()
        order = rng.permutation(data.train)
        sums, w_max = np.zeros(5), 0.0
        for s in range(steps):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            images, target = augment(c.images[idx], np.nan_to_num(c.keypoints[idx]), rng)
            kp, logits = model(torch.from_numpy(normalise(images)).to(device))
            l_reg = masked_l2(kp, torch.from_numpy(target).to(device), torch.from_numpy(c.mask[idx]).to(device))
            l_cls = nn.functional.cross_entropy(logits, torch.from_numpy(data.y[idx]).to(device))
            w_reg, w_cls = weighting.weights(l_reg, l_cls)
            loss = w_reg * l_reg + w_cls * l_cls
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at epoch {epoch}, batch {s} (L_reg "
                                         f"{l_reg.item()}, L_cls {l_cls.item()}): start again with --no-resume and a "
                                         "lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sums += (loss.item(), l_reg.item(), l_cls.item(), w_reg, w_cls)
            w_max = max(w_max, w_reg, w_cls)
        lr = opt.param_groups[0]["lr"]  # the rate this epoch trained with
        sched.step()
        v_reg, v_cls, v_acc, v_epe = _val_losses(model, data)
        m = sums / steps
        history.append({"epoch": epoch, "train_total": m[0], "train_reg": m[1], "train_cls": m[2], "w_reg": m[3],
                        "w_cls": m[4], "w_max": w_max, "val_reg": v_reg, "val_cls": v_cls, "val_accuracy": v_acc,
                        "val_epe_median": v_epe, "lr": lr, "seconds": time.time() - t0})
        bar.set_postfix(reg=f"{m[1]:.4f}", cls=f"{m[2]:.3f}", val_acc=f"{v_acc:.3f}", val_epe=f"{v_epe:.2f}px")
        atomic_torch_save({"fingerprint": cfg.fingerprint(), "data_sha256": c.data_sha256,
                            "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(), "history": history, "epoch": epoch,
                            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}, ckpt)
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    model.eval().cpu()  # the paper's final model is the last epoch's (fixed schedule), not a validation pick
    summary = {"config": asdict(cfg), "model": model.config.to_dict(), "split": data.description,
               "counts": {"train": int(len(data.train)), "val": int(len(data.val)), "test": int(len(data.test))},
               "train_keypoint_coverage": float(c.mask[data.train, 0].mean()) if len(data.train) else 0.0,
               "data_sha256": {Path(cfg.data).name: c.data_sha256}, "command": command_line(),
               "normalisation": {"mean": list(MEAN), "std": list(STD), "input": "RGB 0..1"},
               "final_val": history[-1] if history else None}
    if evaluate_test and len(data.test):
        rep = evaluate_split(model, data, data.test, cfg.labels)
        summary["test"] = rep
        cls = rep["classification"]
        plot_confusion(cls, out / "confusion_matrix.png", title=f"J2S {cfg.weighting}, test: {data.description}\n"
                       f"accuracy {cls['accuracy']:.1%}")
        plot_pck({f"J2S {cfg.weighting}": rep["keypoints_256px"]}, out / "pck.png",
                 title=f"PCK on the test split ({data.description})", xlabel="threshold (pixels, 256-pixel scale)")
        if progress:
            k = rep["keypoints_256px"]
            print(format_report(cls, f"test ({data.description})"))
            print(f"keypoints: EPE median {k['epe_median']:.2f} px, mean {k['epe_mean']:.2f} px (256-pixel scale), "
                  f"AUC {k['auc']:.3f}")
    if history:
        plot_j2s_history(history, out / "loss_curves.png")
    atomic_torch_save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "labels": cfg.labels,
                       "normalisation": summary["normalisation"]}, out / "model.pt")
    atomic_write_text(out / "history.json", json.dumps(history, indent=1))
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=1))
    return summary


def load_j2s(path: str | Path) -> tuple[J2S, list[str]]:
    """A model.pt written by :func:`train_j2s` -> (model in eval mode, labels)."""
    ck = torch.load(path, weights_only=False, map_location="cpu")
    model = J2S(J2SConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck["labels"]

