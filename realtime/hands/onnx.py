"""MediaPipe Hands on ONNX Runtime: the palm detector and landmark model converted to ONNX, with MediaPipe's
pre- and post-processing and its tracking re-implemented in numpy / OpenCV.

    hands = OnnxHandTracker("lite")            # a drop-in for realtime.hands.HandTracker
    for frame in frames: found = hands(frame)  # list[realtime.hands.Hand]

- :class:`OnnxHandTracker` -- video: the palm detector runs only while fewer than ``max_hands`` hands
  are tracked; a tracked hand's next ROI comes from its landmarks (MediaPipe's tracking mode).
- :class:`OnnxStaticHandDetector` -- independent photos, with :class:`realtime.hands.StaticHandDetector`'s
  upscale-and-pad cascade (:func:`realtime.hands.static_views`).
- :class:`OnnxPalmDetector`, :class:`OnnxStaticPalmDetector` -- the palm detector alone, a drop-in for
  :mod:`realtime.hands.mediapipe`'s (the J2S backend).

The models are ``weights/mediapipe-hands`` (made by ``python -m export.mediapipe_hands``); each file is
checked against its sha256 in the manifest before it is loaded. The sessions take the best provider ONNX
Runtime has (CUDA when onnxruntime-gpu finds a GPU, else the CPU). The post-processing is numpy. The
preprocessing (the palm detector's letterbox, the landmark model's rotated crop) is ``preprocess``:

- ``numpy``: one ``cv2.warpAffine`` per crop on the host (:class:`NumpyCrops`);
- ``torch``: a step's frames uploaded at once through a pinned buffer, all crops warped on the device by one
  ``grid_sample`` and handed to the torch nets, or to ONNX Runtime by IO binding
  (:class:`realtime.torch_crops.TorchCrops`);
- ``auto`` (default): ``torch`` when the sessions run on a GPU and PyTorch sees it, else ``numpy``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.backends import CUDA_EP, TRT_EP, OrtBackend, select_providers
from realtime.manifest import MANIFEST, ModelError, verify_sha256, weights_dir
from realtime.hands.base import StaticSettings, static_palm_boxes, static_views
from realtime.hands.hand import MAX_HANDS, MODEL_SIZES, Hand, HandBox
from realtime.hands.roi import (Roi, associate, crop_affines, keep_aspects, landmarks_rois, palm_roi,
                                project_landmarks_many, rois_array, to_rois)
from realtime.hands.ssd import Detection, detections, remove_letterbox, ssd_anchors, weighted_nms
from realtime.torch_crops import place_rows

HAND_MODELS = "mediapipe-hands"
KIND = "hand-pipeline"
PALM_SIZE = 192
LANDMARK_SIZE = 224
NMS_THRESHOLD = 0.3
ASSOCIATION_THRESHOLD = 0.5
PALM_GRAPH_MIN_SCORE = 0.5  # the palm subgraph's own decoding threshold (realtime.hands.mediapipe runs it unchanged)
PREPROCESS = ("auto", "numpy", "torch")
PALM_DETECTIONS = MAX_HANDS  # detections a torch-engine palm call brings back per image (the most any caller keeps)


def hand_models_folder(folder: str | Path | None = None) -> Path:
    return Path(folder) if folder is not None else weights_dir() / HAND_MODELS


def load_hand_manifest(folder: str | Path | None = None) -> dict:
    path = hand_models_folder(folder) / MANIFEST
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: missing or unreadable hand-model manifest ({type(e).__name__}: {e}); "
                         "make it with: python -m export.mediapipe_hands --out weights/mediapipe-hands") from e
    if m.get("kind") != KIND or not isinstance(m.get("models"), dict):
        raise ModelError(f"{path}: not a hand-model manifest (kind {m.get('kind')!r}, expected {KIND!r})")
    return m


def hand_model_file(name: str, folder: str | Path | None = None, verify: bool = True) -> tuple[Path, dict]:
    """One of the converted models (``palm_detection_lite``, ``hand_landmark_full``, ...) -> (file, manifest entry),
    refused with a :class:`ModelError` when it is missing or its sha256 is not the manifest's."""
    folder = hand_models_folder(folder)
    entry = load_hand_manifest(folder)["models"].get(name)
    if entry is None:
        raise ModelError(f"{folder / MANIFEST} has no model {name!r}")
    path = folder / entry["file"]
    if not path.is_file():
        raise ModelError(f"{path} is missing (named by {folder / MANIFEST})")
    if verify:
        verify_sha256(path, entry["sha256"], "python -m export.mediapipe_hands remakes it")
    return path, entry


