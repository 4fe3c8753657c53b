"""The ONNX hand pipeline's preprocessing in torch, for a GPU: a step's camera frames are uploaded at once
(through a reused pinned host buffer, asynchronously), every crop of every camera is made by one ``grid_sample``
on the device, and the crops go to the torch hand nets, or to ONNX Runtime through IO binding
(:meth:`realtime.backends.OrtBackend.run_torch`), so no crop crosses the bus.

:class:`realtime.hands.onnx.NumpyCrops` does the same on the host with ``cv2.warpAffine`` (the CPU default).
Both take the 2x3 maps of :func:`realtime.hands.roi.crop_affines` (frame pixels -> crop pixels):

- the palm detector's letterbox: the whole frame onto 192x192, zero border;
- the landmark model's rotated crop: the hand ROI onto 224x224, border replicated.

OpenCV samples at pixel centres (pixel i spans [i - 0.5, i + 0.5]), and so does ``grid_sample`` with
``align_corners=False``, where -1 is the outer edge of the first pixel and +1 that of the last. The inverse of
``crop_affine`` (crop pixel -> frame pixel), between the pixel <-> [-1, 1] maps of crop and frame, is the
``theta`` that ``affine_grid`` takes. OpenCV interpolates in fixed point (1/32 pixel steps, uint8 results),
torch in float32, so the two crops differ by a few 1/255 at sharp edges and less elsewhere.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def _pixels_to_unit(w: int, h: int) -> np.ndarray:
    """3x3: pixel coordinates (centres at integers) -> grid_sample's [-1, 1] (align_corners=False)."""
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def affine_thetas(affines: np.ndarray, frame_size: tuple[int, int], size: int) -> np.ndarray:
    """(M, 2, 3) maps frame pixels -> crop pixels (:func:`realtime.hands.roi.crop_affines`) -> the (M, 2, 3)
    ``theta`` of ``F.affine_grid(..., align_corners=False)`` that samples each ``size`` x ``size`` crop of a frame
    (``frame_size``: width, height) as ``cv2.warpAffine(frame, affine, (size, size))`` does."""
    a = np.asarray(affines, np.float64).reshape(-1, 2, 3)
    lin, shift = a[:, :, :2], a[:, :, 2]
    det = lin[:, 0, 0] * lin[:, 1, 1] - lin[:, 0, 1] * lin[:, 1, 0]
    inv = np.zeros((len(a), 3, 3))  # crop pixels -> frame pixels: the inverse affine map, written out
    inv[:, 0, 0], inv[:, 0, 1] = lin[:, 1, 1] / det, -lin[:, 0, 1] / det
    inv[:, 1, 0], inv[:, 1, 1] = -lin[:, 1, 0] / det, lin[:, 0, 0] / det
    inv[:, 0, 2] = -(inv[:, 0, 0] * shift[:, 0] + inv[:, 0, 1] * shift[:, 1])
    inv[:, 1, 2] = -(inv[:, 1, 0] * shift[:, 0] + inv[:, 1, 1] * shift[:, 1])
    inv[:, 2, 2] = 1.0
    return (_pixels_to_unit(*frame_size) @ inv @ _unit_to_pixels(size))[:, :2]


@lru_cache(maxsize=8)
def _unit_to_pixels(size: int) -> np.ndarray:
    return np.linalg.inv(_pixels_to_unit(size, size))


def affine_theta(affine: np.ndarray, frame_size: tuple[int, int], size: int) -> np.ndarray:
    """:func:`affine_thetas` of one map."""
    return affine_thetas(np.asarray(affine)[None], frame_size, size)[0]


