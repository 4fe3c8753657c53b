"""Hand pipelines: frame in, hands out, behind one contract (:mod:`.base`), one module per pipeline, and one
table, :data:`HAND_PIPELINES`, that ``--hands``, the benchmarks, the demo and ``hands-check`` read.

    stage = make_hands_stage("mediapipe")     # or "onnx"; static=True for photos, palm=True for J2S
    hands = stage(frame_bgr)                  # list[Hand], in the frame's pixels

- :mod:`.hand`: :class:`Hand`, :class:`HandBox`, :func:`pick_hand` (what every pipeline returns);
- :mod:`.base`: the :class:`HandsStage` contract, the photo cascade, :class:`Redetect` (and its schedule);
- :mod:`.mediapipe`: MediaPipe's own graphs (hands, and the palm detector alone);
- :mod:`.onnx`: the same models converted to ONNX on ONNX Runtime, with :mod:`.ssd` (anchors, NMS) and
  :mod:`.roi` (rotated hand regions, crops, landmark projection);
- ``torch``: that pipeline with the nets as PyTorch modules (:mod:`.torch_nets`), on the CPU or CUDA;
  ``torch-fp16`` the same in half precision (CUDA only).

Adding a pipeline is one new module with its four stages plus one row of :data:`HAND_PIPELINES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from realtime.hands.base import (DEFAULT_VIEWS, TRAINING_VIEWS, HandsStage, Redetect, RedetectSchedule,
                                 StaticSettings, redetect_settings, static_palm_boxes, static_views)
from realtime.hands.hand import MAX_HANDS, MODEL_SIZES, WHICH_HAND, Hand, HandBox, pick_hand
from realtime.hands.mediapipe import HandTracker, PalmDetector, StaticHandDetector, StaticPalmDetector

__all__ = ["DEFAULT_VIEWS", "TRAINING_VIEWS", "HAND_PIPELINES", "MAX_HANDS", "MODEL_SIZES", "WHICH_HAND", "Hand", "HandBox", "HandPipeline", "HandTracker", "HandsStage",
           "PalmDetector", "Redetect", "RedetectSchedule", "StaticHandDetector", "StaticPalmDetector", "StaticSettings", "make_hands_stage",
           "pick_hand", "redetect_fallback", "redetect_settings", "static_palm_boxes", "static_views"]


@dataclass(frozen=True)
class HandPipeline:
    """One row of :data:`HAND_PIPELINES`: how ``--hands NAME`` builds each of its four stages.

    Each builder takes keyword options (``model``, ``max_hands``, ``mirrored_input``, ``device``, ``settings``;
    the tracker also ``search_every`` and ``reader``, a :mod:`realtime.torch_reader` module that pipelines marked
    ``reads`` run inside their landmark step)
    and returns a :class:`HandsStage`: ``tracker`` (video, landmarks), ``static`` (photos, landmarks, with
    :class:`StaticSettings`), ``palm`` (video, palm boxes only, for J2S) and ``static_palm`` (photos, boxes).
    """

    name: str
    help: str
    tracker: Callable
    static: Callable
    palm: Callable
    static_palm: Callable
    batches: bool = False  # its tracker has step(): several cameras' frames through the nets at once
    reads: bool = False  # its tracker can read the letter on the device (a reader= given to the tracker builder)


def _mediapipe_tracker(model, max_hands, mirrored_input, device, search_every=1, reader=None):
    if reader is not None:
        raise ValueError("MediaPipe's own graph cannot run the classifier inside it (--hands torch can)")
    # MediaPipe's graph keeps its own schedule: the palm detector on every frame with fewer than max_hands hands
    return HandTracker(model, max_hands=max_hands, mirrored_input=mirrored_input)


def _mediapipe_static(settings, mirrored_input, device, cuda_graphs=False):
    return StaticHandDetector(settings, mirrored_input=mirrored_input)


def _mediapipe_palm(model, max_hands, device):
    return PalmDetector(model, max_hands=max_hands)


def _mediapipe_static_palm(device):
    return StaticPalmDetector()


def _engine(name: str, device: str) -> dict:
    """What runs the converted nets of pipeline ``name``: ONNX Runtime on ``device``'s providers, or the nets as
    torch modules on ``device`` (auto: CUDA when PyTorch sees a GPU), whatever ONNX Runtime build is installed."""
    if name.startswith("torch"):
        from realtime.backends import BackendError, torch_device

        where = torch_device(device)
        if name == "torch-fp16" and where != "cuda":
            raise BackendError(f"--hands torch-fp16 runs on a CUDA GPU only (here: --device {device} gives {where}); "
                               "use --hands torch on the CPU")
        return {"engine": name, "device": where}
    from realtime.backends import select_providers

    return {"providers": select_providers(device, tensorrt=False, strict=True)[0]}


def _converted(name: str) -> dict:
    """The four builders of a pipeline on the converted nets (realtime.hands.onnx), run by ``_engine(name)``."""
    def tracker(model, max_hands, mirrored_input, device, search_every=1, reader=None):
        from realtime.hands.onnx import OnnxHandTracker

        return OnnxHandTracker(model, max_hands=max_hands, mirrored_input=mirrored_input, search_every=search_every,
                               reader=reader, **_engine(name, device))

    def static(settings, mirrored_input, device, cuda_graphs=False):  # photos: many sizes, no CUDA graphs
        from realtime.hands.onnx import OnnxStaticHandDetector

        return OnnxStaticHandDetector(settings, mirrored_input=mirrored_input, cuda_graphs=cuda_graphs,
                                      **_engine(name, device))

    def palm(model, max_hands, device):
        from realtime.hands.onnx import OnnxPalmDetector

        return OnnxPalmDetector(model, max_hands=max_hands, **_engine(name, device))

    def static_palm(device):
        from realtime.hands.onnx import OnnxStaticPalmDetector

        return OnnxStaticPalmDetector(**_engine(name, device))

    return {"tracker": tracker, "static": static, "palm": palm, "static_palm": static_palm}


HAND_PIPELINES: dict[str, HandPipeline] = {p.name: p for p in (
    HandPipeline("mediapipe", "MediaPipe's own graph", _mediapipe_tracker, _mediapipe_static,
                 _mediapipe_palm, _mediapipe_static_palm),
    HandPipeline("onnx", "the same models converted to ONNX on ONNX Runtime (weights/mediapipe-hands; CUDA with "
                 "--device cuda or auto and the gpu extra)", **_converted("onnx"), batches=True),
    HandPipeline("torch", "the same nets as PyTorch modules (realtime/hands/torch_nets.py), on CUDA with --device "
                 "cuda or auto when PyTorch sees a GPU, else the CPU; with --backend torch the letter is read in the "
                 "same step (realtime/torch_reader.py)", **_converted("torch"), batches=True, reads=True),
    HandPipeline("torch-fp16", "those torch nets in fp16 (weights and activations), CUDA only",
                 **_converted("torch-fp16"), batches=True),
)}


def make_hands_stage(hands: str = "mediapipe", *, palm: bool = False, static: bool = False, model: str = "lite",
                     max_hands: int = 2, mirrored_input: bool = False, device: str = "auto",
                     redetect_after: int = 5, search_every: int = 1, reader=None) -> HandsStage:
    """The hands stage of pipeline ``hands`` (a row of :data:`HAND_PIPELINES`).

    ``palm``: boxes only (the palm detector, for J2S). ``static``: independent photos (``eval``, uploads),
    detected with the keypoint cache's upscale-and-pad cascade and its settings, instead of video tracking.
    ``redetect_after``: a landmark tracker that has found no hand for that many frames is helped by the same
    pipeline's full model on the whole frame (:class:`Redetect`; 0 turns it off). ``search_every``: while some but
    fewer than ``max_hands`` hands are tracked, look for another hand every that many frames (the converted
    pipelines; MediaPipe's graph looks on every frame). ``reader``: the tracker reads each hand's letter on the
    device (:mod:`realtime.torch_reader`; pipelines marked ``reads``).
    """
    if hands not in HAND_PIPELINES:
        raise ValueError(f"hands must be one of {tuple(HAND_PIPELINES)}, got {hands!r}")
    row = HAND_PIPELINES[hands]
    if reader is not None and (palm or static or not row.reads):
        raise ValueError(f"the letter is read inside the landmark step of a video tracker of --hands "
                         f"{' or '.join(n for n, r in HAND_PIPELINES.items() if r.reads)} only")
    if palm:
        return row.static_palm(device=device) if static else row.palm(model=model, max_hands=max_hands, device=device)
    if static:
        return row.static(settings=StaticSettings(), mirrored_input=mirrored_input, device=device)
    tracker = row.tracker(model=model, max_hands=max_hands, mirrored_input=mirrored_input, device=device,
                          search_every=search_every, reader=reader)
    if not redetect_after:
        return tracker
    return Redetect(tracker, after=redetect_after,
                    build_fallback=lambda: redetect_fallback(hands, max_hands, mirrored_input, device))


def redetect_fallback(hands: str, max_hands: int, mirrored_input: bool, device: str = "auto"):
    """What looks again at a video's frames after the tracker lost the hand (:class:`Redetect`, and each stream of
    :class:`realtime.streams.MultiStreamRecognizer`): pipeline ``hands``' full model on the whole frame, with CUDA
    graphs (a video's frames have one size)."""
    return HAND_PIPELINES[hands].static(settings=redetect_settings(max_hands), mirrored_input=mirrored_input,
                                        device=device, cuda_graphs=True)
