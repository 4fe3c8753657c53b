"""Train / validation / test splits over sample metadata (index arrays, never copies of data).

Accuracy on a random split of one person's photos says little about a new user, so the
signer-independent splits are the ones to report; the random split exists to compare with
papers that used one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    description: str

    def check_disjoint(self) -> None:
        a, b, c = set(self.train.tolist()), set(self.val.tolist()), set(self.test.tolist())
        if a & b or a & c or b & c:
            raise AssertionError("split parts overlap")


def stratified_indices(labels: Sequence[str], fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Split indices into parts of the given fractions, class by class (each class keeps its proportion)."""
    fr = np.asarray(fractions, dtype=np.float64)
    if np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {list(fractions)}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fr]
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        bounds = np.round(np.cumsum(fr) * len(idx)).astype(int)
        start = 0
        for k, end in enumerate(bounds):
            parts[k].extend(idx[start:end].tolist())
            start = end
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def grouped_stratified_indices(labels: Sequence[str], groups: Sequence[str], fractions: Sequence[float],
                               seed: int = 0) -> list[np.ndarray]:
    """Like :func:`stratified_indices`, but whole groups (e.g. copies of one photo) go to one part."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    parts = stratified_indices(labels[first], fractions, seed)  # each group stratified by its first row's label
    return [np.sort(np.flatnonzero(np.isin(inverse, p))) for p in parts]


def stratified_split(labels: Sequence[str], val: float = 0.17, test: float = 0.17, seed: int = 0) -> Split:
    tr, va, te = stratified_indices(labels, (1 - val - test, val, test), seed)
    return Split(tr, va, te, f"stratified random {1 - val - test:.0%}/{val:.0%}/{test:.0%} (seed {seed})")


def source_split(source_splits: Sequence[str], train=("train",), val=("validation", "val"),
                 test=("test",)) -> Split:
    """Use the split each source shipped (manifest column ``source_split``)."""
    s = np.asarray(source_splits)
    pick = lambda names: np.flatnonzero(np.isin(s, list(names)))  # noqa: E731
    return Split(pick(train), pick(val), pick(test), f"source split train={list(train)} val={list(val)} test={list(test)}")


def signer_split(signers: Sequence[str], labels: Sequence[str], test_signers: Sequence[str],
                 val_signers: Sequence[str] = (), val_fraction: float = 0.1, seed: int = 0) -> Split:
    """Hold out whole signers for test (and optionally validation).

    Without ``val_signers`` the validation part is a stratified fraction of the remaining
    signers' images (for early stopping, not for reporting).
    """
    signers = np.asarray(signers)
    unknown = set(test_signers) - set(signers.tolist())
    if unknown:
        raise ValueError(f"test signer(s) not in the data: {sorted(unknown)}")
    test = np.flatnonzero(np.isin(signers, list(test_signers)))
    if val_signers:
        val = np.flatnonzero(np.isin(signers, list(val_signers)))
        train = np.flatnonzero(~np.isin(signers, list(test_signers) + list(val_signers)))
    else:
        pool = np.flatnonzero(~np.isin(signers, list(test_signers)))
        tr, va = stratified_indices(np.asarray(labels)[pool], (1 - val_fraction, val_fraction), seed)
        train, val = pool[tr], pool[va]
    return Split(train, val, test, f"signer-independent, test signers {sorted(test_signers)}")


def leave_one_signer_out(signers: Sequence[str], labels: Sequence[str], candidates: Sequence[str] | None = None,
                         val_fraction: float = 0.1, seed: int = 0) -> Iterator[tuple[str, Split]]:
    """One split per signer: that signer is the test set, everyone else trains."""
    names = sorted(set(candidates if candidates is not None else [s for s in signers if s]))
    for name in names:
        yield name, signer_split(signers, labels, [name], val_fraction=val_fraction, seed=seed)


def limit_per_class(labels: Sequence[str], indices: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """At most k indices per class from ``indices`` (stratified reduction for limited-data runs)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for label in sorted(set(labels[indices].tolist())):
        idx = indices[labels[indices] == label]
        keep.extend(rng.permutation(idx)[:k].tolist())
    return np.sort(np.asarray(keep, dtype=np.int64))