def open_hand_model(name: str, folder: str | Path | None = None, providers: list[str] | None = None,
                    threads: int = 1, verify: bool = True):
    """One of the converted models -> (ONNX Runtime session, manifest entry), refused with a :class:`ModelError`
    when its file is missing, its sha256 is not the manifest's, or its inputs and outputs are not what the
    manifest says."""
    import onnxruntime as ort

    path, entry = hand_model_file(name, folder, verify)
    # the providers asked for (all must be there), else the CUDA EP when ONNX Runtime has it, then the CPU
    providers, _ = select_providers(requested=providers, tensorrt=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({e})") from e
    ins, outs = session.get_inputs(), {o.name for o in session.get_outputs()}
    want_in = entry["input"]
    if len(ins) != 1 or ins[0].name != want_in["name"] or list(ins[0].shape[1:]) != list(want_in["shape"][1:]):
        raise ModelError(f"{path}: input {[(i.name, i.shape) for i in ins]} is not the manifest's "
                         f"{want_in['name']} {want_in['shape']}")
    missing = [o["name"] for o in entry["outputs"] if o["name"] not in outs]
    if missing:
        raise ModelError(f"{path}: outputs {missing} named by the manifest are missing (has {sorted(outs)})")
    return session, entry


def to_tensor(crops: np.ndarray, rgb: bool) -> np.ndarray:
    """uint8 crops (B, S, S, 3) -> float32 RGB in [0, 1], NHWC (the models' input)."""
    if not rgb:
        crops = crops[..., ::-1]
    return np.ascontiguousarray(crops, dtype=np.float32) * np.float32(1.0 / 255.0)


class NumpyCrops:
    """The models' inputs made on the host, as MediaPipe's OpenCV path does: ``cv2.warpAffine`` (bilinear) per
    crop. ``frames`` are the images themselves; :class:`realtime.torch_crops.TorchCrops` has the same two methods."""

    name = "numpy/OpenCV on the host"

    def frames(self, images: list[np.ndarray], rgb: bool):
        return list(images), rgb

    def crops(self, frames, which: list[int], rois: np.ndarray, size: int, replicate: bool) -> np.ndarray:
        """Crop k: the rect ``rois[k]`` (a padded ROI as a row) of ``frames``' image ``which[k]`` -> (M, size, size, 3)
        float32."""
        import cv2

        images, rgb = frames
        border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
        warped = [cv2.warpAffine(images[i], a, (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
                  for i, a in zip(which, crop_affines(rois, (size, size)))]
        return to_tensor(np.stack(warped), rgb)


def make_crops(preprocess: str, on_gpu: bool):
    """The preprocessing for models that run on the GPU or not (see the module docstring): NumpyCrops or
    TorchCrops."""
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {PREPROCESS}, got {preprocess!r}")
    if preprocess == "numpy" or (preprocess == "auto" and not on_gpu):
        return NumpyCrops()
    try:
        import torch
    except ImportError as e:
        if preprocess == "torch":
            raise ModelError("preprocess 'torch' needs PyTorch: pip install -e '.[train]'") from e
        return NumpyCrops()
    cuda = on_gpu and torch.cuda.is_available()
    if preprocess == "auto" and not cuda:
        return NumpyCrops()
    from realtime.torch_crops import TorchCrops

    return TorchCrops("cuda" if cuda else "cpu")


ENGINES = ("onnxruntime", "torch", "torch-fp16")  # what runs the converted nets: ONNX Runtime, or
# realtime.hands.torch_nets in fp32, or in fp16 (weights and activations; CUDA only)


class _HandModel:
    """A converted model and its preprocessing. ``engine`` onnxruntime: host arrays run as usual, torch tensors
    through IO binding; torch: the net as a torch module (:mod:`realtime.hands.torch_nets`) on ``device``, with the
    subclass's ``_head`` (what comes back to the host) and, on the GPU, its crops: one CUDA graph replay a call."""

    SIZE, REPLICATE = 0, False  # the crop the net takes, and whether its border is replicated (else zero)
    HEAD_OUTPUTS: tuple[str, ...] = ()  # the names of ``_head``'s outputs (torch engines)
    HEAD_INPUTS: tuple[str, ...] = ()  # more inputs of the step, handed to ``_head`` after the net's outputs

    def __init__(self, name: str, folder, providers, threads: int, verify: bool, preprocess: str,
                 engine: str = "onnxruntime", device: str = "cpu", cuda_graphs: bool = True, head_module=None):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.engine, self.calls = engine, 0  # calls: how often the model ran (tracking skips the palm detector)
        self.rows = 0  # crops it ran on, in all (a batched call counts each)
        self.fused = False  # crops made inside the torch module (TorchCrops with a torch engine)
        if engine != "onnxruntime":
            from realtime.backends.pytorch import TorchBackend, torch_device
            from realtime.hands.torch_nets import hand_net, hand_step
            from realtime.torch_crops import TorchCrops

            path, self.entry = hand_model_file(name, folder, verify)
            net, where = hand_net(path), torch_device(device)
            self.crops = make_crops(preprocess, where == "cuda")
            self.fused = isinstance(self.crops, TorchCrops)
            module = hand_step(net, lambda outs, *more: self._head(dict(zip(net.output_names, outs)), *more),
                               self.SIZE if self.fused else None, self.REPLICATE, len(self.HEAD_INPUTS), head_module)
            # the classifier's torch backend: on CUDA the step is captured once per batch size and replayed as a
            # CUDA graph (the net's weights are buffers and its shapes folded, the crops' maps a tensor input)
            inputs = ["maps", "canvas"] if self.fused else ["input"]
            self.torch = TorchBackend(module, inputs + list(self.HEAD_INPUTS), list(self.HEAD_OUTPUTS),
                                      where, "fp16" if engine == "torch-fp16" else "fp32",
                                      cuda_graphs=cuda_graphs and where == "cuda",
                                      cast_inputs=False)  # the step casts the crops to the net's dtype itself;
            # the maps and the heads' inputs (crop places, letterbox rows) stay float32 under fp16
            self.providers = [f"torch-{self.torch.device} ({self.torch.detail})"]
            return
        self.session, self.entry = open_hand_model(name, folder, providers, threads, verify)
        self.providers = self.session.get_providers()
        self.crops = make_crops(preprocess, self.providers[0] in (CUDA_EP, TRT_EP))
        self.io = OrtBackend.from_session(self.session)

    def run(self, x, names: list[str]) -> list[np.ndarray]:
        """ONNX Runtime engine: crops -> the named outputs, on the host."""
        self.calls += 1
        self.rows += len(x)
        if not isinstance(x, np.ndarray) and x.device.type == "cpu":  # torch crops made on the CPU (tests)
            x = x.numpy()
        if isinstance(x, np.ndarray):
            return self.session.run(names, {"input": x})
        out = self.io.run_torch({"input": x})  # on the GPU the crops stay there; the small outputs come back
        return [out[n].cpu().numpy() for n in names]

    def run_step(self, frames, which: list[int], rois: np.ndarray, head_inputs: np.ndarray | None = None) -> dict:
        """Torch engines: crop k is the rect ``rois[k]`` of frame ``which[k]``; run the net and its head -> the head's
        outputs, on the device (the caller brings back what it needs). ``head_inputs``: (M, C) float32 rows of the
        one :data:`HEAD_INPUTS` tensor, uploaded with the crops' maps (one copy)."""
        import torch

        self.calls += 1
        self.rows += len(which)
        if self.fused:
            from realtime.torch_crops import MAP_COLUMNS

            maps = self.crops.maps(frames, which, rois, self.SIZE, head_inputs)
            extra = {self.HEAD_INPUTS[0]: maps[:, MAP_COLUMNS:]} if self.HEAD_INPUTS else {}
            return self.torch.run_torch({"maps": maps, "canvas": frames.canvas, **extra})
        x = self.crops.crops(frames, which, rois, self.SIZE, self.REPLICATE)  # host crops (the CPU)
        extra = {self.HEAD_INPUTS[0]: torch.from_numpy(head_inputs)} if self.HEAD_INPUTS else {}
        return self.torch.run_torch({"input": torch.from_numpy(x), **extra})

    def _head(self, outputs: dict) -> tuple:
        raise NotImplementedError

    @property
    def captures(self) -> int:
        """CUDA graphs captured so far, evicted ones included (torch engines on CUDA: one per power-of-two batch
        of each input)."""
        return self.torch.captures if self.engine != "onnxruntime" else 0


class PalmModel(_HandModel):
    """The palm detector: image -> palm detections (score, box, 7 keypoints as fractions of the image), best first.
    ONNX Runtime's outputs are decoded on the host (:mod:`realtime.hands.ssd`); the torch engines decode them on the
    device (:mod:`realtime.hands.torch_ssd`) and bring back each image's first ``detections`` in one small copy."""

    SIZE, REPLICATE, HEAD_OUTPUTS = PALM_SIZE, False, ("detections",)
    HEAD_INPUTS = ("letterbox",)  # torch engines: each image's letterbox padding and score threshold

    def __init__(self, model: str = "lite", folder=None, providers=None, threads: int = 1, verify: bool = True,
                 preprocess: str = "auto", engine: str = "onnxruntime", device: str = "cpu", cuda_graphs: bool = True,
                 detections: int = PALM_DETECTIONS):
        if not 1 <= detections <= MAX_HANDS:
            raise ValueError(f"the palm detector keeps 1 to {MAX_HANDS} detections, not {detections}")
        self.detections = detections
        decoder = None
        if engine != "onnxruntime":
            from realtime.hands.torch_ssd import palm_decoder

            decoder = palm_decoder(detections, NMS_THRESHOLD)
        self.decoder = decoder
        super().__init__(f"palm_detection_{model}", folder, providers, threads, verify, preprocess, engine, device,
                         cuda_graphs, head_module=decoder)
        self.anchors = ssd_anchors()
        if decoder is not None:  # the step's fp16 cast rounded them (1.6e-4 of the input): float32, as on the host
            import torch

            decoder.anchors = torch.from_numpy(self.anchors).to(decoder.anchors.device)

    def __call__(self, image: np.ndarray, rgb: bool, min_score: float) -> list:
        return self.detect_many([image], rgb, min_score)[0]

    def detect_many(self, images: list[np.ndarray], rgb: bool, min_score: float, frames=None,
                    which: list[int] | None = None) -> list:
        """Several images (e.g. one per camera) through the net in one batch -> their detections, in order.
        ``frames``: ``self.crops.frames(images, rgb)`` when the caller has them already (one upload a step);
        ``which``: the images to look at (default: all); the result has one list per image looked at."""
        which = list(range(len(images))) if which is None else list(which)
        if not which:
            return []
        frames = self.crops.frames(images, rgb) if frames is None else frames
        wh = np.array([images[i].shape[1::-1] for i in which], np.float64)
        whole = np.concatenate([wh / 2, wh, np.zeros((len(which), 1))], 1)  # each image as a rect: cx, cy, w, h, 0
        letterbox, paddings = keep_aspects(whole, (PALM_SIZE, PALM_SIZE))
        if self.engine != "onnxruntime":  # decoded on the device: each image's few detections in one copy
            rows = np.concatenate([paddings, np.full((len(which), 1), min_score)], 1).astype(np.float32)
            found = self.run_step(frames, which, letterbox, rows)["detections"].cpu().numpy()
            return [[Detection(float(r[1]), r[2:6].copy(), r[6:].reshape(-1, 2).copy()) for r in image if r[0] > 0.5]
                    for image in found]
        x = self.crops.crops(frames, which, letterbox, PALM_SIZE, replicate=False)
        raw_boxes, raw_scores = self.run(x, ["boxes", "scores"])
        return [[remove_letterbox(d, tuple(padding))
                 for d in weighted_nms(detections(b, s, self.anchors, min_score), NMS_THRESHOLD)]
                for b, s, padding in zip(raw_boxes, raw_scores, paddings)]

    def _head(self, outputs: dict, letterbox) -> tuple:
        """On the device: each image's first detections of weighted NMS, as fractions of its frame."""
        return (self.decoder(outputs["boxes"], outputs["scores"], letterbox),)


@dataclass
class LandmarkResult:
    roi: Roi
    landmarks: np.ndarray  # (21, 3) frame pixels
    presence: float
    left: float  # probability of 'Left' in MediaPipe's mirrored convention
    reading: np.ndarray | None = None  # the device reader's probabilities (realtime.torch_reader), where it ran


class LandmarkModel(_HandModel):
    """The hand-landmark model: image + ROIs -> landmarks in frame pixels, presence and handedness (one batch).
    With the torch engines the landmarks are projected to the frame on the device; with a ``reader``
    (:mod:`realtime.torch_reader`) each hand's letter is read there too, and everything comes back in one copy."""

    SIZE, REPLICATE, HEAD_OUTPUTS = LANDMARK_SIZE, True, ("packed",)
    HEAD_INPUTS = ("place",)  # torch engines: each crop's place in its frame (realtime.torch_crops.place_rows)

    def __init__(self, model: str = "lite", folder=None, providers=None, threads: int = 1, verify: bool = True,
                 preprocess: str = "auto", engine: str = "onnxruntime", device: str = "cpu", cuda_graphs: bool = True,
                 reader=None, mirrored_input: bool = False):
        if reader is not None and engine != "torch":
            raise ValueError(f"a device reader runs inside the fp32 torch engine's landmark step, not {engine}'s")
        self.reader, self.mirrored_input = reader, mirrored_input
        super().__init__(f"hand_landmark_{model}", folder, providers, threads, verify, preprocess, engine, device,
                         cuda_graphs, head_module=reader)

    def __call__(self, image: np.ndarray, rois: list[Roi], rgb: bool) -> list[LandmarkResult]:
        return self.many([image], [rois], rgb)[0]

    def many(self, images: list[np.ndarray], rois: list[list[Roi]], rgb: bool, frames=None) -> list[list[LandmarkResult]]:
        """Images (one per camera) with each one's ROIs -> each one's results: every ROI of every image in one
        batch, the crop maps and the projection computed for all of them at once. ``frames``: as
        :meth:`PalmModel.detect_many`."""
        size = (LANDMARK_SIZE, LANDMARK_SIZE)
        which = [i for i, r in enumerate(rois) for _ in r]
        if not which:
            return [[] for _ in images]
        frames = self.crops.frames(images, rgb) if frames is None else frames
        flat = [r for rs in rois for r in rs]
        wanted = rois_array(flat)
        padded, padding = keep_aspects(wanted, size)
        readings = None
        if self.engine == "onnxruntime":
            x = self.crops.crops(frames, which, padded, LANDMARK_SIZE, replicate=True)
            lm, presence, handedness = self.run(x, ["landmarks", "presence", "handedness"])
            points = project_landmarks_many(lm, wanted, size, padding)
        else:  # one copy back: frame-pixel landmarks, presence, handedness (and the readings) side by side
            sizes = np.array([images[i].shape[1::-1] for i in which], np.float64)
            packed = self.run_step(frames, which, padded, place_rows(wanted, padding, sizes))["packed"].cpu().numpy()
            points, presence, handedness = packed[:, :63].reshape(-1, 21, 3), packed[:, 63:64], packed[:, 64:65]
            readings = packed[:, 65:] if self.reader is not None else None
        out = [[] for _ in images]
        for k, (i, roi) in enumerate(zip(which, flat)):
            out[i].append(LandmarkResult(roi, points[k], float(presence[k, 0]), float(handedness[k, 0]),
                                         None if readings is None else readings[k]))
        return out

    def _head(self, outputs: dict, place) -> tuple:
        """On the device: each crop's landmarks in frame pixels, presence and handedness in one (M, 63 + 2) tensor;
        with a reader, its probabilities after them (M, 65 + labels)."""
        import torch

        from realtime.torch_crops import project_on_device

        points = project_on_device(outputs["landmarks"], place, LANDMARK_SIZE)
        presence, left = (outputs[n].float().reshape(len(points), 1) for n in ("presence", "handedness"))
        parts = [points.reshape(len(points), -1), presence, left]
        if self.reader is not None:  # the physical hand, as handedness() names it: 'Left' flipped unless mirrored
            parts.append(self.reader(points, (left[:, 0] > 0.5) == self.mirrored_input, place[:, 7:9]))
        return (torch.cat(parts, 1),)


def handedness(left: float, mirrored_input: bool) -> tuple[str, float]:
    """The landmark model's 'Left' probability (MediaPipe's selfie convention) -> (label, score), flipped to the
    physical hand for an unmirrored image exactly as :func:`realtime.hands.mediapipe.to_hands` does."""
    label, score = ("Left", left) if left > 0.5 else ("Right", 1.0 - left)
    if not mirrored_input:
        label = "Left" if label == "Right" else "Right"
    return label, score


class OnnxHandTracker:
    """Stage: BGR frame -> list of :class:`~realtime.hands.Hand`, as :class:`realtime.hands.HandTracker` but on
    ONNX Runtime. ``static=True`` forgets every frame (MediaPipe's static-image mode). ``preprocess``: see the
    module docstring (``auto``: on the GPU when the sessions are)."""

    backend = "onnx"

    def __init__(self, model: str = "lite", max_hands: int = 2, min_detection: float = 0.5, min_tracking: float = 0.5,
                 mirrored_input: bool = False, providers: list[str] | None = None, static: bool = False,
                 folder: str | Path | None = None, threads: int = 1, verify: bool = True, preprocess: str = "auto",
                 engine: str = "onnxruntime", device: str = "cpu", search_every: int = 1, cuda_graphs: bool = True,
                 reader=None):
        if model not in MODEL_SIZES:
            raise ValueError(f"hand model must be 'lite' or 'full', got {model!r}")
        if not 1 <= max_hands <= MAX_HANDS:
            raise ValueError(f"max_hands must be 1 to {MAX_HANDS}, got {max_hands}")
        if search_every < 1:
            raise ValueError(f"search_every must be at least 1, got {search_every}")
        self.model, self.max_hands, self.mirrored_input, self.static = model, max_hands, mirrored_input, static
        # while some but fewer than max_hands hands are tracked, the palm detector looks for another one every
        # search_every frames (1: every frame, as MediaPipe does); with none tracked, every frame
        self.search_every, self._since_search = search_every, {}
        self.min_detection, self.min_tracking = min_detection, min_tracking
        self.palm = PalmModel(model, folder, providers, threads, verify, preprocess, engine, device, cuda_graphs,
                              detections=max_hands)
        # reader: a realtime.torch_reader module that reads each tracked hand's letter inside the landmark step
        self.landmarks = LandmarkModel(model, folder, providers, threads, verify, preprocess, engine, device,
                                       cuda_graphs, reader, mirrored_input)
        self.reads = reader is not None  # the hands come back with their reading
        self.landmarks.crops = self.palm.crops  # one upload of each frame serves both models
        self.providers, self.backend = self.palm.providers, "onnx" if engine == "onnxruntime" else engine
        self.preprocessing = self.palm.crops.name
        self.tracked: list[Roi] = []  # ROIs for the next frame, from this frame's landmarks

    def process(self, image: np.ndarray, rgb: bool = False) -> list[Hand]:
        """One image (BGR, or RGB with ``rgb=True``) -> hands in its pixels."""
        tracked = [] if self.static else self.tracked
        hands, nxt = self.step([image], [tracked], rgb)
        if not self.static:
            self.tracked = nxt[0]
        return hands[0]

    def step(self, images: list[np.ndarray], tracked: list[list[Roi]], rgb: bool = False):
        """Several cameras' frames, each with the ROIs tracked from its last frame -> (hands of each, next ROIs of
        each). One palm batch (the cameras that track fewer than ``max_hands``) and one landmark batch (every ROI
        of every camera): how N streams share one GPU."""
        frames = self.palm.crops.frames(images, rgb)  # on the GPU path: the step's one upload
        need = [i for i, t in enumerate(tracked) if self._search(i, len(t))]
        dets = dict(zip(need, self.palm.detect_many(images, rgb, self.min_detection, frames, need)))
        rois = []
        for i, image in enumerate(images):
            h, w = image.shape[:2]
            palms = [palm_roi(d.box, d.keypoints, (w, h)) for d in dets.get(i, [])[: self.max_hands]]
            # a degenerate ROI (a collapsed box, NaN from all landmarks on one point) is not cropped
            rois.append([r for r in associate(palms, tracked[i], ASSOCIATION_THRESHOLD)
                         if r.width >= 1.0 and r.height >= 1.0 and np.isfinite([r.cx, r.cy, r.rotation]).all()])
        kept = [(i, r) for i, results in enumerate(self.landmarks.many(images, rois, rgb, frames)) for r in results
                if r.presence >= self.min_tracking]
        hands, nxt = [[] for _ in images], [[] for _ in images]
        if kept:  # the next frame's ROIs of every kept hand of every camera, at once
            sizes = [images[i].shape[1::-1] for i, _ in kept]
            nxt_rois = to_rois(landmarks_rois(np.stack([r.landmarks for _, r in kept]), sizes))
            for (i, r), size, roi in zip(kept, sizes, nxt_rois):
                label, score = handedness(r.left, self.mirrored_input)
                hands[i].append(Hand(r.landmarks, label, score, tuple(size), reading=r.reading))
                nxt[i].append(roi)
        return hands, nxt

    def _search(self, stream: int, tracking: int) -> bool:
        """Does stream ``stream``, tracking ``tracking`` hands, run the palm detector on this frame?"""
        since = self._since_search.get(stream, self.search_every - 1) + 1
        search = tracking == 0 or (tracking < self.max_hands and since >= self.search_every)
        self._since_search[stream] = 0 if search else since
        return search

    def __call__(self, frame_bgr: np.ndarray) -> list[Hand]:
        return self.process(frame_bgr)

    def reset(self) -> None:
        self.tracked, self._since_search = [], {}

    def close(self) -> None:
        self.tracked, self._since_search = [], {}


class OnnxStaticHandDetector:
    """Photo -> list of :class:`~realtime.hands.Hand`, as :class:`realtime.hands.StaticHandDetector` (same settings,
    same upscale-and-pad cascade) but on ONNX Runtime. ``cuda_graphs`` (torch engines on CUDA): off by default,
    since photos come in many sizes; the full model looking again at a video's frames (one size) turns it on."""

    backend = "onnx"

    def __init__(self, settings: StaticSettings | None = None, mirrored_input: bool = False,
                 providers: list[str] | None = None, folder: str | Path | None = None, threads: int = 1,
                 preprocess: str = "auto", engine: str = "onnxruntime", device: str = "cpu",
                 cuda_graphs: bool = False):
        settings = settings or StaticSettings()
        self.settings, self.mirrored_input = settings, mirrored_input
        self.model = settings.model
        # MediaPipe's static mode keeps the landmark model's presence threshold at its default, 0.5
        self.tracker = OnnxHandTracker(settings.model, settings.max_hands, settings.min_detection, 0.5,
                                       mirrored_input, providers, static=True, folder=folder, threads=threads,
                                       preprocess=preprocess, engine=engine, device=device, cuda_graphs=cuda_graphs)
        self.providers, self.preprocessing = self.tracker.providers, self.tracker.preprocessing
        self.backend = self.tracker.backend

    def __call__(self, image_bgr: np.ndarray) -> list[Hand]:
        return self.detect_many([image_bgr])[0]

    def detect_many(self, images_bgr: list[np.ndarray]) -> list[list[Hand]]:
        """Several photos (e.g. the streams whose tracker lost the hand) -> the hands of each: each level of the
        upscale-and-pad cascade runs once, in one batch, for every photo with no hand yet."""
        out: list[list[Hand]] = [[] for _ in images_bgr]
        views = [static_views(im, self.settings.min_side, self.settings.views) for im in images_bgr]
        pending = list(range(len(images_bgr)))
        while pending:
            level = [(i, v) for i in pending if (v := next(views[i], None)) is not None]
            if not level:
                break
            found, _ = self.tracker.step([view for _, (view, _, _) in level], [[] for _ in level], rgb=True)
            pending = []
            for (i, (_, scale, pad)), hands in zip(level, found):
                if not hands:
                    pending.append(i)
                    continue
                h, w = images_bgr[i].shape[:2]
                off = np.array([pad, pad, 0.0], np.float32)
                out[i] = [Hand((hd.landmarks - off) / scale, hd.handedness, hd.score, (w, h)) for hd in hands]
        return out

    def close(self) -> None:
        self.tracker.close()


class OnnxPalmDetector:
    """Stage: BGR frame -> list of :class:`~realtime.hands.mediapipe.HandBox`, best first, as :class:`realtime.hands.mediapipe.PalmDetector`
    (MediaPipe's palm subgraph and palm-to-ROI) but on ONNX Runtime."""

    backend = "onnx"

    def __init__(self, model: str = "lite", max_hands: int = 2, min_score: float = 0.5,
                 providers: list[str] | None = None, folder: str | Path | None = None, threads: int = 1,
                 preprocess: str = "auto", engine: str = "onnxruntime", device: str = "cpu", cuda_graphs: bool = True):
        if model not in MODEL_SIZES:
            raise ValueError(f"palm model must be 'lite' or 'full', got {model!r}")
        self.model, self.max_hands, self.min_score = model, max_hands, min_score
        self.palm = PalmModel(model, folder, providers, threads, preprocess=preprocess, engine=engine, device=device,
                              cuda_graphs=cuda_graphs, detections=max_hands)
        self.providers, self.preprocessing = self.palm.providers, self.palm.crops.name
        self.backend = "onnx" if engine == "onnxruntime" else engine

    def detect(self, image: np.ndarray, rgb: bool) -> list[HandBox]:
        h, w = image.shape[:2]
        boxes = []
        for d in self.palm(image, rgb, max(PALM_GRAPH_MIN_SCORE, self.min_score)):
            r = palm_roi(d.box, d.keypoints, (w, h))
            boxes.append(HandBox((r.cx, r.cy), r.side, r.rotation, d.score, (w, h)))
        boxes.sort(key=lambda b: -b.score)
        return boxes[: self.max_hands]

    def detect_rgb(self, rgb: np.ndarray) -> list[HandBox]:
        return self.detect(rgb, rgb=True)

    def __call__(self, frame_bgr: np.ndarray) -> list[HandBox]:
        return self.detect(frame_bgr, rgb=False)

    def close(self) -> None:
        pass


class OnnxStaticPalmDetector(OnnxPalmDetector):
    """Photos: :class:`realtime.hands.mediapipe.StaticPalmDetector`'s cascade on the ONNX palm detector (no CUDA
    graphs: photos come in many sizes)."""

    def __init__(self, model: str = "full", max_hands: int = 1, min_score: float = 0.5, min_side: int = 256,
                 providers: list[str] | None = None, folder: str | Path | None = None, threads: int = 1,
                 preprocess: str = "auto", engine: str = "onnxruntime", device: str = "cpu"):
        super().__init__(model, max_hands, min_score, providers, folder, threads, preprocess, engine, device,
                         cuda_graphs=False)
        self.min_side = min_side

    def __call__(self, image_bgr: np.ndarray) -> list[HandBox]:
        return static_palm_boxes(self.detect_rgb, image_bgr, self.min_side)

