"""Shared test helpers: where the real datasets are, and a video made from real dataset photos."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ENV = "FINGERSPELL_DATASETS"


def datasets_root() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value and Path(value).is_dir() else None


def need_dataset(name: str) -> Path:
    """The dataset folder, or skip the test saying why."""
    root = datasets_root()
    if root is None:
        pytest.skip(f"needs the real datasets: set {ENV} to the folder holding them (e.g. ../shared/datasets)")
    if not (root / name / "manifest.csv").is_file():
        pytest.skip(f"dataset {name!r} not found under ${ENV}={root}")
    return root / name


def manifest_rows(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def place_on_canvas(img: np.ndarray, size=(640, 480), hand_px: int = 320) -> np.ndarray:
    """Put a hand photo in the middle of a black webcam-sized frame, scaled so the photo is hand_px tall."""
    import cv2

    w, h = size
    s = hand_px / img.shape[0]
    img = cv2.resize(img, (int(img.shape[1] * s), hand_px), interpolation=cv2.INTER_CUBIC)
    canvas = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    canvas[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return canvas


def write_spelling_video(path: Path, images: list[np.ndarray], fps: int = 15, hold_s: float = 1.2,
                         gap_s: float = 0.6) -> None:
    """One still per letter held hold_s, with gap_s of empty frames (hand gone) between letters."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    assert writer.isOpened(), "OpenCV cannot write mp4v video here"
    blank = np.zeros((480, 640, 3), np.uint8)
    for img in images:
        frame = place_on_canvas(img)
        for _ in range(int(hold_s * fps)):
            writer.write(frame)
        for _ in range(int(gap_s * fps)):
            writer.write(blank)
    writer.release()


def small_copy(src: Path, dst: Path, rows: list[dict]) -> Path:
    """A few real images in their own dataset folder (in tmp), with a manifest."""
    lines = ["path,label,signer,source_split"]
    for r in rows:
        (dst / r["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(src / r["path"], dst / r["path"])
        lines.append(f"{r['path']},{r['label']},{r['signer']},{r['source_split']}")
    (dst / "manifest.csv").write_text("\n".join(lines) + "\n")
    return dst


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "realtime.cli", *args], capture_output=True, text=True, timeout=timeout)
