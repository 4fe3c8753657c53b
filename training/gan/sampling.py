"""Use a trained generator: load it, sample with truncation, write balanced datasets, filter them, draw grids.

``generate_dataset`` writes ``OUT/LABEL/NNNNNN.png`` plus ``manifest.csv`` (``path,label,signer,source_split``,
the layout of the real datasets, so every tool that reads those reads these) and ``generated.json`` (the
checkpoint, its step and config, truncation, pose source, filter). SPADE draws each image from the pose
of a real image of the wanted class, taken from a pose source: any dataset with cached keypoints,
including one the GAN never saw (multi-source).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.gan.config import GANConfig
from training.gan.models import build_models
from training.io import atomic_torch_save
from training.gan.pose_maps import pose_maps


@dataclass
class LoadedGenerator:
    G: torch.nn.Module
    config: GANConfig
    classes: list[str]
    step: int
    path: Path

    @property
    def device(self):
        return next(self.G.parameters()).device


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    """torch.load with a message that names the file when it is truncated or not a checkpoint at all."""
    try:
        ck = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # pickle, zip and EOF errors all mean the same thing to the user
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); was it cut short? "
                         f"Delete it to start again, or point to another file") from e
    if not isinstance(ck, dict):
        raise ValueError(f"{path} is not a GAN checkpoint written by 'fingerspell train gan'")
    return ck


def load_generator(path: str | os.PathLike, device: str = "cpu", ema: bool = True) -> LoadedGenerator:
    """A generator from a trainer checkpoint (``checkpoint.pt`` or its folder), or a shipped ``generator.pt``."""
    path = Path(path)
    if path.is_dir():
        path = next((path / f for f in ("checkpoint.pt", "generator.pt") if (path / f).exists()), path / "checkpoint.pt")
    if not path.exists():
        raise FileNotFoundError(f"no GAN checkpoint at {path}: train one with 'fingerspell train gan'")
    _verify_shipped(path)
    ck = read_checkpoint(path)
    if "config" not in ck or ("G_ema" not in ck and "G" not in ck):
        raise ValueError(f"{path} is not a GAN checkpoint written by 'fingerspell train gan'")
    config = GANConfig.from_dict(ck["config"])
    g, _ = build_models(config, len(ck["classes"]))
    state = ck["G_ema"] if (ema and "G_ema" in ck) else ck["G"]
    g.load_state_dict({k: v.float() for k, v in state.items()})
    return LoadedGenerator(g.to(device).eval(), config, list(ck["classes"]), int(ck["step"]), path)


def _verify_shipped(path: Path) -> None:
    """A shipped generator (``weights/NAME/generator.pt`` beside a manifest) must be the file its manifest names."""
    from realtime.manifest import MANIFEST, verify_sha256

    manifest = path.parent / MANIFEST
    if path.name == "generator.pt" and manifest.is_file():
        want = json.loads(manifest.read_text()).get("sha256")
        if want:
            verify_sha256(path, want)


def export_generator(run: str | os.PathLike, folder: str | os.PathLike, metrics: dict | None = None,
                     command: str | None = None) -> dict:
    """Ship a trained generator: its EMA weights in fp16 (``generator.pt``), config and classes, and a manifest
    (sha256, data, step, metrics, the command that made it). ``load_generator(folder)`` reads it back."""
    from realtime.manifest import file_fields, write_manifest

    src = Path(run)
    src = src / "checkpoint.pt" if src.is_dir() else src
    ck = read_checkpoint(src)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["G_ema"].items()}
    atomic_torch_save({"config": ck["config"], "classes": ck["classes"], "step": ck["step"], "G_ema": state,
                        "dataset": ck.get("dataset"), "data_sha256": ck.get("data_sha256")}, folder / "generator.pt")
    cfg = ck["config"]
    manifest = {"name": folder.name, "kind": "gan-generator", **file_fields(folder / "generator.pt"),
                "model": cfg["model"], "labels": ck["classes"], "size": cfg["size"], "step": ck["step"],
                "output": "RGB images in -1..1, (N, 3, size, size)",
                "training": {"data": [Path(cfg["dataset"]).name], "data_sha256": ck.get("data_sha256"),
                             "exclude_signers": cfg.get("exclude_signers", []), "config": cfg,
                             "datasets_env": "FINGERSPELL_DATASETS (the datasets are not in the repository)",
                             "command": command},
                "metrics": metrics or {}}
    return write_manifest(folder, manifest)


def truncated_normal(n: int, dim: int, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
    """z ~ N(0, I), entries beyond +-truncation redrawn (the truncation trick: fidelity for diversity)."""
    z = torch.randn(n, dim, generator=generator)
    if truncation is None or truncation <= 0:
        return z
    bad = z.abs() > truncation
    while bad.any():
        z[bad] = torch.randn(int(bad.sum()), generator=generator)
        bad = z.abs() > truncation
    return z


class PoseSource:
    """Keypoints of real hands per class, in crop fractions, for SPADE: a dataset folder or a hand-crops set."""

    def __init__(self, keypoints: np.ndarray, labels: np.ndarray, name: str):
        ok = ~np.isnan(keypoints[:, 0, 0])
        self.keypoints, self.labels, self.name = keypoints[ok].astype(np.float32), labels[ok].astype(str), name

    @classmethod
    def from_dataset(cls, root, size: int, crop: str = "hand", cache_dir=None, progress=True) -> "PoseSource":
        from training.hand_crops import load_hand_crops

        crops = load_hand_crops(root, size, crop, cache_dir=cache_dir, progress=progress)
        return cls(crops.keypoints, crops.labels, crops.dataset)

    def draw(self, label: str, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = np.flatnonzero(self.labels == label)
        if not len(idx):
            raise ValueError(f"the pose source {self.name} has no hand of class {label!r}; it has "
                             f"{sorted(set(self.labels.tolist()))}")
        return self.keypoints[rng.choice(idx, n, replace=len(idx) < n)]


@torch.no_grad()
def generate(gen: LoadedGenerator, label: str, n: int, truncation: float | None = None,
             poses: PoseSource | None = None, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """``n`` images of class ``label`` in -1..1, (n, 3, S, S) on the CPU."""
    c = gen.config
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    if c.model == "reacgan":
        if label not in gen.classes:
            raise ValueError(f"class {label!r} unknown to this generator; it knows {gen.classes}")
        cond_all = torch.full((n,), gen.classes.index(label), dtype=torch.long)
    else:
        if poses is None:
            raise ValueError("SPADE generates from poses: give a pose source (--poses DATASET)")
        cond_all = torch.from_numpy(poses.draw(label, n, rng))
    out = []
    for i in range(0, n, batch):
        z = truncated_normal(min(batch, n - i), c.z_dim, truncation, g).to(gen.device)
        cond = cond_all[i:i + batch].to(gen.device)
        if c.model == "spade":
            cond = pose_maps(cond, c.size, c.pose)
        out.append(gen.G(z, cond).clamp(-1, 1).cpu())
    return torch.cat(out) if out else torch.zeros(0, 3, c.size, c.size)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) in -1..1 -> (N, S, S, 3) uint8 RGB."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(images: torch.Tensor, path: str | os.PathLike, ncol: int, row_labels: list[str] | None = None,
              scale: int = 2) -> None:
    """A PNG grid, rows labelled on the left; ``images`` (N, 3, S, S) in -1..1."""
    import cv2

    x = to_uint8(images.detach().cpu())
    n, s = len(x), x.shape[1]
    nrow = (n + ncol - 1) // ncol
    margin = 28 if row_labels else 0
    grid = np.full((nrow * (s + 2), margin + ncol * (s + 2), 3), 255, np.uint8)
    for i, img in enumerate(x):
        r, col = divmod(i, ncol)
        grid[r * (s + 2) + 1:r * (s + 2) + 1 + s, margin + col * (s + 2) + 1:margin + col * (s + 2) + 1 + s] = img
    grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for r, text in enumerate(row_labels or []):
        cv2.putText(grid, str(text), (4, int((r * (s + 2) + s / 2 + 6) * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 0), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def top_k_per_class(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores within each class (all of a class if it has fewer), sorted."""
    labels = np.asarray(labels)
    keep = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        keep.extend(idx[np.argsort(-scores[idx], kind="stable")[:k]].tolist())
    return np.sort(np.asarray(keep, dtype=np.int64))


