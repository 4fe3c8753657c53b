"""The ONNX hand pipeline's preprocessing in torch, for a GPU: a step's camera frames are uploaded at once
(through a reused pinned host buffer, asynchronously), every crop of every camera is made by one ``grid_sample``
on the device, and the crops go to the torch hand nets, or to ONNX Runtime through IO binding
(:meth:`realtime.backends.OrtBackend.run_torch`), so no crop crosses the bus.

:class:`realtime.hands.onnx.NumpyCrops` does the same on the host with ``cv2.warpAffine`` (the CPU default).
Both take the crops' rects (padded ROIs, (M, 5)) and sample them as MediaPipe's OpenCV path does
(:func:`realtime.hands.roi.crop_affines` for ``cv2.warpAffine``, :func:`realtime.hands.roi.crop_to_frame` here):

- the palm detector's letterbox: the whole frame onto 192x192, zero border;
- the landmark model's rotated crop: the hand ROI onto 224x224, border replicated.

OpenCV samples at pixel centres (pixel i spans [i - 0.5, i + 0.5]), and so does ``grid_sample`` with
``align_corners=False``, where -1 is the outer edge of the first pixel and +1 that of the last. The inverse of
a crop's map (crop pixel -> frame pixel), between the pixel <-> [-1, 1] maps of crop and canvas, is the ``theta``
that ``affine_grid`` would take; here a cached base grid times ``theta`` gives the same sampling grid. OpenCV
interpolates in fixed point (1/32 pixel steps, uint8 results), torch in float32, so the two crops differ by a few 1/255 at sharp edges and less elsewhere.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from realtime.hands.roi import crop_to_frame


def _pixels_to_unit(w: int, h: int) -> np.ndarray:
    """3x3: pixel coordinates (centres at integers) -> grid_sample's [-1, 1] (align_corners=False)."""
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def rect_thetas(rois: np.ndarray, frame_size: tuple[float, float], size: int) -> np.ndarray:
    """(M, 5) rects (:class:`realtime.hands.roi.Roi` as rows) -> the (M, 2, 3) ``theta`` of
    ``F.affine_grid(..., align_corners=False)`` that samples each ``size`` x ``size`` crop of a frame
    (``frame_size``: width, height) as ``cv2.warpAffine(frame, crop_affines(rois), (size, size))`` does."""
    return (_pixels_to_unit(*frame_size) @ crop_to_frame(rois, (size, size)) @ _unit_to_pixels(size))[:, :2]


@lru_cache(maxsize=8)
def _unit_to_pixels(size: int) -> np.ndarray:
    return np.linalg.inv(_pixels_to_unit(size, size))


def _round_up(n: int, step: int = 32) -> int:
    return -(-n // step) * step


MAP_COLUMNS = 12  # a crop's row of maps: theta (6), frame index, BGR flag, sampling limits (x, y low; x, y high)


_BASE_GRIDS: dict = {}


def base_grid(size: int, device):
    """affine_grid's base grid (align_corners=False) for a size x size crop: pixel centres (2i + 1) / size - 1 and
    1, as (1, size * size, 3), cached per device (made before any CUDA-graph capture, by its warm-up runs)."""
    import torch

    key = (size, str(device))
    if key not in _BASE_GRIDS:
        c = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
        ys, xs = torch.meshgrid(c, c, indexing="ij")
        _BASE_GRIDS[key] = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3).to(device)
    return _BASE_GRIDS[key]


