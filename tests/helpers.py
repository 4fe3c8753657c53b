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
# A real hand signing W, cut from the demo's Calibrate tab as its test camera showed it (a massey photo on black):
# the hand-model tests that must run without the datasets read it. Not a docs screenshot, which changes with the page.
HAND_FRAME = Path(__file__).resolve().parent / "assets" / "hand-w.png"


def datasets_root() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value and Path(value).is_dir() else None


def need_dataset(name: str) -> Path:
    """The dataset folder, or skip the test saying why."""
    root = datasets_root()
    if root is None and os.environ.get(ENV):  # set, but wrong from here: a relative path seen from elsewhere, say
        pytest.skip(f"${ENV}={os.environ[ENV]} does not exist (seen from {os.getcwd()}); "
                    "give the datasets folder as an absolute path")
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


def own_photos(dst: Path, letters: str = "ABC", per_letter: int = 2, signer: str = "hand1") -> Path:
    """A person's own calibration folder as ``calibrate --data`` takes it: LABEL/file, no manifest, a few photos
    per letter of one massey signer."""
    massey = need_dataset("massey")
    seen: dict[str, int] = {}
    for r in manifest_rows(massey):
        if r["signer"] == signer and r["label"] in letters and seen.get(r["label"], 0) < per_letter:
            seen[r["label"]] = seen.get(r["label"], 0) + 1
            (dst / r["label"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(massey / r["path"], dst / r["path"])
    return dst


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "realtime.cli", *args], capture_output=True, text=True, timeout=timeout)


# --- small copies of the datasets for tests that need extracted keypoints (seconds, not a whole dataset's minutes)
def lis_giulia_copy(dst: Path) -> Path:
    """``lis`` cut down to every photo of GIULIA, the held-out signer of the lis models (so their whole test set),
    plus one photo per letter of two other signers for the training and validation parts of a split."""
    lis = need_dataset("lis")
    rows = manifest_rows(lis)
    others = {}
    for r in rows:
        if r["signer"] in ("ANTONIA", "KENZA"):
            others.setdefault((r["signer"], r["label"]), r)
    small_copy(lis, dst / "lis", [r for r in rows if r["signer"] == "GIULIA"] + list(others.values()))
    # the rest of the lis-letters recipe's data, cut down: webcam landmarks and the no-letter hands of digits / kaggle_asl
    landmark_copy(need_landmark_set("lis_webcam_landmarks"), dst / "lis_webcam_landmarks", 3)
    for name, labels in (("digits", ("3", "5")), ("kaggle_asl", ("del", "space"))):
        src = need_dataset(name)
        picked = {}
        for r in manifest_rows(src):
            if r["label"] in labels and len(picked.setdefault(r["label"], [])) < 2:
                picked[r["label"]].append(r)
        small_copy(src, dst / name, [r for rs in picked.values() for r in rs])
    return dst / "lis"


def asl_copies(dst: Path, per_label: int = 2) -> Path:
    """The asl-letters recipe's data cut down: massey, roboflow, kaggle_asl and digits with ``per_label`` photos per
    label each (two give its 10% validation part about one photo per letter), and the first frames of each letter
    of the landmark-only asl_webcam_landmarks."""
    for name in ("massey", "roboflow", "kaggle_asl", "digits"):
        src = need_dataset(name)
        seen, rows = {}, []
        for r in manifest_rows(src):
            if seen.get(r["label"], 0) < per_label:
                seen[r["label"]] = seen.get(r["label"], 0) + 1
                rows.append(r)
        small_copy(src, dst / name, rows)
    landmark_copy(need_landmark_set("asl_webcam_landmarks"), dst / "asl_webcam_landmarks", 5 * per_label)
    return dst


def need_landmark_set(name: str) -> Path:
    """A landmark-only dataset folder (``landmarks.csv``), or skip the test saying why."""
    need_dataset("massey")  # the same messages when the datasets folder is unset or wrong
    folder = datasets_root() / name
    if not (folder / "landmarks.csv").is_file():
        pytest.skip(f"landmark dataset {name!r} not found under ${ENV}={datasets_root()}")
    return folder


def landmark_copy(src: Path, dst: Path, per_label: int) -> Path:
    """The first ``per_label`` rows of each label of a landmark-only set, in their own folder of the same name."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = (src / "landmarks.csv").read_text().splitlines()
    seen, keep = {}, [lines[0]]
    for line in lines[1:]:
        label = line.split(",", 1)[0]
        if seen.get(label, 0) < per_label:
            seen[label] = seen.get(label, 0) + 1
            keep.append(line)
    (dst / "landmarks.csv").write_text("\n".join(keep) + "\n")
    return dst


def use_small_datasets(monkeypatch, root: Path, cache: Path) -> None:
    """Point the code at a cut-down datasets folder and its own keypoint cache. A cut copy's content hash differs
    from the one a shipped manifest recorded by design, so the check that the split is reproducible is off."""
    from export import real_inputs

    monkeypatch.setenv(ENV, str(root))
    monkeypatch.setenv("FINGERSPELL_CACHE", str(cache))
    monkeypatch.setattr(real_inputs, "_check_hash", lambda folder, manifest: None)