class TorchCrops:
    """Hand-model inputs made on ``device`` (``cuda``; ``cpu`` runs the same code, for the tests).

    ``frames(images, rgb)`` uploads one step's uint8 HxWx3 frames (one per camera) at once;
    ``crops(frames, which, affines, size, replicate)`` warps crop k from frame ``which[k]`` by ``affines[k]``
    -> (M, size, size, 3) float32 RGB in [0, 1], NHWC, as the models take, on the device: one small upload (the
    maps), one sampling grid, one ``grid_sample`` for every crop of every camera.
    """

    def __init__(self, device: str = "cuda"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.name = f"torch on {self.device.type}"
        self._pinned = None  # host staging buffer for a step's frames, reused while their number and size stay
        self._uploaded = None  # CUDA event: the last upload has left the pinned buffer
        self._base = {}  # crop size -> (size * size, 3) pixel centres in grid_sample's units, homogeneous

    def frames(self, images: list[np.ndarray], rgb: bool) -> "DeviceFrames":
        """One step's frames on the device: one copy through a pinned buffer when they share a size (cameras of
        different sizes: one copy each)."""
        torch = self.torch
        if len({im.shape for im in images}) > 1:
            return DeviceFrames([self.frames([im], rgb).stacked[0] for im in images], rgb)
        shape = (len(images), *images[0].shape)
        if self.device.type == "cuda":
            if self._pinned is None or tuple(self._pinned.shape) != shape:
                self._pinned = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            elif self._uploaded is not None:
                self._uploaded.synchronize()  # the previous step's copy must be done before the buffer is refilled
            for slot, im in zip(self._pinned, images):
                slot.copy_(torch.from_numpy(np.ascontiguousarray(im)))
            host = self._pinned.to(self.device, non_blocking=True)
            self._uploaded = torch.cuda.Event()
            self._uploaded.record()
        else:
            host = torch.from_numpy(np.stack([np.ascontiguousarray(im) for im in images]))
        return DeviceFrames(host.permute(0, 3, 1, 2).float().mul_(1.0 / 255.0), rgb)  # (N, 3, H, W), channels as given

    def crops(self, frames: "DeviceFrames", which: list[int], affines: np.ndarray, size: int, replicate: bool):
        torch = self.torch
        x = frames.stacked
        if isinstance(x, list):  # frames of different sizes: each crop on its own frame
            return torch.cat([self.crops(DeviceFrames(x[i][None], frames.rgb), [0], a[None], size, replicate)
                              for i, a in zip(which, np.asarray(affines))])
        h, w = x.shape[-2:]
        maps = np.empty((len(which), 7), np.float32)  # the theta of each crop and the frame it comes from: one upload
        maps[:, :6] = affine_thetas(affines, (w, h), size).reshape(-1, 6)
        maps[:, 6] = which
        maps = torch.from_numpy(maps).to(self.device, non_blocking=True)
        theta = maps[:, :6].reshape(-1, 2, 3)
        src = x.expand(len(which), -1, -1, -1) if len(x) == 1 else x.index_select(0, maps[:, 6].long())
        grid = torch.matmul(self._base_grid(size), theta.transpose(1, 2)).reshape(-1, size, size, 2)
        out = torch.nn.functional.grid_sample(src, grid, mode="bilinear",
                                              padding_mode="border" if replicate else "zeros", align_corners=False)
        out = out.permute(0, 2, 3, 1)  # NHWC, as the models take
        return (out if frames.rgb else out[..., [2, 1, 0]]).contiguous()  # BGR -> RGB on the small crops

    def _base_grid(self, size: int):
        """affine_grid's base grid (align_corners=False): pixel centres (2i + 1) / size - 1, then 1."""
        if size not in self._base:
            torch = self.torch
            c = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
            ys, xs = torch.meshgrid(c, c, indexing="ij")
            self._base[size] = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3).to(self.device)
        return self._base[size]


class DeviceFrames:
    """A step's frames on the device: ``stacked`` (N, 3, H, W) float in [0, 1] (a list of (3, h, w) when their
    sizes differ), ``rgb`` whether their channels are RGB (else BGR, swapped on the crops)."""

    def __init__(self, stacked, rgb: bool):
        self.stacked, self.rgb = stacked, rgb