def sample_crops(canvas, maps, size: int, replicate: bool):
    """Frames (N, H, W, 3) uint8 on the device and the crops' maps (M, :data:`MAP_COLUMNS`) -> (M, size, size, 3)
    float32 RGB in [0, 1], NHWC: one grid_sample for every crop, each crop sampling its own float copy of its frame
    (M frame copies: 1.2 MB each at 640x480, 25 MB at 1080p). No host tensor and no shape logic from the data: a
    CUDA graph captures it."""
    import torch

    src = canvas.index_select(0, maps[:, 6].long().clamp(0, canvas.shape[0] - 1))
    src = src.permute(0, 3, 1, 2).float().mul_(1.0 / 255.0)
    grid = torch.matmul(base_grid(size, maps.device), maps[:, :6].reshape(-1, 2, 3).transpose(1, 2))
    if replicate:  # clamp to the frame's own edge pixels: its border replicated, as cv2.BORDER_REPLICATE
        grid = torch.maximum(torch.minimum(grid, maps[:, None, 10:12]), maps[:, None, 8:10])
    out = torch.nn.functional.grid_sample(src, grid.reshape(-1, size, size, 2), mode="bilinear",
                                          padding_mode="border" if replicate else "zeros", align_corners=False)
    out = out.permute(0, 2, 3, 1)  # NHWC, as the models take
    return torch.where(maps[:, 7, None, None, None] > 0.5, out.flip(-1), out).contiguous()  # BGR rows -> RGB


