"""The ONNX hand pipeline's preprocessing in torch, for a GPU: the camera frame is uploaded once per frame
(through a reused pinned host buffer, asynchronously), each crop is one ``affine_grid`` + ``grid_sample`` on the
device, and the crops go to ONNX Runtime through IO binding (:meth:`realtime.backends.OrtBackend.run_torch`),
so no crop crosses the bus.

:class:`realtime.hands.onnx.NumpyCrops` does the same on the host with ``cv2.warpAffine`` (the CPU default).
Both take the 2x3 maps of :func:`realtime.hands.roi.crop_affine` (frame pixels -> crop pixels):

- the palm detector's letterbox: the whole frame onto 192x192, zero border;
- the landmark model's rotated crop: the hand ROI onto 224x224, border replicated.

OpenCV samples at pixel centres (pixel i spans [i - 0.5, i + 0.5]), and so does ``grid_sample`` with
``align_corners=False``, where -1 is the outer edge of the first pixel and +1 that of the last. The inverse of
``crop_affine`` (crop pixel -> frame pixel), between the pixel <-> [-1, 1] maps of crop and frame, is the
``theta`` that ``affine_grid`` takes. OpenCV interpolates in fixed point (1/32 pixel steps, uint8 results),
torch in float32, so the two crops differ by a few 1/255 at sharp edges and less elsewhere.
"""
from __future__ import annotations

import numpy as np


def _pixels_to_unit(w: int, h: int) -> np.ndarray:
    """3x3: pixel coordinates (centres at integers) -> grid_sample's [-1, 1] (align_corners=False)."""
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def affine_theta(affine: np.ndarray, frame_size: tuple[int, int], size: int) -> np.ndarray:
    """The 2x3 ``theta`` of ``F.affine_grid(..., align_corners=False)`` that samples a ``size`` x ``size`` crop
    of a frame (``frame_size``: width, height) as ``cv2.warpAffine(frame, affine, (size, size))`` does."""
    m = np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])
    theta = _pixels_to_unit(*frame_size) @ np.linalg.inv(m) @ np.linalg.inv(_pixels_to_unit(size, size))
    return theta[:2]


class TorchCrops:
    """Hand-model inputs made on ``device`` (``cuda``; ``cpu`` runs the same code, for the tests).

    ``frame(image, rgb)`` uploads a uint8 HxWx3 frame once; ``crops(frame, affines, size, replicate)`` warps it
    -> (B, size, size, 3) float32 RGB in [0, 1], NHWC, as the models take, on the device.
    """

    def __init__(self, device: str = "cuda"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.name = f"torch on {self.device.type}"
        self._pinned = None  # host staging buffer for the frame, reused while the frame size stays
        self._uploaded = None  # CUDA event: the last upload has left the pinned buffer

    def frame(self, image: np.ndarray, rgb: bool):
        """(1, 3, H, W) float32 RGB in [0, 1] on the device."""
        torch = self.torch
        host = torch.from_numpy(np.ascontiguousarray(image))
        if self.device.type == "cuda":
            if self._pinned is None or self._pinned.shape != host.shape:
                self._pinned = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
            elif self._uploaded is not None:
                self._uploaded.synchronize()  # the previous frame's copy must be done before the buffer is refilled
            self._pinned.copy_(host)
            frame = self._pinned.to(self.device, non_blocking=True)
            self._uploaded = torch.cuda.Event()
            self._uploaded.record()
        else:
            frame = host
        x = frame.permute(2, 0, 1).unsqueeze(0).float().mul_(1.0 / 255.0)
        return x if rgb else x.flip(1)  # BGR -> RGB

    def crops(self, frame, affines: list[np.ndarray], size: int, replicate: bool):
        torch = self.torch
        h, w = frame.shape[-2:]
        theta = np.stack([affine_theta(a, (w, h), size) for a in affines])
        theta = torch.as_tensor(theta, dtype=torch.float32).to(self.device, non_blocking=True)
        grid = torch.nn.functional.affine_grid(theta, [len(affines), 3, size, size], align_corners=False)
        out = torch.nn.functional.grid_sample(frame.expand(len(affines), -1, -1, -1), grid, mode="bilinear",
                                              padding_mode="border" if replicate else "zeros", align_corners=False)
        return out.permute(0, 2, 3, 1).contiguous()
