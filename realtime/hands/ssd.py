"""SSD post-processing of MediaPipe's palm detector, in numpy: anchors, decoding, weighted NMS, letterbox removal.

Each function follows the MediaPipe calculator named in its docstring (the options are those of
``palm_detection_cpu.pbtxt`` in the mediapipe 0.10.21 wheel), so that the ONNX palm detector gives
MediaPipe's own detections. Coordinates are fractions of the detector's 192x192 input until
:func:`remove_letterbox` maps them to fractions of the frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    """SsdAnchorsCalculatorOptions of the palm detector."""

    num_layers: int = 4
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    input_size: tuple[int, int] = (192, 192)  # (width, height)
    anchor_offset: tuple[float, float] = (0.5, 0.5)
    strides: tuple[int, ...] = (8, 16, 16, 16)
    aspect_ratios: tuple[float, ...] = (1.0,)
    fixed_anchor_size: bool = True
    interpolated_scale_aspect_ratio: float = 1.0


PALM_ANCHORS = AnchorOptions()


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def ssd_anchors(o: AnchorOptions = PALM_ANCHORS) -> np.ndarray:
    """(N, 4) anchors: x_center, y_center, w, h (fractions of the input), as SsdAnchorsCalculator makes them.

    Layers with the same stride are merged: their anchors share the feature-map cells, in layer order.
    """
    if len(o.strides) != o.num_layers:
        raise ValueError(f"{o.num_layers} layers but {len(o.strides)} strides")
    width, height = o.input_size
    anchors = []
    layer = 0
    while layer < o.num_layers:
        sizes = []  # (w, h) of each anchor of a cell
        last = layer
        while last < len(o.strides) and o.strides[last] == o.strides[layer]:
            scale = _scale(o.min_scale, o.max_scale, last, len(o.strides))
            for ratio in o.aspect_ratios:
                sizes.append((scale * np.sqrt(ratio), scale / np.sqrt(ratio)))
            if o.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == len(o.strides) - 1 else _scale(o.min_scale, o.max_scale, last + 1,
                                                                       len(o.strides))
                s = np.sqrt(scale * nxt)
                r = o.interpolated_scale_aspect_ratio
                sizes.append((s * np.sqrt(r), s / np.sqrt(r)))
            last += 1
        stride = o.strides[layer]
        fh, fw = int(np.ceil(height / stride)), int(np.ceil(width / stride))
        for y in range(fh):
            for x in range(fw):
                for w, h in sizes:
                    if o.fixed_anchor_size:
                        w = h = 1.0
                    anchors.append(((x + o.anchor_offset[0]) / fw, (y + o.anchor_offset[1]) / fh, w, h))
        layer = last
    return np.asarray(anchors, dtype=np.float32)


@dataclass(frozen=True)
class DecodeOptions:
    """TensorsToDetectionsCalculatorOptions of the palm detector (box format XYWH: reverse_output_order)."""

    num_keypoints: int = 7
    x_scale: float = 192.0
    y_scale: float = 192.0
    w_scale: float = 192.0
    h_scale: float = 192.0
    score_clipping_thresh: float = 100.0


PALM_DECODE = DecodeOptions()


@dataclass
class Detection:
    """One palm: score, box (xmin, ymin, xmax, ymax) and keypoints (K, 2) as fractions of an image."""

    score: float
    box: np.ndarray
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, o: DecodeOptions = PALM_DECODE) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors (N, 4 + 2K) -> boxes (N, 4: xmin, ymin, xmax, ymax) and keypoints (N, K, 2: x, y)."""
    raw = np.asarray(raw, np.float32).reshape(len(anchors), -1)
    ax, ay, aw, ah = (anchors[:, i] for i in range(4))
    xc = raw[:, 0] / o.x_scale * aw + ax
    yc = raw[:, 1] / o.y_scale * ah + ay
    w = raw[:, 2] / o.w_scale * aw
    h = raw[:, 3] / o.h_scale * ah
    boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)
    kp = raw[:, 4:4 + 2 * o.num_keypoints].reshape(len(anchors), o.num_keypoints, 2)
    keypoints = np.empty_like(kp)
    keypoints[..., 0] = kp[..., 0] / o.x_scale * aw[:, None] + ax[:, None]
    keypoints[..., 1] = kp[..., 1] / o.y_scale * ah[:, None] + ay[:, None]
    return boxes, keypoints


def sigmoid_scores(raw: np.ndarray, clip: float = PALM_DECODE.score_clipping_thresh) -> np.ndarray:
    """Logits -> probabilities, clipped to +-clip first (score_clipping_thresh)."""
    x = np.clip(np.asarray(raw, np.float32).reshape(-1), -clip, clip)
    with np.errstate(over="ignore"):  # exp(100) overflows float32 to inf, giving 0 as MediaPipe's float maths does
        return 1.0 / (1.0 + np.exp(-x))


def detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, min_score: float,
               o: DecodeOptions = PALM_DECODE) -> list[Detection]:
    """TensorsToDetectionsCalculator: decoded boxes whose score reaches ``min_score`` (and whose size is sane)."""
    scores = sigmoid_scores(raw_scores, o.score_clipping_thresh)
    keep = np.flatnonzero(scores >= min_score)
    if not len(keep):
        return []
    boxes, keypoints = decode_boxes(np.asarray(raw_boxes).reshape(len(anchors), -1)[keep], anchors[keep], o)
    out = []
    for i, k in enumerate(keep):
        w, h = boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1]
        if w < 0 or h < 0 or np.isnan(w) or np.isnan(h):
            continue
        out.append(Detection(float(scores[k]), boxes[i], keypoints[i]))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes (0 when they do not overlap)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(dets: list[Detection], threshold: float = 0.3) -> list[Detection]:
    """NonMaxSuppressionCalculator, algorithm WEIGHTED, overlap IoU.

    Take the best remaining detection; every remaining detection overlapping it by more than
    ``threshold`` (itself included) is merged into one whose box and keypoints are the score-weighted
    means, with the best one's score; repeat with the rest.
    """
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
    out = []
    while order:
        best = dets[order[0]]
        candidates, remained = [], []
        for i in order:
            (candidates if iou(dets[i].box, best.box) > threshold else remained).append(i)
        if candidates:
            w = np.array([dets[i].score for i in candidates], np.float64)
            total = w.sum()
            box = sum(dets[i].box.astype(np.float64) * s for i, s in zip(candidates, w)) / total
            kp = sum(dets[i].keypoints.astype(np.float64) * s for i, s in zip(candidates, w)) / total
            merged = Detection(best.score, box.astype(np.float32), kp.astype(np.float32))
        else:  # cannot happen for a non-empty box (it overlaps itself), as in MediaPipe
            merged = best
        out.append(merged)
        if len(remained) == len(order):
            break
        order = remained
    return out


def remove_letterbox(det: Detection, padding: tuple[float, float]) -> Detection:
    """DetectionLetterboxRemovalCalculator: fractions of the padded input -> fractions of the frame.
    ``padding``: (horizontal, vertical) on each side, as fractions (realtime.hands.roi.keep_aspect gives it)."""
    px, py = padding
    sx, sy = 1.0 - 2 * px, 1.0 - 2 * py
    box = np.array([(det.box[0] - px) / sx, (det.box[1] - py) / sy, (det.box[2] - px) / sx, (det.box[3] - py) / sy],
                   np.float32)
    kp = det.keypoints.copy()
    kp[:, 0] = (kp[:, 0] - px) / sx
    kp[:, 1] = (kp[:, 1] - py) / sy
    return Detection(det.score, box, kp)