class TorchCrops:
    """Hand-model inputs made on ``device`` (``cuda``; ``cpu`` runs the same code, for the tests).

    ``frames(images, rgb)`` uploads one step's uint8 HxWx3 frames (one per camera) at once, each at the top-left
    of a shared canvas (cameras of different sizes share it); ``maps(frames, which, rois, size)`` uploads what
    crop k needs (its frame ``which[k]``, its rect ``rois[k]``) in one small copy; ``crops(...)`` =
    :func:`sample_crops` of both -> (M, size, size, 3) float32 RGB in [0, 1], NHWC, as the models take. The torch
    hand nets run :func:`sample_crops` inside their CUDA graph instead (:class:`realtime.hands.onnx.PalmModel`).
    """

    def __init__(self, device: str = "cuda"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.name = f"torch on {self.device.type}"
        self._pinned = None  # host staging buffer for a step's frames, reused while their number and canvas stay
        self._slot_sizes: list = []  # the frame size last written to each slot (the rest of a slot stays zero)
        self._uploaded = None  # CUDA event: the last upload has left the pinned buffer
        self._maps: dict = {}  # the same for the crops' maps: columns -> (pinned buffer, its last upload's event)

    def frames(self, images: list[np.ndarray], rgb: bool) -> "DeviceFrames":
        """One step's frames on the device in one copy, through a pinned buffer on CUDA."""
        torch = self.torch
        sizes = [(im.shape[1], im.shape[0]) for im in images]
        # the canvas rounded up to 32 pixels: photos of many sizes share a few canvases (and CUDA graphs)
        canvas = (len(images), _round_up(max(h for _, h in sizes)), _round_up(max(w for w, _ in sizes)), 3)
        cuda = self.device.type == "cuda"
        if self._pinned is None or tuple(self._pinned.shape) != canvas:
            self._pinned = torch.zeros(canvas, dtype=torch.uint8, pin_memory=cuda)
            self._slot_sizes = [None] * len(images)
        elif cuda and self._uploaded is not None:
            self._uploaded.synchronize()  # the previous step's copy must be done before the buffer is refilled
        for i, (slot, im, (w, h)) in enumerate(zip(self._pinned, images, sizes)):
            if self._slot_sizes[i] not in (None, (w, h)):
                slot.zero_()  # a smaller frame than last time: no stale pixels around it
            slot[:h, :w].copy_(torch.from_numpy(np.ascontiguousarray(im)))
            self._slot_sizes[i] = (w, h)
        if cuda:
            host = self._pinned.to(self.device, non_blocking=True)
            self._uploaded = torch.cuda.Event()
            self._uploaded.record()
        else:
            host = self._pinned.clone()  # the next step refills the buffer
        return DeviceFrames(host, sizes, rgb)

    def maps(self, frames: "DeviceFrames", which: list[int], rois: np.ndarray, size: int,
             extra: np.ndarray | None = None):
        """(M, :data:`MAP_COLUMNS`) on the device: each crop's theta on the canvas, frame index, BGR flag, limits;
        ``extra`` (M, C) columns after them, in the same copy (the landmark head's crop places)."""
        canvas = np.array([frames.canvas.shape[2], frames.canvas.shape[1]], np.float64)  # width, height
        more = 0 if extra is None else extra.shape[1]
        maps = np.empty((len(which), MAP_COLUMNS + more), np.float32)
        if more:
            maps[:, MAP_COLUMNS:] = extra
        maps[:, :6] = rect_thetas(rois, tuple(canvas), size).reshape(-1, 6)  # on the canvas: frames at top-left
        maps[:, 6] = which
        maps[:, 7] = 0.0 if frames.rgb else 1.0
        # each frame's first and last pixel centres in the canvas' grid units: a replicated border clamps there
        maps[:, 8:10] = 1.0 / canvas - 1.0
        maps[:, 10:12] = (2.0 * np.asarray(frames.sizes, np.float64)[list(which)] - 1.0) / canvas - 1.0
        return self._upload_maps(maps)

    def crops(self, frames: "DeviceFrames", which: list[int], rois: np.ndarray, size: int, replicate: bool):
        return sample_crops(frames.canvas, self.maps(frames, which, rois, size), size, replicate)

    def _upload_maps(self, maps: np.ndarray):
        """The crops' maps to the device through a pinned buffer: a copy from ordinary host memory would first wait
        for everything queued on the GPU (the frames' upload), so the host could not queue the crops meanwhile."""
        torch = self.torch
        if self.device.type != "cuda":
            return torch.from_numpy(maps)
        width = maps.shape[1]  # the palm's maps and the landmarks' (with their places) keep a buffer each
        pinned, uploaded = self._maps.get(width, (None, None))
        if pinned is None or len(pinned) < len(maps):
            pinned = torch.empty((max(64, len(maps)), width), dtype=torch.float32, pin_memory=True)
        elif uploaded is not None:
            uploaded.synchronize()  # the last maps have left the buffer (long done: a step has passed)
        pinned[:len(maps)].copy_(torch.from_numpy(maps))
        out = pinned[:len(maps)].to(self.device, non_blocking=True)
        uploaded = torch.cuda.Event()
        uploaded.record()
        self._maps[width] = (pinned, uploaded)
        return out


PLACE_COLUMNS = 9  # where a crop's landmarks go back to: its ROI (cx, cy, width, height, rotation) before padding,
# that padding (horizontal, vertical), and its frame's width and height


def place_rows(rois: np.ndarray, padding: np.ndarray, frame_sizes: np.ndarray) -> np.ndarray:
    """(M, 5) ROIs before :func:`realtime.hands.roi.keep_aspects`, its (M, 2) padding and (M, 2) frame sizes ->
    (M, :data:`PLACE_COLUMNS`) float32, what :func:`project_on_device` takes."""
    return np.concatenate([np.asarray(rois, np.float64).reshape(-1, 5), np.asarray(padding).reshape(-1, 2),
                           np.asarray(frame_sizes).reshape(-1, 2)], 1).astype(np.float32)


def project_on_device(raw, place, size: int):
    """:func:`realtime.hands.roi.project_landmarks_many` in torch: the landmark model's (M, 21, 3) crop pixels and
    the crops' places (M, :data:`PLACE_COLUMNS`) -> (M, 21, 3) frame pixels (z in the units of x), float32."""
    import torch

    from realtime.hands.roi import Z_SCALE

    raw = raw.float().reshape(len(place), -1, 3)
    cx, cy, w, h, rot, px, py = (place[:, i:i + 1] for i in range(7))
    x = (raw[..., 0] / size - px) / (1 - 2 * px)
    y = (raw[..., 1] / size - py) / (1 - 2 * py)
    z = raw[..., 2] / size / Z_SCALE / (1 - 2 * px)
    c, s = torch.cos(rot), torch.sin(rot)
    dx, dy = x - 0.5, y - 0.5
    return torch.stack([(c * dx - s * dy) * w + cx, (s * dx + c * dy) * h + cy, z * w], -1)


class DeviceFrames:
    """A step's frames on the device: ``canvas`` (N, H, W, 3) uint8, frame i at the top-left of row i, ``sizes``
    each frame's (width, height), ``rgb`` whether their channels are RGB (else BGR, swapped on the crops)."""

    def __init__(self, canvas, sizes: list[tuple[int, int]], rgb: bool):
        self.canvas, self.sizes, self.rgb = canvas, sizes, rgb
