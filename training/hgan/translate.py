"""Use a trained H-GAN: render hands from keypoints, translate them to the real domain, write a labelled folder.

The folder has the layout of the real datasets and of ``fingerspell generate`` (``LABEL/NNNNNN.png``,
``manifest.csv``, ``generated.json``), so ``fingerspell train classifier --generated DIR`` and every paper-000
strategy read it unchanged.
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

from training.hgan.config import HGANConfig
from training.hgan.networks import ResnetGenerator


@dataclass
class LoadedHGAN:
    generator: ResnetGenerator  # G_r (EMA), synthetic -> real
    config: HGANConfig
    step: int
    path: Path

    @property
    def device(self):
        return next(self.generator.parameters()).device

    @torch.no_grad()
    def translate(self, images_u8: np.ndarray, masks_u8: np.ndarray | None, batch: int = 256) -> np.ndarray:
        """Rendered crops (N, S, S, 3) uint8 (and their masks (N, S, S) uint8) -> translated crops, uint8."""
        from training.hgan.trainer import refine

        out = []
        for i in range(0, len(images_u8), batch):
            x = torch.from_numpy(images_u8[i:i + batch]).permute(0, 3, 1, 2).float().to(self.device) / 127.5 - 1
            m = None
            if self.config.mask_refine and masks_u8 is not None:
                m = torch.from_numpy(masks_u8[i:i + batch])[:, None].float().to(self.device) / 255
            y = refine(self.generator(x), x, m)
            out.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0,) + images_u8.shape[1:], np.uint8)


def load_hgan(path: str | os.PathLike, device: str = "cpu", ema: bool = True) -> LoadedHGAN:
    """A run folder (its ``checkpoint.pt``) or a checkpoint file."""
    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no H-GAN checkpoint at {file}: train one with 'fingerspell train hgan'")
    try:
        ck = torch.load(file, map_location=device, weights_only=False)
    except Exception as e:
        raise ValueError(f"{file} cannot be read: {e}") from e
    if not isinstance(ck, dict) or ck.get("kind") != "hgan":
        raise ValueError(f"{file} is not an H-GAN checkpoint")
    config = HGANConfig.from_dict({**ck["config"], "betas": tuple(ck["config"]["betas"])})
    g = ResnetGenerator(config.ngf, config.blocks)
    g.load_state_dict(ck["G_ema" if ema else "G_r"])
    return LoadedHGAN(g.to(device).eval(), config, ck["step"], file)


def balanced_poses(landmarks: np.ndarray, labels: np.ndarray, per_class: int, config: HGANConfig, seed: int,
                   classes: list[str] | None = None):
    """``per_class`` turned and mirrored poses of every class (its own draws from that class's real hands)."""
    from training.hgan.render import source_poses

    classes = classes or sorted(set(labels.tolist()))
    lms, labs = [], []
    for ci, c in enumerate(classes):
        members = labels == c
        if not members.any():
            raise ValueError(f"no hands of class {c!r} to draw poses from")
        lm, lab = source_poses(landmarks[members], labels[members], per_class, seed * 100003 + ci, config.yaw,
                               config.pitch, config.roll, config.mirror)
        lms.append(lm), labs.append(lab)
    return np.concatenate(lms), np.concatenate(labs)


def write_translated(hgan: LoadedHGAN, landmarks: np.ndarray, labels: np.ndarray, out: str | os.PathLike,
                     seed: int = 0, keep_synthetic: bool = False, progress: bool = True, extra: dict | None = None) -> dict:
    """Render ``landmarks`` (N, 21, 3), translate them and write ``out`` (see the module docstring). With
    ``keep_synthetic`` the rendered inputs go to ``out/synthetic/`` too (same names), for side-by-side checks."""
    import cv2

    from training.hgan.data import render_settings
    from training.hgan.render import render_hands

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    r = render_hands(landmarks, seed, render_settings(hgan.config), progress=progress)
    translated = hgan.translate(r["images"], r["masks"])
    rows, counts = [], {}
    for i in tqdm(range(len(labels)), desc="write", unit="img", disable=not progress):
        label = str(labels[i])
        k = counts.get(label, 0)
        counts[label] = k + 1
        rel = f"{label}/{k:06d}.png"
        (out / label).mkdir(exist_ok=True)
        cv2.imwrite(str(out / rel), cv2.cvtColor(translated[i], cv2.COLOR_RGB2BGR))
        if keep_synthetic:
            (out / "synthetic" / label).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / "synthetic" / rel), cv2.cvtColor(r["images"][i], cv2.COLOR_RGB2BGR))
        rows.append((rel, label, f"hgan:{hgan.config.name}", "generated"))
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("path", "label", "signer", "source_split"))
        w.writerows(rows)
    np.savez_compressed(out / "poses.npz", landmarks=landmarks.astype(np.float32), keypoints=r["keypoints"],
                        labels=np.asarray(labels).astype(str), masks=r["masks"])
    info = {"checkpoint": str(hgan.path), "step": hgan.step, "model": "hgan", "config": hgan.config.to_dict(),
            "classes": sorted(counts), "per_class": max(counts.values()) if counts else 0, "seed": seed,
            "images": len(rows), **(extra or {})}
    (out / "generated.json").write_text(json.dumps(info, indent=1))
    return info
