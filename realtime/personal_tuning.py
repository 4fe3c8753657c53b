"""Personal tuning (issue 14): the keypoint classifier's own layers fine-tuned on one person's calibration samples.

Why: the ``knn`` profile adds a bonus for letters whose samples a frame resembles, which moves the reading only
near the samples; tuning the network moves its boundaries as well. On the calibration protocol
(docs/calibration.md) tuning and then the same kNN on the tuned network's embedding is the best method.

It runs where a profile is loaded, in numpy (the runtime has no torch), in about half a second, from ``tuning.npz``
beside the model: the model's weights (BatchNorm folded into the first layer) and a small *exemplar bank* (input
features of a few training hands per label, in the views the model learned from). The bank is replayed beside the
person's samples at every step, so that the letters they signed differently do not pull the others along.
Without it the tuned model forgot the training hands and lost 3 points on the lis signers.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.manifest import read_checked, save_npz

TUNING_FILE = "tuning.npz"
STEPS, LEARNING_RATE, BATCH = 150, 1e-3, 64  # chosen on the calibration protocol (docs/calibration.md)
MAX_STEPS, MAX_LEARNING_RATE = 1000, 1e-2  # what a profile may ask for: more takes seconds or wrecks the network
EXEMPLARS_PER_LABEL = 20


class TuningError(ValueError):
    """A tuning file that is missing, damaged, or whose arrays do not fit together."""


@dataclass
class MLP:
    """The keypoint classifier as plain arrays: features -> Linear -> ReLU -> Linear -> ReLU (the embedding) ->
    Linear -> softmax. The model's input BatchNorm (fixed at inference) is folded into the first layer."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray

    NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")

    def params(self) -> list[np.ndarray]:
        return [getattr(self, n) for n in self.NAMES]

    def _forward(self, x: np.ndarray):
        z1 = x @ self.w1 + self.b1
        a1 = np.maximum(z1, 0.0)
        z2 = a1 @ self.w2 + self.b2
        a2 = np.maximum(z2, 0.0)
        return z1, a1, z2, a2, a2 @ self.w3 + self.b3

    def probs_and_embedding(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, dim) features -> ((B, labels) probabilities, (B, hidden) embedding), float32 like the ONNX model's."""
        x = np.asarray(features, np.float64).reshape(-1, self.w1.shape[0])
        *_, a2, logits = self._forward(x)
        return softmax(logits).astype(np.float32), a2.astype(np.float32)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.probs_and_embedding(features)[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _gradients(mlp: MLP, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Gradients of the mean cross-entropy of labels ``y`` for the parameters in :attr:`MLP.NAMES` order."""
    z1, a1, z2, a2, logits = mlp._forward(x)
    g = softmax(logits)
    g[np.arange(len(y)), y] -= 1.0
    g /= len(y)
    ga2 = g @ mlp.w3.T
    gz2 = ga2 * (z2 > 0)
    ga1 = gz2 @ mlp.w2.T
    gz1 = ga1 * (z1 > 0)
    return [x.T @ gz1, gz1.sum(0), a1.T @ gz2, gz2.sum(0), a2.T @ g, g.sum(0)]


def tune(base: MLP, samples: np.ndarray, sample_y: np.ndarray, bank_x: np.ndarray, bank_y: np.ndarray,
         steps: int = STEPS, lr: float = LEARNING_RATE, batch: int = BATCH, seed: int = 0) -> MLP:
    """``base`` fine-tuned (Adam) on the person's ``samples`` (features, label ids ``sample_y``), each step a batch
    of them and a batch of the exemplar bank. Deterministic for a seed."""
    samples = np.asarray(samples, np.float64)
    bank_x = np.asarray(bank_x, np.float64)
    sample_y, bank_y = np.asarray(sample_y, np.int64), np.asarray(bank_y, np.int64)
    if not len(samples):
        return base
    rng = np.random.default_rng(seed)
    params = [p.astype(np.float64).copy() for p in base.params()]
    mlp = MLP(*params)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as in the experiments
    for t in range(1, steps + 1):
        rows = rng.integers(0, len(samples), batch)
        x, y = samples[rows], sample_y[rows]
        if len(bank_x):
            replay = rng.integers(0, len(bank_x), batch)
            x, y = np.concatenate([x, bank_x[replay]]), np.concatenate([y, bank_y[replay]])
        for p, g, mi, vi in zip(params, _gradients(mlp, x, y), m, v):
            mi *= b1
            mi += (1 - b1) * g
            vi *= b2
            vi += (1 - b2) * g * g
            p -= lr * (mi / (1 - b1 ** t)) / (np.sqrt(vi / (1 - b2 ** t)) + eps)
    return mlp


@dataclass
class Tuning:
    """What ``tuning.npz`` holds: the model as an :class:`MLP` and its exemplar bank (features, label ids)."""

    base: MLP
    bank_x: np.ndarray
    bank_y: np.ndarray
    sha256: str = ""  # of the file it was loaded from

    def tune(self, samples: np.ndarray, sample_y: np.ndarray, steps: int = STEPS, lr: float = LEARNING_RATE) -> MLP:
        """The network tuned to one person's samples with this bank replayed (:func:`tune`)."""
        return tune(self.base, samples, sample_y, self.bank_x, self.bank_y, steps, lr)

    def save(self, path: str | Path) -> Path:
        return save_npz(path, **{n: p.astype(np.float32) for n, p in zip(MLP.NAMES, self.base.params())},
                        bank_x=self.bank_x.astype(np.float16), bank_y=self.bank_y.astype(np.int16))

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> "Tuning":
        """Read ``path``, checking its sha256 against the manifest's where one is given."""
        path = Path(path)
        raw, digest = read_checked(path, sha256, "tuning file", "export the model again", TuningError)
        try:
            with np.load(io.BytesIO(raw)) as z:
                base = MLP(*[z[n].astype(np.float64) for n in MLP.NAMES])
                bank_x, bank_y = z["bank_x"].astype(np.float64), z["bank_y"].astype(np.int64)
        except Exception as e:  # a damaged zip raises many kinds
            raise TuningError(f"{path}: not a readable tuning file ({type(e).__name__}: {e})") from e
        dims = (base.w1.shape[1] == base.w2.shape[0], base.w2.shape[1] == base.w3.shape[0],
                bank_x.ndim == 2 and bank_x.shape[1] == base.w1.shape[0], len(bank_x) == len(bank_y),
                not len(bank_y) or (bank_y.min() >= 0 and bank_y.max() < base.w3.shape[1]))
        if not all(dims):
            raise TuningError(f"{path}: its arrays do not fit together (layer sizes, bank features or labels)")
        return cls(base, bank_x, bank_y, digest)
