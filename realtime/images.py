"""Labelled image folders (``LABEL/file``, with an optional ``manifest.csv``) and reading one image without ever
failing on a bad file: what the runtime's file inputs (a folder of photos, ``calibrate --data``, ``hands-check``)
and the training code both read.

A manifest has the columns ``path,label,signer,source_split`` (path relative to the dataset folder). Without
one, the folder is scanned and signer / source split are left empty. Unreadable images are never fatal:
:func:`read_image` returns None and callers count them.
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Sample:
    path: Path  # absolute
    rel: str  # relative to the dataset root, as in the manifest
    label: str
    signer: str
    source_split: str
    dataset: str


class DatasetError(ValueError):
    pass


class ImageFolder:
    """A labelled image folder; ``samples`` in a stable order (manifest order, or sorted)."""

    def __init__(self, root: str | os.PathLike, labels: Iterable[str] | None = None):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder not found: {self.root}")
        self.name = self.root.name
        manifest = self.root / "manifest.csv"
        self.has_manifest = manifest.is_file()
        samples = self._from_manifest(manifest) if self.has_manifest else self._scan()
        if labels is not None:
            keep = set(labels)
            samples = [s for s in samples if s.label in keep]
        if not samples:
            raise DatasetError(f"no images found in {self.root} (expected LABEL/image files)")
        self.samples: list[Sample] = samples

    def _from_manifest(self, manifest: Path) -> list[Sample]:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"path", "label"} - set(reader.fieldnames or [])
            if missing:
                raise DatasetError(f"{manifest} lacks column(s) {sorted(missing)}")
            rows = list(reader)
        for line, r in enumerate(rows, start=2):
            if not (r.get("path") or "").strip() or not (r.get("label") or "").strip() or None in r:
                raise DatasetError(f"{manifest}, row {line}: no path or no label, or more fields than columns "
                                   f"(an unclosed quote or a stray comma?): {dict(r)}")
        return [Sample(self.root / r["path"], r["path"], r["label"], (r.get("signer") or "").strip(),
                       (r.get("source_split") or "").strip(), self.name) for r in rows]

    def _scan(self) -> list[Sample]:
        out = []
        for label_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for f in sorted(label_dir.iterdir()):
                if f.suffix.lower() in IMAGE_EXTENSIONS:
                    rel = f"{label_dir.name}/{f.name}"
                    out.append(Sample(f, rel, label_dir.name, "", "", self.name))
        return out

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[str]:
        return sorted({s.label for s in self.samples})

    def counts(self) -> Counter:
        return Counter(s.label for s in self.samples)

    def content_hash(self) -> str:
        """sha256 over (path, label, signer, source_split, file size) of every sample: changes when the data does."""
        h = hashlib.sha256()
        for s in self.samples:
            try:
                size = s.path.stat().st_size
            except OSError:
                size = -1
            h.update(f"{s.rel}\t{s.label}\t{s.signer}\t{s.source_split}\t{size}\n".encode())
        return h.hexdigest()


def read_image(path: str | os.PathLike) -> np.ndarray | None:
    """BGR uint8 image, or None when the file is missing, corrupt or not an image."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or min(img.shape[:2]) < 8:
        return None
    return img
