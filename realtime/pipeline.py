"""The per-frame path, one small timed stage after another:

    hands -> features -> classify -> smooth (+ spell)

    recognizer = Recognizer.build(model="asl-letters")
    result = recognizer.process(frame_bgr)     # FrameResult: letter, confidence, text, per-stage ms

Two keypoint backends fill the first three stages (and the hand pipelines of
:data:`realtime.hands.HAND_PIPELINES` the first: MediaPipe's own graph, or the same models on ONNX Runtime):

- ``mediapipe``: MediaPipe hands (palm detector + landmark model) -> polar/Cartesian features
  -> a keypoint classifier (``asl-letters``, ``lis-letters``);
- ``j2s``: the palm detector alone -> a hand crop -> J2S, which regresses the keypoints and
  classifies their polar coordinates in one network (``lis-j2s``).

With MediaPipe keypoints, ``classifier_kind`` picks what reads the letter: ``keypoints`` (the features
above), ``image`` (a square crop framed by the landmarks -> an EfficientNetV2 image classifier,
``lis-letters-image``) or ``fused`` (both, probabilities averaged), :mod:`realtime.crop_classifier`.

Capture and display live in :mod:`realtime.live`; they are timed there.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from realtime.classifier import OnnxClassifier
from realtime.manifest import NO_LETTER, spelled_letters
from realtime.crop_classifier import CLASSIFIER_KINDS, DEFAULT_IMAGE_WEIGHT
from realtime.features import FeatureExtractor
from realtime.hands import HAND_PIPELINES, Hand, make_hands_stage, pick_hand
from realtime.sequence_reader import SEQUENCE_BACKENDS
from realtime.speller import ProbabilitySmoother, Speller, SpellerConfig
from realtime.torch_reader import device_reader

RECOGNIZER_STAGES = ("hands", "features", "classifier", "smoothing")  # what Recognizer.process times
STAGES = ("capture", *RECOGNIZER_STAGES, "overlay")  # the live loop's: a frame in, the window drawn


class StageTimer:
    """Collects milliseconds per stage for the current frame: ``with timer('hands'): ...``."""

    def __init__(self):
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - t0) * 1000


@dataclass
class FrameResult:
    t: float
    hands: list[Hand]
    hand: Hand | None  # the spelling hand
    letter: str | None  # smoothed top reading
    confidence: float
    committed: str | None  # what the speller committed on this frame
    text: str
    ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"t": round(self.t, 4), "hands": [h.to_dict() for h in self.hands],
                "hand": self.hand.handedness if self.hand else None, "letter": self.letter,
                "confidence": round(float(self.confidence), 4), "committed": self.committed, "text": self.text,
                "ms": {k: round(v, 3) for k, v in self.ms.items()}}


KEYPOINT_BACKENDS = ("mediapipe", "j2s")
READERS = ("letters", "sequence")
DEFAULT_MODELS = {"mediapipe": "asl-letters", "j2s": "lis-j2s"}


FUSED_KEYPOINT_MODELS = {"lis-letters-image": "lis-letters"}  # image model -> keypoint model of the same alphabet


def check_backend(keypoints: str, hand: str, hands: str = "mediapipe", classifier_kind: str = "keypoints") -> None:
    """Refuse combinations that cannot work, before any model is loaded."""
    if keypoints not in KEYPOINT_BACKENDS:
        raise ValueError(f"keypoints must be one of {KEYPOINT_BACKENDS}, got {keypoints!r}")
    if classifier_kind not in CLASSIFIER_KINDS:
        raise ValueError(f"classifier must be one of {CLASSIFIER_KINDS}, got {classifier_kind!r}")
    if keypoints == "j2s" and classifier_kind != "keypoints":
        raise ValueError("J2S classifies the keypoints it regresses: --classifier image/fused need --keypoints mediapipe")
    if hands not in HAND_PIPELINES:
        raise ValueError(f"hands must be one of {tuple(HAND_PIPELINES)}, got {hands!r}")
    if keypoints == "j2s" and hand != "any":
        raise ValueError("the palm detector cannot tell left from right hands: use --hand any with --keypoints j2s")


@dataclass
class PipelineOptions:
    """Every choice that builds the per-frame path (the options of ``live``, ``eval``, ``bench`` and the demo)."""

    model: str | None = None  # the classifier (default: DEFAULT_MODELS[keypoints])
    keypoints: str = "mediapipe"  # where the keypoints come from: KEYPOINT_BACKENDS
    classifier_kind: str = "keypoints"  # with mediapipe keypoints: CLASSIFIER_KINDS
    image_model: str | None = None  # image / fused: the image classifier
    image_weight: float = DEFAULT_IMAGE_WEIGHT  # fused: weight of the image classifier's probabilities
    profile: object = None  # a personal calibration (realtime.calibration.Profile)
    hands: str = "mediapipe"  # a row of realtime.hands.HAND_PIPELINES
    hand_model: str = "lite"  # lite | full: full reads new people's photos better (docs/results-hand-model.md)
    hand: str = "any"  # which hand spells: any | right | left
    max_hands: int = 2
    # with some but fewer than max_hands tracked, look for another hand every N frames: the palm detector ran on
    # every frame of a one-hand video before (MediaPipe's schedule); 5 finds a second hand within 1/6 s at 30 FPS
    search_every: int = 5
    redetect_after: int = 5  # frames without a hand before the full model looks again (0: never)
    mirrored_input: bool = False  # frames are selfie-flipped
    static: bool = False  # independent photos, not video
    device: str = "auto"
    backend: str = "auto"  # a row of realtime.backends.BACKENDS
    precision: str = "fp32"
    smoothing_s: float = 0.15
    # --hands torch --backend torch: the keypoint classifier runs inside the hands stage's landmark step, on the
    # device (realtime.torch_reader); False keeps features and classifier as stages of their own (to compare)
    fuse: bool = True
    # a hand far from every letter the model learned is read as no letter (realtime.letter_distance)
    reject_far: bool = False
    speller: SpellerConfig | None = None
    reader: str = "letters"  # READERS: held static letters, or a sequence model typing as it recognises
    sequence_model: str | None = None  # --reader sequence: the model (default: asl-sequence)
    lexicon: str | None = None  # a word list that corrects misread letters when a word ends (realtime.lexicon)
    # --reader sequence: --min-confidence, its own (default 0: the model reads right letters at 0.4 to 0.6; the
    # letter reader's threshold is speller.min_confidence); see realtime.sequence_reader.SequenceReader
    sequence_min_confidence: float = 0.0

    def check(self) -> None:
        """Refuse combinations that cannot work, before any model is loaded."""
        check_backend(self.keypoints, self.hand, self.hands, self.classifier_kind)
        if self.reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}, got {self.reader!r}")
        if self.reader == "sequence" and (self.keypoints != "mediapipe" or self.classifier_kind != "keypoints"
                                          or self.profile is not None):
            raise ValueError("--reader sequence reads MediaPipe's landmarks (--keypoints mediapipe --classifier "
                             "keypoints, no --profile)")
        if self.lexicon and self.static:
            raise ValueError("--lexicon corrects words spelled in a video or from a camera, not independent photos")
        if self.reader == "sequence" and self.model:  # the letter classifier is not used: say so, not ignore it
            raise ValueError(f"--reader sequence reads with its own model (--sequence-model, default asl-sequence; "
                             f"for Italian lis-sequence), not --model {self.model}")
        if self.reader == "sequence" and (self.backend not in SEQUENCE_BACKENDS or self.precision != "fp32"):
            raise ValueError(f"--reader sequence runs fp32 on --backend {', '.join(SEQUENCE_BACKENDS)} (not --backend "
                             f"{self.backend}, --precision {self.precision})")
        if self.reader == "sequence" and self.static:
            raise ValueError("--reader sequence reads video (motion between frames), not independent photos")
        if self.reject_far and (self.keypoints != "mediapipe" or self.classifier_kind != "keypoints"
                                or self.reader != "letters" or self.profile is not None):
            raise ValueError("--reject-far-hands measures the keypoint classifier's embedding: use it with --keypoints "
                             "mediapipe --classifier keypoints and the letter reader, without --profile (a profile "
                             "has learned the person's own shapes, which may be far from the training hands)")
        if self.profile is not None and (self.keypoints != "mediapipe" or self.classifier_kind == "image"):
            raise ValueError("a calibration profile adapts a keypoint classifier: use it with --keypoints mediapipe "
                             "and --classifier keypoints or fused")


def build_classifier(o: PipelineOptions):
    """(features stage, classifier stage) for the options: the keypoint, J2S, image or fused reader, calibrated
    by the profile when there is one."""
    if o.keypoints == "j2s":
        from realtime.j2s import J2SClassifier

        classifier = J2SClassifier(o.model or DEFAULT_MODELS[o.keypoints], device=o.device, backend=o.backend,
                                   precision=o.precision)
        features = classifier.cropper
    elif o.classifier_kind == "keypoints":
        classifier = OnnxClassifier(o.model or DEFAULT_MODELS[o.keypoints], device=o.device, backend=o.backend,
                                    precision=o.precision, reject_far=o.reject_far)
        features = FeatureExtractor(classifier.spec)
    else:
        from realtime.crop_classifier import DEFAULT_IMAGE_MODEL, FusedClassifier, OnnxImageClassifier

        image = OnnxImageClassifier(o.image_model or DEFAULT_IMAGE_MODEL, device=o.device, backend=o.backend,
                                    precision=o.precision)
        if o.classifier_kind == "image":
            classifier = image
        else:  # fused: the keypoint model that reads the same alphabet
            kp = OnnxClassifier(o.model or FUSED_KEYPOINT_MODELS.get(image.manifest.name, DEFAULT_MODELS[o.keypoints]),
                                device=o.device, backend=o.backend, precision=o.precision)
            classifier = FusedClassifier(kp, image, o.image_weight)
        features = image_inputs(classifier)
    if o.profile is not None:  # one person's calibration (realtime.calibration), checked against the model
        from realtime.calibration import CalibratedClassifier

        classifier = CalibratedClassifier(classifier, o.profile)
    return features, classifier


def build_hands(o: PipelineOptions, reader=None):
    """The hands stage of ``o``; ``reader``: the classifier to run inside its landmark step
    (:func:`realtime.torch_reader.device_reader`)."""
    return make_hands_stage(o.hands, palm=o.keypoints == "j2s", static=o.static, model=o.hand_model,
                            max_hands=o.max_hands, mirrored_input=o.mirrored_input, device=o.device,
                            redetect_after=o.redetect_after, search_every=o.search_every, reader=reader)


def image_inputs(classifier):
    """The features stage of an image or fused classifier: the hand crop (and the keypoint features)."""
    from realtime.crop_classifier import FusedClassifier, FusedInputs

    if isinstance(classifier, FusedClassifier):
        return FusedInputs(FeatureExtractor(classifier.spec), classifier.image.crop)
    return classifier.crop


def smooth_and_spell(probs, t: float, labels: list[str], smoother: ProbabilitySmoother, speller: Speller):
    """One frame's probabilities (None: no hand) -> (smoothed letter or None, its confidence, what the speller
    committed). Across a gap the smoother's time constant fades the old reading out by itself; a hand that
    spells nothing (the no-letter class) is present but has no reading to type."""
    letter, conf = None, 0.0
    if probs is not None:
        p = smoother(probs, t)
        k = int(np.argmax(p))
        letter, conf = labels[k], float(p[k])
        if letter == NO_LETTER:
            letter, conf = None, 0.0
    return letter, conf, speller.update(t, letter, conf, hand_present=probs is not None,
                                        probs=p if probs is not None else None)


def build_sequence_reader(o: "PipelineOptions"):
    """``--reader sequence``: the sequence model ``o`` names (or the default), with its word list, confidence floor
    and backend; for one stream, or the first of several (:meth:`SequenceReader.shared` makes the others)."""
    from realtime.sequence_reader import DEFAULT_SEQUENCE_MODEL, SequenceReader

    return SequenceReader(o.sequence_model or DEFAULT_SEQUENCE_MODEL, device=o.device, config=o.speller,
                          lexicon=o.lexicon, min_confidence=o.sequence_min_confidence, backend=o.backend)


def make_speller(options: "PipelineOptions", labels: list[str]) -> Speller:
    """The letter reader's speller: with ``--lexicon``, one that rescores each finished word against the list."""
    config = options.speller or SpellerConfig()
    if not options.lexicon:
        return Speller(config)
    from realtime.lexicon import LETTER_BONUS, Lexicon, WordListSpeller

    return WordListSpeller(config, Lexicon.load(options.lexicon, spelled_letters(labels), bonus=LETTER_BONUS), labels)


