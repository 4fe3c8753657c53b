"""``--reader sequence``: letters typed as a sequence model recognises them in the stream of frames, no hold
needed (issue 17). The model (``asl-sequence``) is causal with a bounded look-back of ``window`` frames, and the
newest frame's posteriors are decoded greedily (CTC: a class that is not blank and differs from the last frame's is
typed). Where the model folder has its streaming step (``step.onnx``), each frame goes through it with the state the
last frame left (one column of each layer); otherwise the newest ``window`` frames go through ``model.onnx`` each
frame, with a mask where the stream began. Both give exactly the whole sequence's output for each frame. What it was trained on is in its manifest (``training.data``; the shipped
``asl-sequence``: stitched, synthetic motion and held photos of real hands, no real fingerspelling video). With a
word list
(``--lexicon``, ``realtime.lexicon``), each finished word is rescored against the list words near it.

It stands where the letter path has its classifier, smoother and speller: ``update(features or None, t)``.
"""
from __future__ import annotations

import numpy as np

from realtime.backends import checked_model_file, open_model, open_session
from realtime.manifest import ModelError, spelled_letters, verify_sha256
from realtime.speller import SpellerConfig

DEFAULT_SEQUENCE_MODEL = "asl-sequence"
SEQUENCE_BACKENDS = ("auto", "onnxruntime", "torch")  # the --backend values the sequence reader runs on


