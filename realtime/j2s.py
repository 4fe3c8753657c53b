"""The J2S keypoint backend: palm box -> hand crop -> J2S (keypoints + class) in one ONNX model.

    hands (PalmDetector) -> features (HandCropper) -> classifier (J2SClassifier) -> smooth

MediaPipe's landmark model is not used: J2S regresses its own 21 keypoints from the crop and
classifies their polar coordinates inside the same network. The crop is an upright square
around the palm detector's region of interest, scaled and shifted so that it frames the hand
as the training crops did (``crop`` in the manifest, measured on training images at export).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.backends import open_model
from realtime.manifest import ModelError, check_io
from realtime.hands.hand import Hand, HandBox

DEFAULT_MODEL = "lis-j2s"


def pixel_centre_affine(m: np.ndarray) -> np.ndarray:
    """A 2x3 affine in continuous coordinates (pixel i spans [i, i+1), as MediaPipe's landmarks) -> the same
    map in OpenCV's convention, where pixel i's centre is at i. Without it a warp shifts by half a pixel."""
    m = np.asarray(m, np.float64)
    out = m.copy()
    out[:, 2] = m[:, 2] - 0.5 + m[:, :2].sum(1) * 0.5
    return out


@dataclass
class Crop:
    """A hand crop ready for the network, and the way back to the frame."""

    image: np.ndarray  # (1, 3, S, S) float32, normalised
    to_frame: np.ndarray  # (2, 3) affine: crop pixels -> frame pixels
    box: HandBox
    hand: Hand | None = None  # filled by J2SClassifier: the regressed keypoints in frame pixels


class HandCropper:
    """Stage: (HandBox, frame) -> :class:`Crop`, an upright ``size`` x ``size`` square around the hand.

    Upright: the ROI's rotation is ignored, as the dataset's crops are upright; a strongly tilted hand
    may lose a fingertip at the border (the crop is already 1.2x the ROI, see the manifest's ``crop``).
    """

    def __init__(self, size: int, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0),
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
        self.size, self.scale, self.offset = size, scale, offset
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, np.float32).reshape(1, 1, 3)

    def window(self, box: HandBox) -> tuple[float, float, float]:
        """(centre x, centre y, side) of the crop in frame pixels."""
        side = box.side * self.scale
        return box.center[0] + self.offset[0] * box.side, box.center[1] + self.offset[1] * box.side, side

    def __call__(self, box: HandBox, frame_bgr: np.ndarray) -> Crop:
        import cv2

        cx, cy, side = self.window(box)
        s = self.size / side
        # warpAffine cannot average (INTER_AREA acts as bilinear there), so a crop that shrinks is cut out at
        # about its own size first and then reduced with area averaging, like the dataset's 64-px crops.
        n = self.size if s >= 1 else int(np.ceil(side))
        k = n / side
        m = np.array([[k, 0.0, n / 2 - k * cx], [0.0, k, n / 2 - k * cy]])
        patch = cv2.warpAffine(frame_bgr, pixel_centre_affine(m), (n, n), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if n != self.size:
            patch = cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        x = ((rgb - self.mean) / self.std).transpose(2, 0, 1)[None]
        to_frame = np.array([[1 / s, 0.0, cx - self.size / (2 * s)], [0.0, 1 / s, cy - self.size / (2 * s)]])
        return Crop(np.ascontiguousarray(x, dtype=np.float32), to_frame, box)


class J2SClassifier:
    """Stage: :class:`Crop` -> class probabilities (n_labels,); attaches the regressed hand to the crop."""

    def __init__(self, model: str | Path = DEFAULT_MODEL, device: str = "auto", verify: bool = True,
                 backend: str = "auto", precision: str = "fp32"):
        self.folder, self.manifest, self.path, self.session = open_model(
            model, device if backend == "auto" else "cpu", verify, kind="j2s")  # checks; auto also runs on it
        raw = self.manifest.raw
        try:
            self.input_size = int(raw["input"]["shape"][-1])
            norm, crop = raw["normalisation"], raw.get("crop") or {}
            self.cropper = HandCropper(self.input_size, float(crop.get("scale", 1.0)),
                                       tuple(crop.get("offset", (0.0, 0.0))), norm["mean"], norm["std"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ModelError(f"{self.folder}: J2S manifest lacks input shape, normalisation or crop ({e})") from e
        self.labels = self.manifest.labels
        self._check_io()
        from realtime.backends import make_backend

        self.backend = make_backend(backend, self.folder, device, precision, session=self.session, verify=False)

    def _check_io(self) -> None:
        """The shared checks (input name, probability output, labels) plus J2S's own: a float image input of the
        manifest's size and a ``keypoints`` output."""
        inp, _ = check_io(self.session, self.path, self.manifest)
        if inp.type != "tensor(float)" or list(inp.shape[1:]) != [3, self.input_size, self.input_size]:
            raise ModelError(f"{self.path}: input shape {inp.shape} ({inp.type}) is not float (batch, 3, "
                             f"{self.input_size}, {self.input_size}) as the manifest says")
        outs = [o.name for o in self.session.get_outputs()]
        if "keypoints" not in outs:
            raise ModelError(f"{self.path}: no output 'keypoints' (has {outs})")

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, S, S) normalised -> keypoints (B, 21, 2) as fractions of the crop, probabilities (B, C)."""
        out = self.backend.run({self.manifest.input_name: images})
        return out["keypoints"], out[self.manifest.output_name]

    def __call__(self, crop: Crop) -> np.ndarray:
        kp, probs = self.run(crop.image)
        px = kp[0].astype(np.float64) * self.input_size
        xy = px @ crop.to_frame[:, :2].T + crop.to_frame[:, 2]
        landmarks = np.concatenate([xy, np.zeros((len(xy), 1))], axis=1).astype(np.float32)
        crop.hand = Hand(landmarks, crop.box.handedness, crop.box.score, crop.box.image_size)
        return probs[0]
