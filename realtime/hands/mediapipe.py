"""Hand detection and landmarks with MediaPipe Hands (0.10.21, the models bundled in its wheel).

Two stages with one output type, :class:`Hand`:

- :class:`HandTracker` -- the live loop's stage: MediaPipe's tracking mode, where the palm
  detector runs only when the landmark model loses the hand.
- :class:`StaticHandDetector` -- one independent photo at a time (datasets, ``eval``). Small
  or tightly cropped photos are upscaled and padded first; if no hand is found it retries a
  few other views (a cascade) and maps the landmarks back to the original pixels.

Handedness: MediaPipe labels hands as if the image were mirrored (a selfie view). We report
the *physical* hand for an unmirrored image (camera frames and dataset photos as stored), so
``mirrored_input=True`` must be passed for selfie-flipped images.

The palm detector alone (:class:`PalmDetector`, for J2S): where the hands are, without the landmark model. J2S regresses its own keypoints from a hand crop, so it needs only a box. MediaPipe's Python
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

import numpy as np

from realtime.hands.base import StaticSettings, static_palm_boxes, static_views
from realtime.hands.hand import MODEL_SIZES, Hand, HandBox

os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def mp_hands():
    try:
        import mediapipe as mp
    except ImportError as e:  # pragma: no cover - dependency declared in pyproject
        raise RuntimeError("mediapipe is not installed: pip install 'mediapipe==0.10.21'") from e
    return mp.solutions.hands


def to_hands(results, width: int, height: int, mirrored_input: bool, scale: float = 1.0, offset: float = 0.0,
              orig_size: tuple[int, int] | None = None) -> list[Hand]:
    """MediaPipe results (normalised to the processed view) -> Hands in original pixels."""
    hands: list[Hand] = []
    if not results.multi_hand_landmarks:
        return hands
    # a custom solution graph (hands_check) may not output them
    worlds = getattr(results, "multi_hand_world_landmarks", None) or [None] * len(results.multi_hand_landmarks)
    for lms, cls, wl in zip(results.multi_hand_landmarks, results.multi_handedness, worlds):
        arr = np.array([(p.x * width, p.y * height, p.z * width) for p in lms.landmark], dtype=np.float32)
        arr = (arr - np.array([offset, offset, 0.0], dtype=np.float32)) / scale
        world = np.array([(p.x, p.y, p.z) for p in wl.landmark], dtype=np.float32) if wl is not None else None
        label = cls.classification[0].label
        if not mirrored_input:
            label = "Left" if label == "Right" else "Right"
        hands.append(Hand(arr, label, float(cls.classification[0].score), orig_size or (width, height), world))
    return hands


class HandTracker:
    """Live stage: BGR frame -> list of :class:`Hand` (MediaPipe tracking mode)."""

    def __init__(self, model: str = "lite", max_hands: int = 2, min_detection: float = 0.5,
                 min_tracking: float = 0.5, mirrored_input: bool = False):
        if model not in MODEL_SIZES:
            raise ValueError(f"hand model must be 'lite' or 'full', got {model!r}")
        self.model, self.mirrored_input, self.max_hands = model, mirrored_input, max_hands
        self._hands = mp_hands().Hands(
            static_image_mode=False, max_num_hands=max_hands, model_complexity=0 if model == "lite" else 1,
            min_detection_confidence=min_detection, min_tracking_confidence=min_tracking)

    def __call__(self, frame_bgr: np.ndarray) -> list[Hand]:
        import cv2

        h, w = frame_bgr.shape[:2]
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        return to_hands(self._hands.process(rgb), w, h, self.mirrored_input)

    def close(self) -> None:
        self._hands.close()


class StaticHandDetector:
    """Photo -> list of :class:`Hand` (static-image mode, upscale + pad cascade); :meth:`detect_with_view` also says
    which view of the cascade found them."""

    def __init__(self, settings: StaticSettings = StaticSettings(), mirrored_input: bool = False):
        self.settings, self.mirrored_input = settings, mirrored_input
        self._hands = mp_hands().Hands(
            static_image_mode=True, max_num_hands=settings.max_hands,
            model_complexity=0 if settings.model == "lite" else 1, min_detection_confidence=settings.min_detection)

    def __call__(self, image_bgr: np.ndarray) -> list[Hand]:
        return self.detect_with_view(image_bgr)[0]

    def detect_with_view(self, image_bgr: np.ndarray) -> tuple[list[Hand], int]:
        """(hands, index in ``settings.views`` of the view that found them); ([], -1) when none did. The keypoint
        cache keeps the index: training learns only from hands the first views found (training.keypoints)."""
        h, w = image_bgr.shape[:2]
        for k, (view, scale, pad) in enumerate(static_views(image_bgr, self.settings.min_side, self.settings.views)):
            vh, vw = view.shape[:2]
            hands = to_hands(self._hands.process(view), vw, vh, self.mirrored_input, scale=scale,
                              offset=pad, orig_size=(w, h))
            if hands:
                return hands, k
        return [], -1

    def close(self) -> None:
        self._hands.close()


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


class PalmDetector:
    """Stage: BGR frame -> list of :class:`HandBox`, best first. ``model`` is lite or full."""

    def __init__(self, model: str = "lite", max_hands: int = 2, min_score: float = 0.5):
        if model not in MODEL_SIZES:
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