def sequence_inputs(x: np.ndarray, detected: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(T, dim) per-frame hand features, (T,) hand found, (T,) seconds -> (T, 2 * dim + 1) model inputs: the
    features (0 where no hand), their change per 1/30 s (velocities, whatever the frame rate; 0 unless both
    frames have a hand) and the hand-found flag. Training (whole sequences) and streaming (the newest two frames)
    both build their inputs here."""
    x = np.where(np.asarray(detected, bool)[:, None], np.asarray(x, np.float32), np.float32(0.0))
    t = np.asarray(t, np.float64)
    dt = np.diff(t, prepend=t[0] - 1 / 30.0) * 30.0
    v = np.diff(x, axis=0, prepend=x[:1]) / np.maximum(dt, 1e-3)[:, None]
    both = np.asarray(detected, bool) & np.roll(detected, 1)
    both[0] = False
    v[~both] = 0.0
    return np.concatenate([x, np.clip(v, -5, 5), np.asarray(detected, np.float32)[:, None]], 1).astype(np.float32)


class SequenceReader:
    """Stage: the spelling hand's features (or None: no hand) and the frame's time -> (letter, confidence,
    typed this frame or None); ``text``, ``clear()`` and ``backspace()`` as the speller has them."""

    MAX_WORD_FRAMES = 1800  # posteriors kept for the word being spelled (a minute at 30 frames/s)
    # this many frames in a row without a hand are the detector missing it, not the signer pausing: the blank the
    # model reads there does not separate two readings of the held letter (else a held A types AA)
    DROPOUT_FRAMES = 2
    min_confidence = 0.0  # --min-confidence (see __init__); every class the model reads is typed by default

    def __init__(self, model: str = DEFAULT_SEQUENCE_MODEL, device: str = "cpu", config: SpellerConfig | None = None,
                 lexicon: str | None = None, min_confidence: float = 0.0, backend: str = "auto"):
        """``min_confidence`` (``--min-confidence``): a class the model reads with a lower probability is unsure, not
        typed until a later frame reads it surely. Its own default is 0, not the letter reader's 0.6: this model's
        posteriors are spread over the frames around a letter, and it reads right letters at 0.4 to 0.6 (a massey
        video: X 0.39, D 0.47, N 0.48, C 0.51, H 0.54), which 0.6 would drop. ``config`` is kept for the speller's
        interface only: there is no hold (a letter often peaks for a frame or two). ``backend``: ``auto`` or
        ``onnxruntime`` run the ONNX files; ``torch`` runs the streaming step in PyTorch (:class:`TorchStep`, on CUDA
        with ``device`` cuda whatever ONNX Runtime build is installed)."""
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in 0..1, got {min_confidence}")
        if backend not in SEQUENCE_BACKENDS:
            raise ValueError(f"the sequence reader runs on {' or '.join(SEQUENCE_BACKENDS)}, not --backend {backend}")
        self.min_confidence = min_confidence
        if backend == "torch":
            self.folder, self.manifest, self.path = checked_model_file(model, True, "sequence-reader")
            self.session = None  # no window model: the step is always there, built from model.onnx's weights
        else:
            self.folder, self.manifest, self.path, self.session = open_model(model, device, True, "sequence-reader")
        m = self.manifest
        self.spec, self.window, self.classes = m.features, int(m.raw["window"]), m.labels
        self.blank, self.space = int(m.raw.get("blank", 0)), (m.labels.index(" ") if " " in m.labels else None)
        self.dim = self.spec.dim
        self.frames = np.zeros((self.window, 2 * self.dim + 1), np.float32)
        mask = m.raw.get("stream_mask")  # models exported before it: the window's empty places read as zero frames
        self.mask_name = mask["name"] if mask else None
        self.valid = np.zeros((1, self.window), np.float32)  # 1 at the window's places the stream has filled
        self.seen = 0
        self.step, self.state = self._torch_step(device) if backend == "torch" else self._open_step(device)
        self.config = config or SpellerConfig()
        self.text, self.prev_k, self.prev_x, self.prev_t = "", self.blank, None, None
        self.missing = 0  # frames in a row without a hand
        self.lexicon = None
        if lexicon:
            from realtime.lexicon import Lexicon

            self.lexicon = Lexicon.load(lexicon, spelled_letters(self.classes))
        self.word_start, self.word_logp = 0, []  # where the word being spelled begins in text, its frames
        self.whole_word = True  # False: the word's first letters were typed before (a rebuild, a backspace)

    @property
    def labels(self) -> list[str]:
        return self.classes

    def _open_step(self, device: str):
        """The streaming step and its empty state, or (None, None) where the folder has none (models exported
        before it) or its file is missing or damaged (said: the window model gives the same letters, slower)."""
        entry = self.manifest.raw.get("stream_step")
        if not entry:
            return None, None
        path = self.folder / entry["file"]
        try:
            if not path.is_file():
                raise ModelError(f"{path} is missing (named by the manifest)")
            verify_sha256(path, entry["sha256"])
            session = open_session(path, device)
        except ModelError as e:
            import sys

            print(f"{e}; reading with the whole window each frame instead (the same letters, slower)", file=sys.stderr)
            return None, None
        return session, np.zeros((1, *entry["state"]["shape"][1:]), np.float32)

    def _torch_step(self, device: str):
        from realtime.sequence_step import TorchStep

        step = TorchStep(self.path, device)
        return step, np.zeros((1, *step.state_shape), np.float32)

    def describe(self) -> str:
        how = "streaming step" if self.step is not None else f"window of {self.window} frames each frame"
        on = (f"onnxruntime ({', '.join(self.session.get_providers())})" if self.session is not None else
              f"PyTorch ({self.step.device})")
        return f"sequence reader on {on}, {how}"

    def row(self, x: np.ndarray | None, t: float) -> np.ndarray:
        """One frame's input: :func:`sequence_inputs` of the last frame and this one."""
        x = None if x is None else np.asarray(x, np.float32).reshape(-1)
        prev = self.prev_x if self.prev_x is not None else np.zeros(self.dim, np.float32)
        now = x if x is not None else np.zeros(self.dim, np.float32)
        prev_t = self.prev_t if self.prev_t is not None else t - 1 / 30.0
        out = sequence_inputs(np.stack([prev, now]), np.array([self.prev_x is not None, x is not None]),
                              np.array([prev_t, t]))[-1]
        self.prev_x, self.prev_t = x, t
        return out

    def posteriors(self, row: np.ndarray) -> np.ndarray:
        """The newest frame's input row -> its log-probabilities (blank, letters, space)."""
        if self.step is not None:
            logp, self.state = self.step.run(None, {"frame": row[None], "state": self.state})
            return logp[0]
        self.frames = np.roll(self.frames, -1, 0)
        self.frames[-1] = row
        if self.seen < self.window:
            self.seen += 1
            self.valid[0, -self.seen] = 1.0
        feeds = {self.manifest.input_name: self.frames[None]}
        if self.mask_name:
            feeds[self.mask_name] = self.valid
        return self.session.run(None, feeds)[0][0]

    def update(self, x: np.ndarray | None, t: float) -> tuple[str | None, float, str | None]:
        return self.decode(self.posteriors(self.row(x, t)), x is not None)

    def shared(self) -> "SequenceReader":
        """Another stream's reader: the same loaded model and sessions, its own stream state and text (several
        cameras, :func:`step_streams`)."""
        import copy

        other = copy.copy(self)
        other.frames, other.valid = np.zeros_like(self.frames), np.zeros_like(self.valid)
        other.state = None if self.state is None else np.zeros_like(self.state)
        other.reset()
        return other

    def decode(self, logp: np.ndarray, hand: bool) -> tuple[str | None, float, str | None]:
        """The newest frame's log-probabilities (and whether it had a hand) -> (letter, confidence, typed)."""
        k = int(np.argmax(logp))
        conf = float(np.exp(logp[k]))
        self.missing = 0 if hand else self.missing + 1
        dropout = 0 < self.missing <= self.DROPOUT_FRAMES
        # --min-confidence: an unsure reading types nothing and is not yet the last reading, so the same class read
        # surely a frame later is typed then, once
        unsure = k != self.blank and conf < self.min_confidence
        typed = None
        if k != self.blank and k != self.prev_k and not unsure:
            if k == self.space:
                if self.text and not self.text.endswith(" "):
                    typed = " "
                    self._end_word()
            else:
                typed = self.classes[k]
            if typed:
                self.text += typed
        if typed != " " and self.lexicon is not None:
            self.word_logp.append(logp)
            del self.word_logp[:-self.MAX_WORD_FRAMES]
        if not (dropout and k == self.blank) and not unsure:
            self.prev_k = k
        letter = None if k in (self.blank, self.space) else self.classes[k]
        return letter, conf, typed

    def _end_word(self) -> None:
        """A word ends: with a lexicon, its frames choose between the word as typed and the list words near it."""
        if self.lexicon is not None and self.whole_word and self.word_start < len(self.text):
            word = self.text[self.word_start:]
            fixed = self.lexicon.correct(word, np.asarray(self.word_logp), self.classes, self.blank)
            self.text = self.text[:self.word_start] + fixed
        self.word_logp, self.whole_word = [], True
        self.word_start = len(self.text) + 1  # after the space about to be typed

    def finish(self) -> None:
        """The input ended: the last word is done (and corrected, with a lexicon)."""
        if self.text and not self.text.endswith(" "):
            self._end_word()
            self.word_start = len(self.text)

    def clear(self) -> None:
        self.text, self.word_start, self.word_logp, self.whole_word = "", 0, [], True

    def reset(self) -> None:
        """A new stream: no frames seen, nothing typed (the model stays loaded)."""
        self.frames[:] = 0
        self.valid[:] = 0
        self.seen = 0
        if self.state is not None:
            self.state[:] = 0
        self.prev_k, self.prev_x, self.prev_t, self.missing = self.blank, None, None, 0
        self.clear()

    def backspace(self) -> None:
        """A letter deleted: the word's frames still hold it, so the word is not rescored (unless it is gone)."""
        self.text = self.text[:-1]
        self.resume(self.text)

    def resume(self, text: str) -> None:
        """Go on from ``text`` (typed by another reader, or after a deletion): a word it ends inside has no frames here
        for its first letters, so it is not rescored; the next word is."""
        self.text = text
        self.word_start, self.word_logp = text.rfind(" ") + 1, []
        self.whole_word = self.word_start == len(text)


def step_streams(readers: list[SequenceReader], features: list, times: list[float]) -> list[tuple]:
    """One frame of each stream (features or None, time) through readers made by :meth:`SequenceReader.shared`:
    one run of the streaming step for all of them (a batch of streams), each decoded on its own. Readers without a
    step (an older model folder) read one by one with their window."""
    if not readers or readers[0].step is None:
        return [r.update(x, t) for r, x, t in zip(readers, features, times)]
    rows = np.stack([r.row(x, t) for r, x, t in zip(readers, features, times)])
    logp, state = readers[0].step.run(None, {"frame": rows, "state": np.concatenate([r.state for r in readers])})
    out = []
    for i, (r, x) in enumerate(zip(readers, features)):
        r.state = state[i:i + 1]
        out.append(r.decode(logp[i], x is not None))
    return out
