"""The hand's region of interest (a rotated square) and the maps between a frame and the 224x224 hand crop.

MediaPipe keeps rectangles normalised by the image size; here they are in pixels (:class:`Roi`),
which is the same geometry. Each function names the MediaPipe calculator whose arithmetic it
follows (hand_landmark_tracking_cpu and its subgraphs in the mediapipe 0.10.21 wheel):

- :func:`palm_roi` -- PalmDetectionDetectionToRoi: DetectionsToRects (rotation from palm keypoint 0,
  the wrist, to 2, the middle finger's MCP, target 90 degrees), then RectTransformation (scale 2.6,
  shift_y -0.5, square on the long side);
- :func:`landmarks_roi` -- HandLandmarkLandmarksToRoi: HandLandmarksToRect on the stable landmarks,
  then RectTransformation (scale 2.0, shift_y -0.1, square on the long side);
- :func:`crop_affine` -- ImageToTensorCalculator's warp (OpenCV's boxPoints of the rotated rect onto
  the output corners); :func:`project_landmarks` -- TensorsToLandmarks + LandmarkProjection;
- :func:`associate` -- AssociationNormRectCalculator (IoU of the unrotated rects).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# landmarks HandLandmarkLandmarksToRoi keeps (wrist, thumb CMC..IP, and the MCP, PIP of each finger)
ROI_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
Z_SCALE = 0.4  # TensorsToLandmarksCalculator normalize_z of the hand-landmark subgraph


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in pixels: centre, width, height, rotation in radians (MediaPipe's convention)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    @property
    def side(self) -> float:
        return max(self.width, self.height)

    def box(self) -> np.ndarray:
        """(xmin, ymin, xmax, ymax) of the rectangle without its rotation (what MediaPipe's IoU uses)."""
        return np.array([self.cx - self.width / 2, self.cy - self.height / 2, self.cx + self.width / 2,
                         self.cy + self.height / 2])


def normalize_radians(angle):
    """An angle (or an array of them) -> the same angle in [-pi, pi)."""
    return angle - 2 * math.pi * np.floor((angle + math.pi) / (2 * math.pi))


def rotations_from(x0, y0, x1, y1, target: float = math.pi / 2):
    """The rotations that turn the vectors (x0, y0) -> (x1, y1) (pixels, y down) to ``target`` (90 degrees: up)."""
    x0, y0, x1, y1 = (np.asarray(v, np.float64) for v in (x0, y0, x1, y1))  # double, as math.atan2 (numpy 2 keeps
    return normalize_radians(target - np.arctan2(-(y1 - y0), x1 - x0))          # float32 inputs in float32)


def rotation_from(x0: float, y0: float, x1: float, y1: float, target: float = math.pi / 2) -> float:
    """:func:`rotations_from` of one vector."""
    return float(rotations_from(x0, y0, x1, y1, target))


def rois_array(rois: list[Roi]) -> np.ndarray:
    """ROIs -> (M, 5) float64: cx, cy, width, height, rotation (the form the many-hands functions take)."""
    return np.array([(r.cx, r.cy, r.width, r.height, r.rotation) for r in rois], np.float64).reshape(-1, 5)


def to_rois(a: np.ndarray) -> list[Roi]:
    """(M, 5) -> ROIs."""
    return [Roi(*map(float, row)) for row in np.asarray(a).reshape(-1, 5)]


def transform_rects(rects: np.ndarray, scale: float, shift_x: float = 0.0, shift_y: float = 0.0,
                    square_long: bool = True) -> np.ndarray:
    """RectTransformationCalculator on (M, 5) rects: shift along each rect's own rotated axes, square on the long
    side, scale."""
    r = np.asarray(rects, np.float64).reshape(-1, 5)
    cx, cy, w, h, rot = (r[:, i] for i in range(5))
    c, s = np.cos(rot), np.sin(rot)
    out = np.empty_like(r)
    out[:, 0], out[:, 1] = cx + w * shift_x * c - h * shift_y * s, cy + w * shift_x * s + h * shift_y * c
    if square_long:
        w = h = np.maximum(w, h)
    out[:, 2], out[:, 3], out[:, 4] = w * scale, h * scale, rot
    return out


def transform_rect(r: Roi, scale: float, shift_x: float = 0.0, shift_y: float = 0.0,
                   square_long: bool = True) -> Roi:
    """:func:`transform_rects` of one rect."""
    return to_rois(transform_rects(rois_array([r]), scale, shift_x, shift_y, square_long))[0]


def palm_roi(box: np.ndarray, keypoints: np.ndarray, image_size: tuple[int, int], scale: float = 2.6,
             shift_y: float = -0.5) -> Roi:
    """A palm detection (box and keypoints as fractions of the frame) -> the hand's ROI in pixels."""
    w, h = image_size
    x0, y0 = keypoints[0, 0] * w, keypoints[0, 1] * h  # wrist centre
    x1, y1 = keypoints[2, 0] * w, keypoints[2, 1] * h  # middle finger MCP
    rect = Roi((box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h,
               rotation_from(x0, y0, x1, y1))
    return transform_rect(rect, scale, shift_y=shift_y)


def landmarks_rects(landmarks_px: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
    """HandLandmarksToRectCalculator on the ROI landmarks of M hands at once: (M, 21, 2+) pixels and (M, 2) image
    sizes (width, height) -> (M, 5) rects (cx, cy, width, height, rotation) in pixels.

    The arithmetic is MediaPipe's, in normalised coordinates, including its initial 'max' of
    FLT_MIN (a tiny positive number): it only matters for a hand wholly left of or above the frame.
    """
    wh = np.asarray(image_sizes, np.float64).reshape(-1, 1, 2)  # (x, y) pairs throughout: half the numpy calls
    pts = np.asarray(landmarks_px, np.float64)[:, list(ROI_LANDMARKS), :2] / wh
    # the subset's indices 4, 6, 8 are landmarks 5 (index MCP), 9 (middle MCP), 13 (ring MCP)
    p0 = pts[:, 0] * wh[:, 0]
    p1 = ((pts[:, 4] + pts[:, 8]) / 2 + pts[:, 6]) / 2 * wh[:, 0]
    rotation = rotations_from(p0[:, 0], p0[:, 1], p1[:, 0], p1[:, 1])
    reverse = normalize_radians(-rotation)
    tiny = np.finfo(np.float32).tiny
    centre_n = (np.maximum(tiny, pts.max(1)) + pts.min(1)) / 2
    off = (pts - centre_n[:, None]) * wh
    c, s = np.cos(reverse)[:, None], np.sin(reverse)[:, None]
    turned = np.empty_like(off)  # (np.stack costs more than the maths on a few hands)
    turned[..., 0], turned[..., 1] = off[..., 0] * c - off[..., 1] * s, off[..., 0] * s + off[..., 1] * c
    hi, lo = np.maximum(tiny, turned.max(1)), turned.min(1)
    pc = (hi + lo) / 2
    c, s = np.cos(rotation), np.sin(rotation)
    out = np.empty((len(pts), 5))
    out[:, 0], out[:, 1] = pc[:, 0] * c - pc[:, 1] * s, pc[:, 0] * s + pc[:, 1] * c
    out[:, :2] += wh[:, 0] * centre_n
    out[:, 2:4], out[:, 4] = hi - lo, rotation
    return out


def landmarks_rect(landmarks_px: np.ndarray, image_size: tuple[int, int]) -> Roi:
    """:func:`landmarks_rects` of one hand."""
    return to_rois(landmarks_rects(np.asarray(landmarks_px)[None], [image_size]))[0]


def landmarks_rois(landmarks_px: np.ndarray, image_sizes: np.ndarray, scale: float = 2.0,
                   shift_y: float = -0.1) -> np.ndarray:
    """The next frame's ROIs from this frame's landmarks: (M, 21, 3) pixels, (M, 2) image sizes -> (M, 5)."""
    return transform_rects(landmarks_rects(landmarks_px, image_sizes), scale, shift_y=shift_y)


def landmarks_roi(landmarks_px: np.ndarray, image_size: tuple[int, int], scale: float = 2.0,
                  shift_y: float = -0.1) -> Roi:
    """The next frame's ROI from this frame's 21 landmarks (pixels)."""
    return to_rois(landmarks_rois(np.asarray(landmarks_px)[None], [image_size], scale, shift_y))[0]


def keep_aspects(rois: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """PadRoi on (M, 5) rects: widen each to the output's aspect ratio -> (padded (M, 5), (M, 2) padding:
    horizontal, vertical)."""
    rois = np.asarray(rois, np.float64).reshape(-1, 5)
    tensor_ratio = size[1] / size[0]
    with np.errstate(divide="ignore", invalid="ignore"):  # a degenerate ROI gives NaN (the tracker drops it)
        roi_ratio = rois[:, 3] / rois[:, 2]
    taller = tensor_ratio > roi_ratio  # the output is taller than the ROI: pad the height
    padded = rois.copy()
    padded[:, 3] = np.where(taller, rois[:, 2] * tensor_ratio, rois[:, 3])
    padded[:, 2] = np.where(taller, rois[:, 2], rois[:, 3] / tensor_ratio)
    padding = np.zeros((len(rois), 2))
    with np.errstate(divide="ignore", invalid="ignore"):  # np.where computes both sides for every row
        padding[:, 1] = np.where(taller, (1.0 - roi_ratio / tensor_ratio) / 2.0, 0.0)
        padding[:, 0] = np.where(taller, 0.0, (1.0 - tensor_ratio / roi_ratio) / 2.0)
    return padded, padding


def keep_aspect(roi: Roi, size: tuple[int, int]) -> tuple[Roi, tuple[float, float]]:
    """:func:`keep_aspects` of one ROI -> (padded ROI, (horizontal, vertical) padding)."""
    padded, padding = keep_aspects(rois_array([roi]), size)
    return to_rois(padded)[0], (float(padding[0, 0]), float(padding[0, 1]))


def _crop_corners(rois: np.ndarray) -> tuple[np.ndarray, ...]:
    """(M, 5) rects -> the frame pixels (float64) that a crop's corners (0, H), (0, 0), (W, 0) come from: the rotated
    rect's corners as ``cv2.boxPoints`` gives them (its float32 arithmetic repeated here), as MediaPipe uses them."""
    r = np.asarray(rois, np.float64).reshape(-1, 5)
    f32 = np.float32
    cx, cy, w, h = (r[:, i].astype(f32) for i in range(4))
    degrees = (r[:, 4] * 180.0 / math.pi).astype(f32)  # RotatedRect keeps its angle in float32 degrees
    angle = degrees.astype(np.float64) * math.pi / 180.0
    b, a = (np.cos(angle).astype(f32) * f32(0.5)), (np.sin(angle).astype(f32) * f32(0.5))
    x0, y0 = cx - a * h - b * w, cy + b * h - a * w  # the corners, in float32 as OpenCV computes them
    x1, y1 = cx + a * h - b * w, cy - b * h - a * w
    x2, y2 = f32(2) * cx - x0, f32(2) * cy - y0
    return tuple(v.astype(np.float64) for v in (x0, y0, x1, y1, x2, y2))


def crop_affines(rois: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(M, 5) rects -> (M, 2, 3) affine maps frame pixels -> crop pixels, as ImageToTensorCalculator's OpenCV path
    makes them: the corners of the rotated rect (:func:`_crop_corners`) onto the corners (0, H), (0, 0), (W, 0) of
    the output (``cv2.getAffineTransform``, solved in float64 as OpenCV does), in OpenCV's pixel-centre convention.
    Use with cv2.warpAffine(..., INTER_LINEAR); :func:`crop_to_frame` is the same map the other way."""
    x0, y0, x1, y1, x2, y2 = _crop_corners(rois)
    # the map sends p1 to (0, 0), p2 - p1 to (W, 0) and p0 - p1 to (0, H): its linear part is diag(W, H) times
    # the inverse of the 2x2 matrix [p2 - p1, p0 - p1], its translation -that @ p1 (what getAffineTransform solves)
    ux, uy, vx, vy = x2 - x1, y2 - y1, x0 - x1, y0 - y1
    det = ux * vy - vx * uy
    out_w, out_h = size
    out = np.empty((len(x0), 2, 3))
    out[:, 0, 0], out[:, 0, 1] = out_w * vy / det, -out_w * vx / det
    out[:, 1, 0], out[:, 1, 1] = -out_h * uy / det, out_h * ux / det
    out[:, :, 2] = -(out[:, :, 0] * x1[:, None] + out[:, :, 1] * y1[:, None])
    return out


def crop_to_frame(rois: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(M, 5) rects -> (M, 3, 3) maps crop pixels -> frame pixels (homogeneous), the inverse of
    :func:`crop_affines` read straight off the corners: (W, 0) - (0, 0) goes along p2 - p1, (0, H) - (0, 0) along
    p0 - p1, and (0, 0) to p1 (what a sampler such as grid_sample needs, with no matrix to invert)."""
    x0, y0, x1, y1, x2, y2 = _crop_corners(rois)
    out_w, out_h = size
    out = np.zeros((len(x0), 3, 3))
    out[:, 0, 0], out[:, 1, 0] = (x2 - x1) / out_w, (y2 - y1) / out_w
    out[:, 0, 1], out[:, 1, 1] = (x0 - x1) / out_h, (y0 - y1) / out_h
    out[:, 0, 2], out[:, 1, 2], out[:, 2, 2] = x1, y1, 1.0
    return out


def crop_affine(roi: Roi, size: tuple[int, int]) -> np.ndarray:
    """:func:`crop_affines` of one ROI: its 2x3 map."""
    return crop_affines(rois_array([roi]), size)[0]


def project_landmarks_many(raw: np.ndarray, rois: np.ndarray, size: tuple[int, int] = (224, 224),
                           padding: np.ndarray | None = None) -> np.ndarray:
    """Landmark model outputs of M crops ((M, 21, 3): x, y, z in crop pixels) -> (M, 21, 3) frame pixels (z in the
    same units as x).

    TensorsToLandmarks (divide by the crop size, z also by 0.4), LandmarkLetterboxRemoval and
    LandmarkProjection (rotate about the crop centre, scale by the ROI, move to its centre).
    ``rois`` (M, 5) are the ROIs before :func:`keep_aspects` and ``padding`` (M, 2) what it returned.
    """
    rois = np.asarray(rois, np.float64).reshape(-1, 5)
    raw = np.asarray(raw, np.float64).reshape(len(rois), -1, 3)
    pad = np.zeros((len(rois), 2)) if padding is None else np.asarray(padding, np.float64).reshape(-1, 2)
    out_w, out_h = size
    x, y = raw[..., 0] / out_w, raw[..., 1] / out_h
    z = raw[..., 2] / out_w / Z_SCALE
    px, py = pad[:, :1], pad[:, 1:]
    x, y, z = (x - px) / (1 - 2 * px), (y - py) / (1 - 2 * py), z / (1 - 2 * px)
    cx, cy, w, h, rot = (rois[:, i:i + 1] for i in range(5))
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = x - 0.5, y - 0.5
    out = np.empty(raw.shape, np.float32)
    out[..., 0], out[..., 1], out[..., 2] = (c * dx - s * dy) * w + cx, (s * dx + c * dy) * h + cy, z * w
    return out


def project_landmarks(raw: np.ndarray, roi: Roi, size: tuple[int, int] = (224, 224),
                      padding: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """:func:`project_landmarks_many` of one crop: (21, 3) crop pixels -> (21, 3) frame pixels."""
    return project_landmarks_many(np.asarray(raw)[None], rois_array([roi]), size, np.asarray([padding]))[0]


def unproject_landmarks(landmarks_px: np.ndarray, roi: Roi, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """The inverse of :func:`project_landmarks` without padding: frame pixels -> crop pixels (model units)."""
    lm = np.asarray(landmarks_px, np.float64).reshape(-1, 3)
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    ux, uy = (lm[:, 0] - roi.cx) / roi.width, (lm[:, 1] - roi.cy) / roi.height
    dx, dy = c * ux + s * uy, -s * ux + c * uy
    out_w, out_h = size
    return np.stack([(dx + 0.5) * out_w, (dy + 0.5) * out_h, lm[:, 2] / roi.width * out_w * Z_SCALE], 1)


def iou(a: Roi, b: Roi) -> float:
    from realtime.hands.ssd import iou as box_iou

    return box_iou(a.box(), b.box())


def associate(palm: list, tracked: list, threshold: float = 0.5, roi=lambda item: item) -> list:
    """AssociationNormRectCalculator: the palm items, then the tracked ones; each item added removes the
    earlier ones whose ROI it overlaps by IoU > ``threshold``, so a tracked hand wins over a palm found on
    it. ``roi(item)`` gives an item's :class:`Roi` (items may carry more than their ROI)."""
    result: list = []
    for item in list(palm) + list(tracked):
        result = [u for u in result if iou(roi(item), roi(u)) <= threshold]
        result.append(item)
    return result
