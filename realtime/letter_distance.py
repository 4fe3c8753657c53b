"""How unlike every learned letter a hand is: ``--reject-far-hands`` (issue 14's "no letter" outcome).

A hand shape the model never learned (a digit, a hand half way between letters) still gets a confident reading a
quarter to a third of the time. In the classifier's penultimate features (its ``embedding`` output) the training
hands of each class gather around a mean; a hand much farther from every class mean than the model's own
validation hands are is not one of its letters. :class:`LetterDistance` keeps one mean per class and the inverse
of the covariance they share (Mahalanobis distance, Lee et al. 2018) and the threshold: the ``quantile`` of the
validation hands' distances (99%: one validation hand in a hundred is refused). It is made from the model's own
training and validation hands by ``fingerspell train letter-distance`` and shipped beside the model
(``distance.npz``, its sha256 in the manifest). Measured on people never seen: docs/results-rejection.md.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.manifest import ModelError, read_checked, save_npz

DISTANCE_FILE = "distance.npz"
DEFAULT_QUANTILE = 0.99


@dataclass
class LetterDistance:
    means: np.ndarray  # (C, H): each class's mean embedding
    precision: np.ndarray  # (H, H): the inverse of the covariance shared by the classes
    threshold: float = np.inf  # hands farther than this (squared distance) are refused
    quantile: float = DEFAULT_QUANTILE  # of the validation hands' distances that made the threshold
    sha256: str = ""  # of the file it was loaded from

    def __post_init__(self):  # the terms of the means alone, once: a frame computes only its hand's own
        self._means_t = np.ascontiguousarray(self.means.T)
        self._mean_terms = ((self.means @ self.precision) * self.means).sum(1)

    @classmethod
    def fit(cls, emb: np.ndarray, y: np.ndarray, val_emb: np.ndarray, quantile: float = DEFAULT_QUANTILE,
            shrink: float = 1e-3) -> "LetterDistance":
        """Class means and shared covariance of training embeddings ``emb`` (labels ``y``), a small ridge (``shrink``
        of the mean variance: a few directions barely vary), and the threshold from the validation embeddings."""
        emb, y = np.asarray(emb, np.float64), np.asarray(y)
        classes = np.unique(y)
        means = np.stack([emb[y == c].mean(0) for c in classes])
        centred = emb - means[np.searchsorted(classes, y)]
        cov = centred.T @ centred / max(1, len(emb) - len(classes))
        cov += shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
        out = cls(means, np.linalg.inv(cov), quantile=quantile)
        out.threshold = float(np.quantile(out(np.asarray(val_emb, np.float64)), quantile))
        return out

    def __call__(self, emb: np.ndarray) -> np.ndarray:
        """(N, H) embeddings -> (N,) squared Mahalanobis distance to the nearest class mean (expanded, so that no
        (N, C, H) array is made)."""
        emb = np.asarray(emb, np.float64).reshape(-1, self.precision.shape[0])
        hp = emb @ self.precision
        d = (hp * emb).sum(1)[:, None] - 2 * hp @ self._means_t + self._mean_terms[None]
        return d.min(1)

    def far(self, emb: np.ndarray) -> np.ndarray:
        """(N,) bool: the hands farther from every class than the threshold."""
        return self(emb) > self.threshold

    def save(self, path: str | Path) -> Path:
        return save_npz(path, means=self.means.astype(np.float32), precision=self.precision.astype(np.float32),
                        threshold=np.float64(self.threshold), quantile=np.float64(self.quantile))

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None, embedding_size: int | None = None) -> "LetterDistance":
        """Read ``path``, checked against the manifest's sha256 and the model's embedding size where given."""
        path = Path(path)
        raw, digest = read_checked(path, sha256, "letter-distance file",
                                   "make it again with 'fingerspell train letter-distance'")
        try:
            with np.load(io.BytesIO(raw)) as z:
                out = cls(z["means"].astype(np.float64), z["precision"].astype(np.float64), float(z["threshold"]),
                          float(z["quantile"]), digest)
        except Exception as e:  # a damaged zip raises many kinds
            raise ModelError(f"{path}: not a readable letter-distance file ({type(e).__name__}: {e})") from e
        h = out.precision.shape
        if out.means.ndim != 2 or h != (out.means.shape[1],) * 2 or (embedding_size and h[0] != embedding_size):
            raise ModelError(f"{path}: its arrays do not fit together or the model's embedding ({out.means.shape}, "
                             f"{h}; embedding {embedding_size})")
        return out


def load_for(folder: Path, manifest) -> LetterDistance:
    """A model folder's letter distance, refused with a message that says how to make it when it has none."""
    entry = manifest.raw.get("distance")
    if not entry:
        raise ModelError(f"{manifest.name} has no letter distance ({DISTANCE_FILE}), which --reject-far-hands needs: "
                         f"make it with 'fingerspell train letter-distance --model {folder}' (the shipped asl-letters "
                         "has one)")
    size = (manifest.raw.get("embedding") or {}).get("shape", [None, None])[-1]
    return LetterDistance.load(Path(folder) / entry["file"], entry.get("sha256"), size)
