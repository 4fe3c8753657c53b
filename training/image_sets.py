"""Hand crops of several datasets at once, for one image classifier of an alphabet (``fingerspell train classifier
--data massey,roboflow,kaggle_asl,digits``).

Each dataset's labels are mapped as the keypoint recipe of the alphabet maps them (``training.experiments``: the
ASL digits 0/2/6/9 are the handshapes O/V/W/F), and only that alphabet's letters are kept: the image model has no
no-letter class (the fused classifier takes that from the keypoint model). Signers become ``dataset/signer``.
Training draws batches balanced by dataset, then by class within a dataset, as the keypoint models do (otherwise
the 5,800 single-signer ``kaggle_asl`` photos would dominate); whole datasets or signers can be held out.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.hand_crops import HandCrops, load_hand_crops

ALPHABETS = ("asl", "lis")


def alphabet(name: str) -> tuple[list[str], dict]:
    """(letters, label map per dataset) of an alphabet's keypoint recipe."""
    from training.experiments import ASL_LABEL_MAP, LIS_LABEL_MAP
    from training.train_keypoints import ASL_LETTERS, LIS_LETTERS

    if name not in ALPHABETS:
        raise ValueError(f"alphabet must be one of {ALPHABETS}, got {name!r}")
    return (list(ASL_LETTERS), ASL_LABEL_MAP) if name == "asl" else (list(LIS_LETTERS), LIS_LABEL_MAP)


@dataclass
class CropSets:
    crops: HandCrops  # all datasets' crops; signers as "dataset/signer"
    datasets: np.ndarray  # (N,) str: the dataset of each row
    hashes: dict  # dataset name -> content sha256

    @property
    def names(self) -> list[str]:
        return list(self.hashes)


def map_crop_labels(crops: HandCrops, mapping: dict, letters: list[str]) -> HandCrops:
    """Rename labels as ``training.train_keypoints.map_labels`` does (key ``"*"``: every other label; None drops),
    then keep the rows whose label is one of ``letters``."""
    labels = crops.labels
    if mapping:
        labels = np.array([str(mapping.get(str(l), mapping.get("*", str(l)))) for l in labels])
    keep = np.flatnonzero(np.isin(labels, letters))
    out = crops.subset(keep)
    out.labels = labels[keep]
    return out


def load_crop_sets(roots: list[str | os.PathLike], size: int, crop: str = "hand", alphabet_name: str | None = "asl",
                   labels: list[str] | None = None, cache_dir=None, progress: bool = True) -> CropSets:
    """The hand crops of every dataset in ``roots``, labels mapped to ``alphabet_name``'s letters (None: as they are),
    optionally only ``labels``."""
    parts, names, hashes = [], [], {}
    letters, label_map = alphabet(alphabet_name) if alphabet_name else (None, {})
    for root in roots:
        root = Path(root)
        c = load_hand_crops(root, size, crop, cache_dir=cache_dir, progress=progress)
        if letters is not None:
            c = map_crop_labels(c, label_map.get(root.name, {}), letters)
        if labels is not None:
            c = c.subset(np.flatnonzero(np.isin(c.labels, labels)))
        if not len(c):
            raise ValueError(f"{root.name}: no crops with a hand among the labels kept "
                             f"({'the ' + alphabet_name.upper() + ' letters' if letters else labels})")
        c.signers = np.char.add(f"{root.name}/", c.signers.astype(str))
        parts.append(c)
        names += [root.name] * len(c)
        hashes[root.name] = c.data_sha256
    crops = HandCrops(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("images", "keypoints", "has_pose", "labels", "signers", "rel")),
                      dataset="+".join(hashes), data_sha256="")
    return CropSets(crops, np.asarray(names), hashes)


def balanced_weights(datasets: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Sampling weight per row: each dataset equal, each class equal within its dataset (sums to 1)."""
    w = np.zeros(len(labels), np.float64)
    for d in np.unique(datasets):
        in_d = datasets == d
        classes = np.unique(labels[in_d])
        for c in classes:
            m = in_d & (labels == c)
            w[m] = 1.0 / (len(classes) * m.sum())
    return w / w.sum()


def split_sets(sets: CropSets, test_datasets: list[str] = (), test_signers: list[str] = (), val_fraction: float = 0.1,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices: the test datasets and signers (``dataset/signer``) held out; the rest split
    90/10 by class, with a photo's augmented copies (roboflow) on one side."""
    from training.data import source_photo_id
    from training.splits import grouped_stratified_indices

    unknown = sorted(set(test_datasets) - set(sets.names))
    if unknown:
        raise ValueError(f"test datasets {unknown} are not among the training data {sets.names}")
    c = sets.crops
    is_test = np.isin(sets.datasets, list(test_datasets))
    for s in test_signers:
        hit = c.signers == s
        if not hit.any():
            raise ValueError(f"test signer {s!r} not found: give DATASET/SIGNER, one of {sorted(set(c.signers))}")
        is_test |= hit
    pool = np.flatnonzero(~is_test)
    if not len(pool):
        raise ValueError("every dataset is held out: nothing left to train on")
    photos = np.array([f"{d}/{source_photo_id(r)}" for d, r in zip(sets.datasets[pool], c.rel[pool])])
    strata = np.char.add(np.char.add(sets.datasets[pool].astype(str), "/"), c.labels[pool].astype(str))
    tr, va = grouped_stratified_indices(strata, photos, (1 - val_fraction, val_fraction), seed)
    return pool[tr], pool[va], np.flatnonzero(is_test)
