"""Palm detection alone: where the hands are, without MediaPipe's landmark model.

J2S regresses its own keypoints from a hand crop, so it needs only a box. MediaPipe's Python
API runs palm detection and landmarks together, but its wheel registers the palm-detection
subgraph (``PalmDetectionCpu``, the bundled ``palm_detection_{lite,full}.tflite``) and the
calculator that turns a palm into the hand's region of interest. :class:`PalmDetector` runs a
graph of just those two, so the SSD anchors, non-maximum suppression and ROI maths are
MediaPipe's own.

The ROI is a rotated square around the whole hand (2.6 times the palm box, shifted towards the
fingers). :class:`HandBox` keeps its centre, side and rotation in pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

_GRAPH = """
input_stream: "image"
output_stream: "palm_detections"
output_stream: "hand_rects"
input_side_packet: "model_complexity"
node {
  calculator: "PalmDetectionCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:palm_detections"
}
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:image" output_stream: "SIZE:image_size" }
node {
  calculator: "BeginLoopDetectionCalculator"
  input_stream: "ITERABLE:palm_detections"
  input_stream: "CLONE:image_size"
  output_stream: "ITEM:palm_detection"
  output_stream: "CLONE:image_size_for_palms"
  output_stream: "BATCH_END:palm_detections_timestamp"
}
node {
  calculator: "PalmDetectionDetectionToRoi"
  input_stream: "DETECTION:palm_detection"
  input_stream: "IMAGE_SIZE:image_size_for_palms"
  output_stream: "ROI:hand_rect_from_palm_detection"
}
node {
  calculator: "EndLoopNormalizedRectCalculator"
  input_stream: "ITEM:hand_rect_from_palm_detection"
  input_stream: "BATCH_END:palm_detections_timestamp"
  output_stream: "ITERABLE:hand_rects"
}
"""


@dataclass
class HandBox:
    """A hand's region of interest from the palm detector, in pixels of the frame it was found in."""

    center: tuple[float, float]
    side: float  # the ROI square's side
    rotation: float  # radians, MediaPipe's convention (the hand's up direction)
    score: float  # palm detection score
    image_size: tuple[int, int]  # (width, height)
    handedness: str = "unknown"  # a palm detector cannot tell

    @property
    def area(self) -> float:
        return self.side * self.side


class PalmDetector:
    """Stage: BGR frame -> list of :class:`HandBox`, best first. ``model`` is lite or full."""

    def __init__(self, model: str = "lite", max_hands: int = 2, min_score: float = 0.5):
        if model not in ("lite", "full"):
            raise ValueError(f"palm model must be 'lite' or 'full', got {model!r}")
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.python.solution_base import SolutionBase

        config = text_format.Parse(_GRAPH, calculator_pb2.CalculatorGraphConfig())
        self.model, self.max_hands, self.min_score = model, max_hands, min_score
        self._graph = SolutionBase(graph_config=config, side_inputs={"model_complexity": 0 if model == "lite" else 1},
                                   outputs=["palm_detections", "hand_rects"])

    def detect_rgb(self, rgb: np.ndarray) -> list[HandBox]:
        h, w = rgb.shape[:2]
        res = self._graph.process(rgb)
        if not res.hand_rects:
            return []
        boxes = []
        for det, r in zip(res.palm_detections, res.hand_rects):
            score = float(det.score[0]) if det.score else 0.0
            if score < self.min_score:
                continue
            side = max(r.width * w, r.height * h)  # the ROI is square in pixels
            boxes.append(HandBox((r.x_center * w, r.y_center * h), side, float(r.rotation), score, (w, h)))
        boxes.sort(key=lambda b: -b.score)
        return boxes[: self.max_hands]

    def __call__(self, frame_bgr: np.ndarray) -> list[HandBox]:
        import cv2

        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        return self.detect_rgb(rgb)

    def close(self) -> None:
        self._graph.close()


class StaticPalmDetector(PalmDetector):
    """Photos (``eval``): the keypoint cache's upscale-and-pad cascade, boxes mapped back to the photo's pixels."""

    def __init__(self, model: str = "full", max_hands: int = 1, min_score: float = 0.5, min_side: int = 256):
        super().__init__(model, max_hands, min_score)
        self.min_side = min_side

    def __call__(self, image_bgr: np.ndarray) -> list[HandBox]:
        return static_palm_boxes(self.detect_rgb, image_bgr, self.min_side)


def static_palm_boxes(detect_rgb, image_bgr: np.ndarray, min_side: int) -> list[HandBox]:
    """The first view of the upscale-and-pad cascade where ``detect_rgb`` finds a palm, mapped back to the photo."""
    from realtime.hands import static_views

    h, w = image_bgr.shape[:2]
    for view, scale, pad in static_views(image_bgr, min_side):
        boxes = detect_rgb(view)
        if boxes:
            return [HandBox(((b.center[0] - pad) / scale, (b.center[1] - pad) / scale), b.side / scale, b.rotation,
                            b.score, (w, h)) for b in boxes]
    return []
