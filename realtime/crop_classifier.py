"""The image classifier stages: a hand crop from the landmarks' box, an ONNX image classifier, and the fusion of
its probabilities with the keypoint classifier's.

    --classifier keypoints   landmarks -> polar features -> keypoint classifier (the default)
    --classifier image       landmarks -> square crop (realtime.crops, the framing the classifier trained on)
                             -> EfficientNetV2 image classifier (paper 000)
    --classifier fused       both, probabilities averaged with a weight (the two models must share labels)

An image-classifier model folder holds ``model.onnx`` and a manifest of kind ``image-classifier`` whose
``input`` gives the crop side and ``crop`` the framing (scale around the landmarks' box); inputs are RGB
scaled to -1..1.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from realtime.backends import open_model
from realtime.manifest import NO_LETTER, ModelError, check_io
from realtime.crops import CROP_SCALE, SquareBox, crop_square, crops_to_input

CLASSIFIER_KINDS = ("keypoints", "image", "fused")
# the image model's weight in the fused reading: chosen among 0.2, 0.3, 0.5 on lis signers IBRAHIM, KENZA and NOOR
# and confirmed on GIULIA (docs/fused-seeds.md, 'fingerspell train fused-seeds'); at 0.5 the fused reading of those
# three people fell below the keypoint model's own
DEFAULT_IMAGE_WEIGHT = 0.3
DEFAULT_IMAGE_MODEL = "lis-letters-image"
DEFAULT_IMAGE_ALPHABET = "Italian (LIS)"  # what it reads: said when it is chosen by default (--model's default is ASL)


class HandCrop:
    """Stage: (hand, frame) -> (1, 3, S, S) float32 in -1..1, the hand framed as in training."""

    def __init__(self, size: int, scale: float = CROP_SCALE):
        self.size, self.scale = size, scale

    def crop(self, hand, frame_bgr: np.ndarray) -> np.ndarray:
        """The RGB uint8 crop (S, S, 3), for display and tests."""
        box = SquareBox.around(hand.landmarks[:, :2], self.scale)
        return cv2.cvtColor(crop_square(frame_bgr, box, self.size), cv2.COLOR_BGR2RGB)

    def __call__(self, hand, frame_bgr: np.ndarray) -> np.ndarray:
        return crops_to_input(self.crop(hand, frame_bgr)[None])


class OnnxImageClassifier:
    """Stage: (N, 3, S, S) crops -> class probabilities, from a shipped ``image-classifier`` model."""

    def __init__(self, model: str | Path = DEFAULT_IMAGE_MODEL, device: str = "auto", verify: bool = True,
                 backend: str = "auto", precision: str = "fp32"):
        self.folder, self.manifest, self.path, self.session = open_model(
            model, device if backend == "auto" else "cpu", verify, "image-classifier")
        m = self.manifest
        shape = check_io(self.session, self.path, m)[0].shape
        self.size = int(m.raw["input"]["shape"][-1])
        if len(shape) != 4 or any(isinstance(d, int) and d != want for d, want in zip(shape[1:], (3, self.size, self.size))):
            raise ModelError(f"{self.path}: input shape {shape}, but the manifest says (batch, 3, {self.size}, {self.size})")
        framing = m.raw.get("crop", {}).get("framing", "hand")
        if framing != "hand":
            raise ModelError(f"{self.path}: trained on {framing!r} crops; the live path frames the hand by its "
                             "landmarks, so only 'hand' models can run here")
        self.labels = m.labels
        self.crop = HandCrop(self.size, float(m.raw.get("crop", {}).get("scale", CROP_SCALE)))
        from realtime.backends import make_backend

        self.backend = make_backend(backend, self.folder, device, precision, session=self.session, verify=False)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops, dtype=np.float32).reshape(-1, 3, self.size, self.size)
        probs = self.backend.run({self.manifest.input_name: x})[self.manifest.output_name]
        return probs[0] if len(x) == 1 else probs

    @property
    def has_embedding(self) -> bool:
        return "embedding" in self.manifest.raw

    def probs_and_embedding(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crops (B, 3, S, S) -> (probabilities (B, n), pooled penultimate activations (B, dim)) in one run; for
        personal calibration, which needs a model exported with the ``embedding`` output."""
        if not self.has_embedding:
            raise ModelError(f"{self.manifest.name} has no 'embedding' output (exported before it existed): "
                             f"add it with 'fingerspell export --model {self.manifest.name} --add-embedding --out DIR'")
        x = np.ascontiguousarray(crops, dtype=np.float32).reshape(-1, 3, self.size, self.size)
        out = self.backend.run({self.manifest.input_name: x})
        return out[self.manifest.output_name], out[self.manifest.raw["embedding"]["name"]]


class FusedInputs:
    """Stage: (hand, frame) -> (keypoint features, hand crop), the inputs of both classifiers."""

    def __init__(self, features, crop: HandCrop):
        self.features, self.crop = features, crop

    def __call__(self, hand, frame_bgr: np.ndarray):
        return self.features(hand, frame_bgr), self.crop(hand, frame_bgr)


class FusedClassifier:
    """Stage: (features, crop) -> ``weight`` x image probabilities + (1 - weight) x keypoint probabilities.

    The keypoints carry the hand's geometry, the crop its appearance (finger contact, thumb position hidden in
    the landmarks' noise); averaging probabilities is the simplest fusion that needs no joint training."""

    def __init__(self, keypoint_classifier, image_classifier: OnnxImageClassifier,
                 weight: float = DEFAULT_IMAGE_WEIGHT):
        if not 0 <= weight <= 1:
            raise ValueError(f"the image weight must be within [0, 1], got {weight}")
        kp, im = list(keypoint_classifier.labels), list(image_classifier.labels)
        if sorted(set(kp) - {NO_LETTER}) != sorted(im) or len(kp) != len(set(kp)):
            raise ModelError(f"cannot fuse models with different labels: keypoints {kp}, image {im} "
                             "(e.g. --model lis-letters with --image-model lis-letters-image)")
        self.keypoints, self.image, self.weight = keypoint_classifier, image_classifier, weight
        self.labels = kp
        self.manifest = image_classifier.manifest  # what the image model was trained on (eval's warning)
        self.name = f"{keypoint_classifier.manifest.name}+{image_classifier.manifest.name}"
        # image columns in the keypoint model's order; the keypoint model's no-letter class (which the image model
        # lacks) keeps the keypoint model's own probability, the image model's letters share the rest
        self._letters = np.array([i for i, c in enumerate(kp) if c in im])
        self._order = np.array([im.index(kp[i]) for i in self._letters])
        self._none = kp.index(NO_LETTER) if NO_LETTER in kp else None
        self.spec = keypoint_classifier.spec

    def __call__(self, inputs) -> np.ndarray:
        features, crop = inputs
        return self.fuse(self.keypoints(features), crop)

    def fuse(self, p_kp: np.ndarray, crop: np.ndarray) -> np.ndarray:
        """The keypoint model's probabilities (already computed) and the crop -> the fused probabilities."""
        return self.fuse_probs(p_kp, self.image(crop))

    def fuse_probs(self, p_kp: np.ndarray, p_image: np.ndarray) -> np.ndarray:
        """Both models' probabilities (each in its own label order) -> the fused probabilities."""
        p_im = np.zeros_like(p_kp)
        p_none = p_kp[..., self._none] if self._none is not None else 0.0
        p_im[..., self._letters] = p_image[..., self._order] * np.expand_dims(1.0 - p_none, -1)
        if self._none is not None:
            p_im[..., self._none] = p_none
        return self.weight * p_im + (1 - self.weight) * p_kp