class Recognizer:
    """Frame in, reading and spelled text out, from three stage objects and the two that follow them:

    - ``hands``: frame -> hands (:class:`realtime.hands.HandsStage`);
    - ``features``: (spelling hand, frame) -> the classifier's input;
    - ``classifier``: input -> probabilities over ``classifier.labels``;
    - then a :class:`ProbabilitySmoother` and a :class:`Speller`.

    :meth:`build` makes them from :class:`PipelineOptions`; tests and tools may hand in their own stages.
    """

    def __init__(self, hands, features, classifier, *, hand: str = "any", smoothing_s: float = 0.15,
                 speller: SpellerConfig | None = None, options: PipelineOptions | None = None, sequence=None):
        self.hands, self.features, self.classifier = hands, features, classifier
        # the classifier the hands stage reads with on the device (realtime.torch_reader), if it does: its readings
        # are used only while that is still the classifier (a demo session swaps in a calibrated one)
        self._read_by_hands = classifier if getattr(hands, "reads", False) else None
        self.sequence = sequence  # --reader sequence: it replaces the classifier, smoother and speller
        self.options = options or PipelineOptions(hand=hand, smoothing_s=smoothing_s, speller=speller)
        self.keypoints, self.classifier_kind = self.options.keypoints, self.options.classifier_kind
        self.hands_backend = self.options.hands
        self.labels = self.classifier.labels
        self.smoother = ProbabilitySmoother(smoothing_s)
        self.speller = sequence if sequence is not None else make_speller(self.options, self.labels)
        self.which_hand = hand

    @classmethod
    def build(cls, model: str | None = None, *, hands_stage=None, classifier=None, **options) -> "Recognizer":
        """The recognizer of :class:`PipelineOptions` (``options`` are its fields); ``hands_stage`` or
        ``classifier`` replace what the options would build (a classifier comes with its own features stage)."""
        return cls.from_options(PipelineOptions(model=model, **options), hands_stage=hands_stage,
                                classifier=classifier)

    @classmethod
    def from_options(cls, o: PipelineOptions, hands_stage=None, classifier=None) -> "Recognizer":
        """The recognizer of ``o``; see :meth:`build`."""
        o.check()
        if o.reader == "sequence":
            reader = build_sequence_reader(o)
            return cls(hands_stage or build_hands(o), FeatureExtractor(reader.spec), reader, hand=o.hand,
                       smoothing_s=o.smoothing_s, speller=o.speller, options=o, sequence=reader)
        if classifier is not None:
            features = (classifier.cropper if o.keypoints == "j2s" else FeatureExtractor(classifier.spec)
                        if o.classifier_kind == "keypoints" else image_inputs(classifier))
            if o.profile is not None:
                from realtime.calibration import CalibratedClassifier

                classifier = CalibratedClassifier(classifier, o.profile)
        else:
            features, classifier = build_classifier(o)
        spec = getattr(features, "spec", None)
        if getattr(spec, "points", "image") == "world" and o.hands != "mediapipe":
            raise ValueError(f"the model reads MediaPipe's world landmarks, which only --hands mediapipe passes on "
                             f"(not --hands {o.hands})")
        hands = hands_stage or build_hands(o, device_reader(o, classifier))
        return cls(hands, features, classifier, hand=o.hand, smoothing_s=o.smoothing_s, speller=o.speller, options=o)

    @property
    def reads_in_hands_step(self) -> bool:
        """Does the hands stage read the letter itself, on the device (:mod:`realtime.torch_reader`)? Then the
        features and classifier stages run only for a hand it did not read (one the full model found again)."""
        return self._read_by_hands is not None and self.classifier is self._read_by_hands

    def read(self, frame_bgr: np.ndarray, timer: StageTimer | None = None):
        """hands -> features -> classifier on one frame alone -> (hands, spelling hand or None, probabilities or None)."""
        timer = timer or StageTimer()
        with timer("hands"):
            hands = self.hands(frame_bgr)
            hand = pick_hand(hands, self.which_hand)
        if hand is None:
            return hands, None, None
        reading = getattr(hand, "reading", None)  # a HandBox (J2S's palm boxes) has none
        if reading is not None and self.reads_in_hands_step:  # read in the hands stage's device step: done
            return hands, hand, reading
        with timer("features"):
            x = self.features(hand, frame_bgr)
        with timer("classifier"):
            probs = self.classifier(x)
        if getattr(x, "hand", None) is not None:  # J2S: the keypoints it regressed, for the overlay
            hand = x.hand
            hands = [hand]
        return hands, hand, probs

    def process(self, frame_bgr: np.ndarray, t: float | None = None, timer: StageTimer | None = None) -> FrameResult:
        t = time.perf_counter() if t is None else t
        timer = timer or StageTimer()
        if self.sequence is not None:  # every frame goes to the sequence model, with a hand or without
            with timer("hands"):
                hands = self.hands(frame_bgr)
                hand = pick_hand(hands, self.which_hand)
            with timer("features"):
                x = self.features(hand, frame_bgr) if hand is not None else None
            with timer("classifier"):
                letter, conf, typed = self.sequence.update(x, t)
            return FrameResult(t, hands, hand, letter, conf, typed, self.sequence.text, dict(timer.ms))
        hands, hand, probs = self.read(frame_bgr, timer)
        with timer("smoothing"):
            letter, conf, committed = smooth_and_spell(probs if hand is not None else None, t, self.labels,
                                                       self.smoother, self.speller)
        return FrameResult(t, hands, hand, letter, conf, committed, self.speller.text, dict(timer.ms))

    def close(self) -> None:
        close = getattr(self.hands, "close", None)
        if close:
            close()