def generate_dataset(gen: LoadedGenerator, out: str | os.PathLike, per_class: int, labels: list[str] | None = None,
                     truncation: float | None = None, poses: PoseSource | None = None, seed: int = 0,
                     filter_top_k: int | None = None, scorer=None, progress: bool = True,
                     extra: dict | None = None) -> dict:
    """Write a balanced image folder. With ``filter_top_k``, ``per_class`` images are generated per class and
    the ``filter_top_k`` that ``scorer`` (a real-data classifier) finds most likely to show their class kept."""
    import cv2

    out = Path(out)
    labels = labels or (gen.classes if gen.config.model == "reacgan" else sorted(set(poses.labels.tolist())))
    if filter_top_k is not None:
        if scorer is None:
            raise ValueError("filtering needs a classifier trained on real data (--evaluator)")
        if filter_top_k > per_class:
            raise ValueError(f"--filter-top-k {filter_top_k} is more than the {per_class} generated per class")
        missing = sorted(set(labels) - set(scorer.labels))
        if missing:
            raise ValueError(f"the filter's classifier does not know classes {missing}")
    out.mkdir(parents=True, exist_ok=True)
    rows, kept_scores = [], {}
    for ci, label in enumerate(tqdm(labels, desc="generate", unit="class", disable=not progress)):
        x = generate(gen, label, per_class, truncation, poses, seed=seed * 100003 + ci)
        if filter_top_k is not None:
            p = scorer.probabilities(x)[:, scorer.labels.index(label)]
            keep = top_k_per_class(p, np.full(len(p), label), filter_top_k)
            x, p = x[keep], p[keep]
            kept_scores[label] = float(p.mean())
        (out / label).mkdir(exist_ok=True)
        for i, img in enumerate(to_uint8(x)):
            rel = f"{label}/{i:06d}.png"
            cv2.imwrite(str(out / rel), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            rows.append((rel, label, f"gan:{gen.config.name}", "generated"))
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("path", "label", "signer", "source_split"))
        w.writerows(rows)
    info = {"checkpoint": str(gen.path), "step": gen.step, "model": gen.config.model, "config": gen.config.to_dict(),
            "classes": labels, "per_class": filter_top_k or per_class, "generated_per_class": per_class,
            "truncation": truncation, "seed": seed, "pose_source": poses.name if poses else None,
            "filter_top_k": filter_top_k, "filter_mean_score": kept_scores or None, **(extra or {})}
    (out / "generated.json").write_text(json.dumps(info, indent=1))
    return info
