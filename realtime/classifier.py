"""The classifier stage: a shipped keypoint model, checked against its manifest (:mod:`realtime.manifest`), run by a
backend (:mod:`realtime.backends`; ONNX Runtime by default)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from realtime.backends import make_backend, open_model
from realtime.features import FeatureSpec
from realtime.manifest import NO_LETTER, ModelError, check_io


class OnnxClassifier:
    """Stage: features (1, dim) -> class probabilities (n_labels,)."""

    def __init__(self, model: str | Path = "asl-letters", device: str = "auto", verify: bool = True,
                 backend: str = "auto", precision: str = "fp32", reject_far: bool = False):
        """``reject_far``: a hand farther from every learned letter than the model's letter distance allows
        (:mod:`realtime.letter_distance`) is read as the no-letter class, which is never typed."""
        # the session checks the file against the manifest; --backend auto also runs on it (realtime.backends)
        self.folder, self.manifest, self.path, self.session = open_model(
            model, device if backend == "auto" else "cpu", verify, "keypoint-classifier")
        self._check_io()
        self.labels = self.manifest.labels
        self.spec = self.manifest.features
        self.backend = make_backend(backend, self.folder, device, precision, session=self.session, verify=False)
        self.distance = None
        if reject_far:
            from realtime.letter_distance import load_for

            if NO_LETTER not in self.labels or not self.has_embedding:
                raise ModelError(f"--reject-far-hands reads a hand as '{NO_LETTER}' (never typed) and measures its "
                                 f"embedding: {self.manifest.name} has no '{NO_LETTER}' class or no embedding output")
            self.distance = load_for(self.folder, self.manifest)
            self.rejected = 0  # hands read as no letter for being far from every learned letter

    def _check_io(self) -> None:
        """The graph's inputs, outputs and embedded labels / feature spec must be what the manifest says."""
        m = self.manifest
        inp, meta = check_io(self.session, self.path, m)
        if inp.type != "tensor(float)":
            raise ModelError(f"{self.path}: input {inp.name!r} is {inp.type}, expected tensor(float) (float32)")
        dim = inp.shape[-1]
        if isinstance(dim, int) and dim != m.features.dim:
            raise ModelError(f"{self.path}: input has {dim} features but the manifest's feature spec gives {m.features.dim}")
        if "features" in meta and FeatureSpec.from_dict(json.loads(meta["features"])) != m.features:
            raise ModelError(f"{self.path}: the feature spec inside the ONNX file ({json.loads(meta['features'])}) "
                             f"differs from the manifest's ({m.features.to_dict()})")

    @property
    def has_embedding(self) -> bool:
        return "embedding" in self.manifest.raw

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32).reshape(-1, self.spec.dim)
        if self.distance is not None:
            probs, emb = self.probs_and_embedding(x)
            far = self.distance.far(emb)
            if far.any():
                probs = probs.copy()
                probs[far] = 0.0
                probs[far, self.labels.index(NO_LETTER)] = 1.0
                self.rejected += int(far.sum())
        else:
            probs = self.backend.run({self.manifest.input_name: x})[self.manifest.output_name]
        return probs[0] if len(x) == 1 else probs

    def probs_and_embedding(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features (B, dim) -> (probabilities (B, n), penultimate activations (B, hidden)) in one run; a model
        exported without the ``embedding`` output gives its input features as the embedding."""
        x = np.ascontiguousarray(features, dtype=np.float32).reshape(-1, self.spec.dim)
        out = self.backend.run({self.manifest.input_name: x})
        emb = out[self.manifest.raw["embedding"]["name"]] if self.has_embedding else x
        return out[self.manifest.output_name], emb
