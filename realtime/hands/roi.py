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


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_from(x0: float, y0: float, x1: float, y1: float, target: float = math.pi / 2) -> float:
    """The rotation that turns the vector (x0, y0) -> (x1, y1) (pixels, y down) to ``target`` (90 degrees: up)."""
    return normalize_radians(target - math.atan2(-(y1 - y0), x1 - x0))


def transform_rect(r: Roi, scale: float, shift_x: float = 0.0, shift_y: float = 0.0,
                   square_long: bool = True) -> Roi:
    """RectTransformationCalculator: shift along the rect's own rotated axes, square on the long side, scale."""
    w, h, rot = r.width, r.height, r.rotation
    if rot == 0.0:
        cx, cy = r.cx + w * shift_x, r.cy + h * shift_y
    else:
        cx = r.cx + w * shift_x * math.cos(rot) - h * shift_y * math.sin(rot)
        cy = r.cy + w * shift_x * math.sin(rot) + h * shift_y * math.cos(rot)
    if square_long:
        w = h = max(w, h)
    return Roi(cx, cy, w * scale, h * scale, rot)


def palm_roi(box: np.ndarray, keypoints: np.ndarray, image_size: tuple[int, int], scale: float = 2.6,
             shift_y: float = -0.5) -> Roi:
    """A palm detection (box and keypoints as fractions of the frame) -> the hand's ROI in pixels."""
    w, h = image_size
    x0, y0 = keypoints[0, 0] * w, keypoints[0, 1] * h  # wrist centre
    x1, y1 = keypoints[2, 0] * w, keypoints[2, 1] * h  # middle finger MCP
    rect = Roi((box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h,
               rotation_from(x0, y0, x1, y1))
    return transform_rect(rect, scale, shift_y=shift_y)


def landmarks_rect(landmarks_px: np.ndarray, image_size: tuple[int, int]) -> Roi:
    """HandLandmarksToRectCalculator on the ROI landmarks (pixels in, pixels out).

    The arithmetic is MediaPipe's, in normalised coordinates, including its initial 'max' of
    FLT_MIN (a tiny positive number): it only matters for a hand wholly left of or above the frame.
    """
    w, h = image_size
    pts = np.asarray(landmarks_px, np.float64)[list(ROI_LANDMARKS), :2] / (w, h)
    # the subset's indices 4, 6, 8 are landmarks 5 (index MCP), 9 (middle MCP), 13 (ring MCP)
    x0, y0 = pts[0, 0] * w, pts[0, 1] * h
    x1 = ((pts[4, 0] + pts[8, 0]) / 2 + pts[6, 0]) / 2 * w
    y1 = ((pts[4, 1] + pts[8, 1]) / 2 + pts[6, 1]) / 2 * h
    rotation = rotation_from(x0, y0, x1, y1)
    reverse = normalize_radians(-rotation)
    tiny = np.finfo(np.float32).tiny
    max_x, max_y = max(tiny, pts[:, 0].max()), max(tiny, pts[:, 1].max())
    cx_n, cy_n = (max_x + pts[:, 0].min()) / 2, (max_y + pts[:, 1].min()) / 2
    ox, oy = (pts[:, 0] - cx_n) * w, (pts[:, 1] - cy_n) * h
    c, s = math.cos(reverse), math.sin(reverse)
    px, py = ox * c - oy * s, ox * s + oy * c
    pmax_x, pmax_y = max(tiny, px.max()), max(tiny, py.max())
    pcx, pcy = (pmax_x + px.min()) / 2, (pmax_y + py.min()) / 2
    cx = pcx * math.cos(rotation) - pcy * math.sin(rotation) + w * cx_n
    cy = pcx * math.sin(rotation) + pcy * math.cos(rotation) + h * cy_n
    return Roi(cx, cy, pmax_x - px.min(), pmax_y - py.min(), rotation)


def landmarks_roi(landmarks_px: np.ndarray, image_size: tuple[int, int], scale: float = 2.0,
                  shift_y: float = -0.1) -> Roi:
    """The next frame's ROI from this frame's 21 landmarks (pixels)."""
    return transform_rect(landmarks_rect(landmarks_px, image_size), scale, shift_y=shift_y)


def keep_aspect(roi: Roi, size: tuple[int, int]) -> tuple[Roi, tuple[float, float]]:
    """PadRoi: widen the ROI to the output's aspect ratio -> (padded ROI, (horizontal, vertical) padding)."""
    tensor_ratio = size[1] / size[0]
    roi_ratio = roi.height / roi.width
    if tensor_ratio > roi_ratio:
        padded = Roi(roi.cx, roi.cy, roi.width, roi.width * tensor_ratio, roi.rotation)
        return padded, (0.0, (1.0 - roi_ratio / tensor_ratio) / 2.0)
    padded = Roi(roi.cx, roi.cy, roi.height / tensor_ratio, roi.height, roi.rotation)
    return padded, ((1.0 - tensor_ratio / roi_ratio) / 2.0, 0.0)


def crop_affine(roi: Roi, size: tuple[int, int]) -> np.ndarray:
    """The 2x3 affine map frame pixels -> crop pixels that ImageToTensorCalculator's OpenCV path uses:
    the corners of the rotated rect (cv2.boxPoints) onto the corners (0, H), (0, 0), (W, 0) of the output,
    in OpenCV's pixel-centre convention, as MediaPipe does it. Use with cv2.warpAffine(..., INTER_LINEAR)."""
    import cv2

    corners = cv2.boxPoints(((roi.cx, roi.cy), (roi.width, roi.height), roi.rotation * 180.0 / math.pi))
    out_w, out_h = size
    dst = np.array([[0.0, out_h], [0.0, 0.0], [out_w, 0.0]], np.float32)
    return cv2.getAffineTransform(corners[:3].astype(np.float32), dst)


def project_landmarks(raw: np.ndarray, roi: Roi, size: tuple[int, int] = (224, 224),
                      padding: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Landmark model output (21 x (x, y, z) in crop pixels) -> (21, 3) frame pixels (z in the same units as x).

    TensorsToLandmarks (divide by the crop size, z also by 0.4), LandmarkLetterboxRemoval and
    LandmarkProjection (rotate about the crop centre, scale by the ROI, move to its centre).
    ``roi`` is the ROI before :func:`keep_aspect` and ``padding`` what keep_aspect returned.
    """
    raw = np.asarray(raw, np.float64).reshape(-1, 3)
    out_w, out_h = size
    x, y = raw[:, 0] / out_w, raw[:, 1] / out_h
    z = raw[:, 2] / out_w / Z_SCALE
    px, py = padding
    x, y, z = (x - px) / (1 - 2 * px), (y - py) / (1 - 2 * py), z / (1 - 2 * px)
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    dx, dy = x - 0.5, y - 0.5
    fx = (c * dx - s * dy) * roi.width + roi.cx
    fy = (s * dx + c * dy) * roi.height + roi.cy
    return np.stack([fx, fy, z * roi.width], axis=1).astype(np.float32)


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
