"""Datasets for training: where they are (``$FINGERSPELL_DATASETS``), which files derive from one photo (so that
splits never straddle them), and labels as indices. The image folders themselves are read by
:mod:`realtime.images`, which the runtime shares.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

DATASETS_ENV = "FINGERSPELL_DATASETS"
_ROBOFLOW_COPY = re.compile(r"_(jpe?g|png)\.rf\.[0-9a-fA-F]+\.\w+$")
_LANDMARK_ROW = re.compile(r"^(.+\.csv)#(\d+)$")
FRAME_BLOCK = 25  # rows of a landmark-only set (about 2.5 s of video at its 10 frames/s) kept together in splits


def source_photo_id(rel: str) -> str:
    """The photo a file was derived from: Roboflow exports several augmented copies of one photo
    (``A11_jpg.rf.<hash>.jpg``), which must never straddle a train / validation / test boundary. Rows of a
    landmark-only set (``landmarks.csv#ROW``) are consecutive, near-identical video frames: blocks of
    :data:`FRAME_BLOCK` rows count as one photo."""
    m = _LANDMARK_ROW.match(rel)
    if m:
        return f"{m.group(1)}#block{int(m.group(2)) // FRAME_BLOCK}"
    return _ROBOFLOW_COPY.sub("", rel)


class LabelMap:
    """Label <-> index, in a fixed order (the model's output order)."""

    def __init__(self, labels: Sequence[str]):
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate labels")
        self.labels = list(labels)
        self.index = {l: i for i, l in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, labels: Iterable[str]) -> np.ndarray:
        """Indices; -1 for labels this map does not know."""
        return np.array([self.index.get(l, -1) for l in labels], dtype=np.int64)


def datasets_root() -> Path | None:
    """The shared datasets folder named by $FINGERSPELL_DATASETS, if it exists."""
    value = os.environ.get(DATASETS_ENV)
    if value and Path(value).is_dir():
        return Path(value)
    return None
