"""The browser demo (``fingerspell demo``): the live path of ``fingerspell live`` behind a Gradio page.

Two tabs:

- **Live**: the webcam streams frames to the server (``gr.Image(streaming=True)``); each frame goes
  through the same :class:`~realtime.pipeline.Recognizer` as ``fingerspell live`` and comes back
  annotated, with the spelled text and the milliseconds per stage.
- **Upload**: an image (the letter, its top readings) or a video (processed frame by frame with a
  progress bar: the transcript and a per-frame confidence chart).

Latest frame wins. Gradio keeps one pending frame per stream and replaces it when a newer one
arrives, so frames never queue up behind a slow one; on top of that each tab's
:class:`LiveSession` holds a lock, and a frame that arrives while another is being processed is
dropped, not queued. The page numbers its frames and stamps them with the capture time
(:data:`ROUND_TRIP_JS`); the server echoes the stamp back, so the page measures the real round trip
(capture -> server -> annotated frame on screen) and the server counts the frames that newer ones
replaced.

Each browser tab has its own recognizer and speller (``gr.State``); at most ``max_streams`` tabs
stream at once, the others wait in Gradio's queue and see their place in it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import statistics
import threading
import time
import warnings
import weakref
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from realtime.manifest import NO_LETTER, available_models, weights_dir
from realtime.hands.hand import WHICH_HAND as HANDS
from realtime.pipeline import RECOGNIZER_STAGES, StageTimer
from realtime.speller import SpellerConfig

log = logging.getLogger("fingerspell.demo")

STAGE_ORDER = ("prepare", *RECOGNIZER_STAGES, "overlay")  # the browser frame decoded instead of captured
MAX_IMAGE_PIXELS = 50_000_000  # refused above this (a 50-megapixel photo is already far more than a hand needs)
MAX_SIDE = 1920  # larger images and video frames are downscaled to this longer side before recognition
MAX_STREAM_SIDE = 1280  # live frames are downscaled to this: MediaPipe looks at ~256 px anyway
MAX_VIDEO_FRAMES = 3600  # two minutes at 30 fps; longer videos are cut with a warning
MIN_SPELL_FPS = 5.0  # below this many processed frames a second the page warns that spelling is unreliable
IDLE_RELEASE_S = 300.0  # a tab that sent no frame for this long gives its recognizer back (its text stays)
RESTART_GAP_S = 2.0  # a tab that sent no frame for this long stopped its stream: the next frame starts a new one
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Numbers each webcam frame, stamps it with its capture time and the last round trip, and measures the round
# trip when the server's echo of a stamp comes back with the annotated frame. Gradio's streaming webcam encodes
# each frame with canvas.toDataURL("image/jpeg"), so that call marks the moment of capture.
ROUND_TRIP_JS = """
<script>
(() => {
  let n = 0, lastEcho = "", rtt = "";
  const box = (id) => document.querySelector(`#${id} textarea, #${id} input`);
  const orig = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (type, ...rest) {
    const stamp = box("fs-stamp");
    if (type === "image/jpeg" && stamp) {
      n += 1;
      stamp.value = `${n}:${Date.now()}:${rtt}`;
      stamp.dispatchEvent(new Event("input", {bubbles: true}));
    }
    return orig.call(this, type, ...rest);
  };
  // Stop turns Gradio's streaming webcam off: Record again would need "Click to Access Webcam" first. Once a
  // camera of this page has streamed, it is switched back on by itself, so Stop then Record is one click each.
  const used = new Set();
  document.addEventListener("click", (e) => {
    const cam = e.target.closest?.("#fs-cam, #fs-cal-cam");
    if (cam && e.target.closest("button[aria-label='capture photo']")) used.add(cam.id);
  }, true);
  setInterval(() => {
    for (const id of used) {
      const off = [...document.querySelectorAll(`#${id} button`)].find(
        (b) => (b.innerText || "").includes("Click to Access Webcam"));
      if (off && off.offsetParent !== null) off.click();
    }
  }, 300);
  setInterval(() => {
    const echo = box("fs-echo");
    if (!echo || echo.value === lastEcho) return;
    lastEcho = echo.value;
    const sent = parseFloat(echo.value.split(":")[1]);
    if (sent > 0) rtt = String(Date.now() - sent);
  }, 10);
})();
</script>
"""

CSS = """
.fs-hidden {display: none !important}
#fs-text textarea {font-size: 1.6em; font-family: monospace}
.fs-letters {display: flex; flex-wrap: wrap; gap: 4px}
.fs-letters span {display: inline-block; width: 2.2em; text-align: center; padding: 4px 0; border-radius: 4px;
                  font: bold 1.1em monospace; background: #2563eb; color: white}
.fs-letters span.fs-missing {background: #ccc; color: #666; text-decoration: line-through}
.fs-photos {display: flex; flex-wrap: wrap; gap: 6px}
.fs-photos figure {margin: 0; text-align: center; font: bold 1em monospace}
.fs-photos img {height: 88px; border-radius: 4px}
.fs-cal {font-size: 1.1em}
.fs-frame {display: block; width: 100%; border-radius: 6px}
.fs-frame-empty {aspect-ratio: 4 / 3; display: flex; align-items: center; justify-content: center; color: #888;
                 background: #f3f3f3}
.fs-cal progress {width: 60%; height: 1em}
.fs-cal-photo {float: right; margin: 0 0 0 12px; text-align: center; font: bold 1.2em monospace}
.fs-cal-photo img {height: 120px; border-radius: 4px}
"""


@dataclass(frozen=True)
class Settings:
    """What the page's controls choose, and the server's hand pipeline (``fingerspell demo --hands``, fixed per app);
    a new model, hand or hand pipeline means a new recognizer, the rest is changed in place."""

    model: str
    hand: str = "any"
    hold_s: float = 0.5
    min_confidence: float = 0.6
    hands: str = "mediapipe"  # mediapipe, or onnx (the same models on ONNX Runtime)

    def speller(self) -> SpellerConfig:
        return SpellerConfig(hold_s=self.hold_s, min_confidence=self.min_confidence)


# -- models ----------------------------------------------------------------------------------------------------


FUSED_SEP = "+"  # "KEYPOINT_MODEL+IMAGE_MODEL": the selector's fused readers (--classifier fused)


def split_model(model: str) -> tuple[str, str | None]:
    """(the keypoint or letter model, the image model fused with it or None) of a selector value."""
    kp, _, image = model.partition(FUSED_SEP)
    return kp, image or None


@cache
def manifest(model: str) -> dict:
    """A shipped model's manifest (labels, kind, training data), read once; a fused reader's is its keypoint
    model's (its labels, and what a calibration profile must match)."""
    return json.loads((weights_dir() / split_model(model)[0] / "manifest.json").read_text())


@cache
def fused_models() -> tuple[str, ...]:
    """A fused reader for each shipped image classifier that has the ``embedding`` output (a profile recorded with
    it keeps the hand crops) and the keypoint model that reads the same letters; found once (every frame asks)."""
    out = []
    for image in available_models():
        m = manifest(image)
        if m.get("kind") != "image-classifier" or "embedding" not in m:
            continue
        out += [f"{kp}{FUSED_SEP}{image}" for kp in available_models()
                if manifest(kp).get("kind", "keypoint-classifier") == "keypoint-classifier"
                and sorted(set(manifest(kp)["labels"]) - {NO_LETTER}) == sorted(m["labels"])]
    return tuple(out)


def keypoints_for(model: str) -> str:
    """The Recognizer backend a model needs: J2S models read image crops, the others MediaPipe keypoints."""
    return "j2s" if manifest(model).get("kind") == "j2s" else "mediapipe"


def demo_models() -> list[str]:
    """The letter models, the fused readers and the sequence models (``--reader sequence``): what the selector
    offers."""
    return available_models(also=("sequence-reader",)) + list(fused_models())


def is_sequence_model(model: str) -> bool:
    return manifest(model).get("kind") == "sequence-reader"


def model_choices() -> list[tuple[str, str]]:
    """(shown name, model) for the selector: every shipped model, with what it reads."""
    out = []
    for name in demo_models():
        m = manifest(name)
        if split_model(name)[1]:
            out.append((f"{name} ({len(set(m['labels']) - {NO_LETTER})} letters, keypoints and the hand crop, fused; "
                        "a profile calibrated here keeps the crops)", name))
            continue
        what = {"j2s": "J2S: image crop", "image-classifier": "image classifier on the hand crop",
                "sequence-reader": "continuous: a sequence model, J and Z, no hold; experimental"}.get(
            m.get("kind"), "MediaPipe keypoints")
        out.append((f"{name} ({len(m['labels'])} letters, {what})", name))
    return out


def check_settings(model: str, hand: str, hold_s: float, min_confidence: float, hands: str = "mediapipe") -> Settings:
    """Validated settings; a request from outside the page (the API) gets a message, not a stack trace. ``hands``
    comes from the app (build_app), not from the page."""
    import gradio as gr

    from realtime.hands import HAND_PIPELINES

    if hands not in HAND_PIPELINES:
        raise ValueError(f"hands must be one of {tuple(HAND_PIPELINES)}, got {hands!r}")
    if model not in demo_models():
        raise gr.Error(f"No model {model!r}. Shipped: {', '.join(demo_models())}.")
    if hand not in HANDS:
        raise gr.Error(f"Hand must be one of {', '.join(HANDS)}, not {hand!r}.")
    if keypoints_for(model) == "j2s":
        hand = "any"  # the palm detector cannot tell left from right
    try:
        hold_s, min_confidence = float(hold_s), float(min_confidence)
    except (TypeError, ValueError):
        raise gr.Error("Hold time and confidence threshold must be numbers.") from None
    if not (0.0 < hold_s <= 5.0 and 0.0 <= min_confidence <= 1.0):
        raise gr.Error("Hold time must be in (0, 5] seconds and the confidence threshold in [0, 1].")
    return Settings(model, hand, hold_s, min_confidence, hands)


def make_recognizer(settings: Settings, static: bool = False):
    """The pipeline for these settings; ``static`` uses the photo detectors (no tracking between frames)."""
    import gradio as gr

    from realtime.manifest import ModelError
    from realtime.pipeline import Recognizer

    if is_sequence_model(settings.model):
        if static:
            raise gr.Error(f"{settings.model} reads motion between frames, not single photos: use it in the Live "
                           "tab or on a video.")
        try:
            return Recognizer.build(reader="sequence", sequence_model=settings.model, hand=settings.hand,
                                    speller=settings.speller(), hands=settings.hands)
        except (ModelError, ValueError) as e:
            raise gr.Error(f"Cannot load model {settings.model}: {e}") from None
    try:
        keypoint_model, image_model = split_model(settings.model)
        if image_model:  # the keypoint model and the image classifier, fused (--classifier fused)
            return Recognizer.build(model=keypoint_model, hand=settings.hand, speller=settings.speller(), static=static,
                                    hands=settings.hands, classifier_kind="fused", image_model=image_model)
        if manifest(settings.model).get("kind") == "image-classifier":  # a hand crop read by an image classifier
            return Recognizer.build(hand=settings.hand, speller=settings.speller(), static=static, hands=settings.hands,
                              classifier_kind="image", image_model=settings.model)
        return Recognizer.build(model=settings.model, hand=settings.hand, keypoints=keypoints_for(settings.model),
                          speller=settings.speller(), static=static, hands=settings.hands)
    except (ModelError, ValueError) as e:
        raise gr.Error(f"Cannot load model {settings.model}: {e}") from None


# -- live stream ------------------------------------------------------------------------------------------------


_SESSIONS: weakref.WeakSet = weakref.WeakSet()  # every tab's LiveSession, for the idle sweep


class LiveSession:
    """One browser tab's live state: its recognizer and speller, the lock that makes the newest frame win, and
    the counters shown under the video. Gradio keeps one per tab (``gr.State``), so two people never share text."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.lock = threading.Lock()
        self.rec = None
        self.settings: Settings | None = None
        self.processed = 0
        self.dropped_busy = 0  # arrived while another frame of this tab was being processed
        self.dropped_stale = 0  # sent by the page but replaced by a newer frame before the server took it
        self._last_id: int | None = None
        self.round_trip_ms: deque[float] = deque(maxlen=30)
        self.server_ms: deque[float] = deque(maxlen=30)
        self.times: deque[float] = deque(maxlen=30)
        self.stage_ms: dict[str, float] = {}
        self._stream_start: float | None = None
        self._last_frame: float | None = None
        self.profile = None  # this tab's calibration profile (realtime.calibration.Profile), used by the live tab
        self.profile_note = ""  # why a profile was dropped, shown once in the live tab
        self.calibration = None  # the calibration being recorded (realtime.calibrate.CalibrationSession)
        self._calibration_key: tuple | None = None
        self._profile_dir: str | None = None  # where this tab's profile file is offered for download
        self._rtt_skip = 0
        self._kept_text = ""  # the text while the recognizer is released (an idle tab, release_if_idle)
        self.restarted = False  # the recognizer was released while idle and rebuilt: the page says the text was kept
        _SESSIONS.add(self)

    def configure(self, settings: Settings):
        """The recognizer for these settings: rebuilt for another model, hand or hand pipeline (keeping the text
        and a profile that fits the new model), else tuned."""
        if self.rec is None or self.settings is None or (settings.model, settings.hand, settings.hands) != (
                self.settings.model, self.settings.hand, self.settings.hands):
            text = self.text
            self._close_rec()
            self.rec = make_recognizer(settings)
            self.rec.speller.text = text
            if self.profile is not None:
                self._apply_profile()
        elif settings != self.settings:
            self.rec.speller.config = settings.speller()
        self.settings = settings
        return self.rec

    # -- personal calibration (the Calibrate tab) --

    def _apply_profile(self) -> None:
        """Put this tab's profile into the recognizer's classifier stage (or take it out). A profile that does not
        fit the recognizer's model is dropped, and the live tab says why."""
        from realtime.calibration import CalibratedClassifier, ProfileError

        if self.rec is None or (self.profile is not None and self.settings is not None
                                and split_model(self.settings.model)[0] != self.profile.model):
            return  # applied when the recognizer is rebuilt for the model now selected (configure)
        if self.rec.sequence is not None:  # the sequence reader has no classifier stage for a profile to adapt
            if self.profile is not None:
                self.profile_note = "The profile is not used: profiles adapt the keypoint classifiers."
            return
        clf = self.rec.classifier
        base = clf.base if isinstance(clf, CalibratedClassifier) else clf
        try:
            self.rec.classifier = CalibratedClassifier(base, self.profile) if self.profile is not None else base
        except ProfileError as e:
            self.profile_note = f"The profile was dropped: {e}."
            self.profile, self.rec.classifier = None, base
        self.rec.smoother.reset()

    def use_profile(self, profile) -> None:
        """Use ``profile`` (or none) in the live tab from the next frame on. Check it first (profile_problem): one
        that does not fit the recognizer's model is dropped, with a note."""
        with self.lock:
            self.profile, self.profile_note = profile, ""
            self._apply_profile()

    def calibration_for(self, model: str, hand: str, per_letter: int, letters: list[str]):
        """The calibration being recorded for these settings; a new one when the model, hand, samples per letter
        or letters change."""
        from realtime.calibrate import CalibrationSession

        key = (model, hand, per_letter, tuple(letters))
        if self.calibration is None or key != self._calibration_key:
            self.calibration = CalibrationSession(list(manifest(model)["labels"]), per_letter)
            self.calibration.letters = list(letters)  # the letters asked for, in the model's order
            self._calibration_key = key
        return self.calibration

    def finish_calibration(self) -> str | None:
        """A profile from what was recorded: used in the live tab from now on, and written to a file for download
        (its path is returned). None when nothing was recorded."""
        if self.calibration is None or self.rec is None or not any(self.calibration.samples.values()):
            return None
        from realtime.calibration import CalibratedClassifier

        clf = self.rec.classifier
        base = clf.base if isinstance(clf, CalibratedClassifier) else clf
        profile = self.calibration.to_profile(base, {"source": "browser demo"})
        self.profile, self.profile_note = profile, ""
        self._apply_profile()
        if self._profile_dir is None:
            import tempfile

            self._profile_dir = tempfile.mkdtemp(prefix="fingerspell-profile-",  # in the server's folder
                                                 dir=_FILES.path if _FILES is not None else None)
        fused = f"-with-{profile.image_model}" if profile.crops is not None else ""
        return str(profile.save(Path(self._profile_dir) / f"fingerspell-profile-{profile.model}{fused}.json"))

    def note_stamp(self, stamp: str | None) -> None:
        """Read the page's 'frame id:capture ms:last round trip ms' stamp: count skipped ids, keep the round trip."""
        try:
            parts = (stamp or "").split(":")
            frame_id = int(parts[0])
            rtt = float(parts[2]) if len(parts) > 2 and parts[2] else None
        except (ValueError, IndexError):
            return  # no stamp (an API client, or a page without the script): no round trip, no stale count
        if self._last_id is not None and frame_id > self._last_id:
            self.dropped_stale += frame_id - self._last_id - 1
        self._last_id = frame_id
        if self._rtt_skip > 0:  # a new stream: the first echo waited in the queue, the one before is stale
            self._rtt_skip -= 1
        elif rtt is not None and 0 <= rtt < 60_000:
            self.round_trip_ms.append(rtt)

    def over_time(self, now: float, time_limit: float | None) -> bool:
        """Whether this tab's stream has run past ``time_limit``. Gradio's own stream time limit does not stop a
        webcam stream (one ran 45 s of 20), so it is counted here. A pause of ``RESTART_GAP_S`` (Stop, then
        Record) starts a new stream; a stream that goes on sending stays over its time."""
        if self._last_frame is None or now - self._last_frame > RESTART_GAP_S:
            self._stream_start = now
            self._rtt_skip = 2  # the round trips of the first two stamps (see note_stamp)
            self._last_id = None  # the frames the page numbered before this stream are not its dropped frames
            self.times.clear()  # the frame rate of this stream only
        self._last_frame = now
        return time_limit is not None and now - self._stream_start > time_limit

    def wait_frame(self) -> None:
        """A frame of a stream that waits for room (StreamCapacity): not processed, and neither a dropped frame nor
        a round trip (the first frames once it runs carry the wait: note_stamp skips them)."""
        self._last_id = None
        self._rtt_skip = 2

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    def clear(self) -> str:
        with self.lock:
            if self.rec:
                self.rec.speller.clear()
            self._kept_text = ""
            return self.text

    def backspace(self) -> str:
        with self.lock:
            if self.rec:
                self.rec.speller.backspace()
            self._kept_text = self._kept_text[:-1]
            return self.text

    @property
    def text(self) -> str:
        return self.rec.speller.text if self.rec else self._kept_text

    def _close_rec(self) -> None:
        if self.rec is not None:
            self._kept_text = self.rec.speller.text
            self.rec.close()
            self.rec = None

    def release_if_idle(self, now: float, idle_s: float) -> bool:
        """Free the recognizer (its MediaPipe graph: tens of MB) of a tab that sent no frame for ``idle_s``; the
        text, settings and profile stay, and the next frame rebuilds it. Returns True if it was freed."""
        if self.rec is None or self._last_frame is None or now - self._last_frame < idle_s:
            return False
        if not self.lock.acquire(blocking=False):
            return False
        try:
            self._close_rec()
            self.restarted = True
            return True
        finally:
            self.lock.release()

    def close(self) -> None:
        """Free everything this tab holds (the tab was closed): its recognizer, its calibration and its profile
        file. Waits for a frame being processed."""
        got = self.lock.acquire(timeout=10)
        try:
            self._close_rec()
            self.calibration = self.profile = None
            if self._profile_dir is not None:
                import shutil

                shutil.rmtree(self._profile_dir, ignore_errors=True)
                self._profile_dir = None
        finally:
            if got:
                self.lock.release()


def latency_markdown(s: LiveSession) -> str:
    """The numbers under the live video: round trip, server time per frame, per-stage milliseconds, drops."""
    rtt = (f"**round trip {statistics.median(s.round_trip_ms):.0f} ms** (capture → server → annotated frame "
           f"on screen, median of the last {len(s.round_trip_ms)})" if s.round_trip_ms else
           "**round trip**: measuring…")
    server = statistics.median(s.server_ms) if s.server_ms else 0.0
    stages = STAGE_ORDER  # every column always, "–" for a stage that did not run (no hand): the table never jumps
    head = "| " + " | ".join(stages) + " |\n|" + "---|" * len(stages) + "\n"
    row = "| " + " | ".join(f"{s.stage_ms[k]:.1f}" if k in s.stage_ms else "–" for k in stages) + " |"
    notes = []
    if s.restarted:
        notes.append("The recognizer was freed during the pause and restarted: your text is kept.")
    if len(s.times) >= 10 and s.fps < MIN_SPELL_FPS:
        notes.append(f"⚠ **{s.fps:.1f} frames/s is too few to spell reliably** (at least {MIN_SPELL_FPS:.0f} are "
                     "needed: letters may be missed). The server or your connection is busy: close other tabs that "
                     "stream, or try again later.")
    head_notes = "".join(f"{n}\n\n" for n in notes)
    return (f"{head_notes}{rtt}  \n**server** {server:.1f} ms per frame (recognition and overlay) · {s.fps:.1f} frames/s · "
            f"{s.processed} processed · "
            f"{s.dropped_stale + s.dropped_busy} stale frames dropped\n\nmilliseconds per stage, last frame:\n\n"
            + head + row)


def frame_html(rgb, quality: int = 80):
    """An annotated frame (RGB) as an <img> with the JPEG inline: nothing is written to disk (a gr.Image output
    stores every frame as a file in Gradio's cache, thousands in a few minutes). Anything else (gr.skip()) passes."""
    import base64

    import cv2

    if rgb is None:
        return '<div class="fs-frame fs-frame-empty">the recognised frame appears here</div>'
    if not isinstance(rgb, np.ndarray):
        return rgb
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return rgb
    return f'<img class="fs-frame" alt="recognised frame" src="data:image/jpeg;base64,{base64.b64encode(buf).decode()}">'


def page_frame_to_bgr(frame: np.ndarray) -> np.ndarray:
    """A webcam frame as the page sends it (RGB, a selfie view) -> BGR as ``fingerspell live`` sees the hand,
    downscaled to MAX_STREAM_SIDE."""
    import cv2

    h, w = frame.shape[:2]
    if max(h, w) > MAX_STREAM_SIDE:
        f = MAX_STREAM_SIDE / max(h, w)
        frame = cv2.resize(frame, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(cv2.flip(frame, 1), cv2.COLOR_RGB2BGR)


OVERRUN_S = 10.0  # a stream past its time limit is told to stop: expected to end within this
RECENT_STREAMS = 20  # the wait estimate uses the durations of the last this many streams


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _about(seconds: float) -> str:
    if seconds < 5:
        return "a few seconds"
    if seconds < 90:
        return f"about {5 * round(seconds / 5):.0f} seconds"
    return f"about {seconds / 60:.0f} minutes"


def stream_remaining(elapsed: float, recent: list[float], time_limit: float | None) -> float:
    """Seconds a stream that has run ``elapsed`` s is expected to go on: the median of the recent streams that ran
    longer than it has, else up to the time limit; past the limit (it is told to stop) OVERRUN_S."""
    longer = [d for d in recent if d > elapsed]
    if longer:
        return statistics.median(longer) - elapsed
    if time_limit is not None and elapsed < time_limit:
        return time_limit - elapsed
    return OVERRUN_S


def estimate_wait(ahead: int, running_elapsed: list[float], slots: int, recent: list[float],
                  time_limit: float | None) -> float:
    """Seconds until a stream with ``ahead`` streams before it in the queue starts: each of the ``slots`` places is
    free when its running stream ends (stream_remaining); each stream ahead takes the first free place and keeps it
    for a typical stream (the median of ``recent``, else the time limit)."""
    import heapq

    typical = statistics.median(recent) if recent else (time_limit if time_limit is not None else 600.0)
    if time_limit is not None:
        typical = min(typical, time_limit + OVERRUN_S)
    free = [stream_remaining(e, recent, time_limit) for e in running_elapsed]
    free += [0.0] * max(0, slots - len(free))
    heapq.heapify(free)
    if not free:
        return 0.0
    for _ in range(ahead):
        heapq.heappush(free, heapq.heappop(free) + typical)
    return max(0.0, heapq.heappop(free))


class StreamCapacity:
    """Admits webcam streams by measured load. A running stream costs (its median server milliseconds per frame) x
    (the frames per second the page sends) of a CPU core; a new stream starts only while the running ones leave
    room for one more within ``cores`` x ``headroom``. On 2 cores four streams used to run at 1-2.5 frames/s each,
    too few to spell: now the later ones wait, in order, and see their place and a wait estimate, until one ends.
    The milliseconds are measured under the machine's real load, other programs included.

    It also measures how long streams last (first to last frame, waits and overruns included: as long as the stream
    holds its place in Gradio's queue), for the wait estimates here and in Gradio's queue (patch_queue_estimates)."""

    def __init__(self, fps: float = 10.0, cores: int | None = None, headroom: float = 0.8,
                 default_ms: float = 60.0, time_limit: float | None = None):
        self.fps, self.cores = fps, cores or os.cpu_count() or 1
        self.budget, self.default_ms = self.cores * headroom, default_ms
        self.time_limit = time_limit
        self.lock = threading.Lock()
        self.running: dict[int, LiveSession] = {}
        self.waiting: dict[int, LiveSession] = {}  # in the order they came
        self.recent: deque[float] = deque(maxlen=RECENT_STREAMS)  # seconds, of the streams that ended
        self._streams: dict[int, list] = {}  # id -> [session, its stream's start, its last frame]

    def ms(self, session: LiveSession) -> float:
        return statistics.median(session.server_ms) if session.server_ms else self.default_ms

    def load(self, session: LiveSession) -> float:
        """Cores a stream uses: its seconds per frame x frames per second."""
        return self.ms(session) / 1000 * self.fps

    def track(self, session: LiveSession) -> None:
        """Note a frame of ``session``'s stream (after LiveSession.over_time): the durations of the streams that
        ended go into ``recent``."""
        with self.lock:
            entry = self._streams.get(id(session))
            if entry is not None and entry[0] is session and entry[1] != session._stream_start:
                self.recent.append(entry[2] - entry[1])  # Stop, then Record: the previous stream ended
                entry = None
            if entry is None or entry[0] is not session:
                self._streams[id(session)] = [session, session._stream_start, session._last_frame]
            else:
                entry[2] = session._last_frame
            self._expire(session.clock())

    def _expire(self, now: float) -> None:
        for key, (s, start, last) in list(self._streams.items()):
            if now - last > RESTART_GAP_S:
                self.recent.append(last - start)
                del self._streams[key]

    def release(self, session: LiveSession) -> None:
        """``session``'s stream no longer runs (past its time limit): its room goes to the next one."""
        with self.lock:
            self.running.pop(id(session), None)
            self.waiting.pop(id(session), None)

    def wait_s(self, ahead: int, running: list[LiveSession], now: float) -> float:
        elapsed = [now - s._stream_start for s in running if s._stream_start is not None]
        return estimate_wait(ahead, elapsed, len(running), list(self.recent), self.time_limit)

    def admit(self, session: LiveSession) -> str | None:
        """None if ``session``'s stream may run now, else the message that says why it waits: its place in line
        and how long it should wait. Streams start in the order they came."""
        with self.lock:
            def gone(s):  # no frame for RESTART_GAP_S: the stream stopped
                return s._last_frame is None or s.clock() - s._last_frame > RESTART_GAP_S
            for key, s in list(self.running.items()):
                if s is not session and (gone(s) or s.rec is None):
                    del self.running[key]
            for key, s in list(self.waiting.items()):
                if s is not session and gone(s):
                    del self.waiting[key]
            if id(session) in self.running:
                return None
            used = sum(self.load(s) for s in self.running.values())
            new = (statistics.median(self.ms(s) for s in self.running.values()) if self.running else
                   self.default_ms) / 1000 * self.fps
            ahead = [s for key, s in self.waiting.items() if key != id(session)]
            if id(session) in self.waiting:
                ahead = ahead[:list(self.waiting).index(id(session))]
            if not ((self.running and used + new > self.budget) or ahead):
                self.waiting.pop(id(session), None)
                self.running[id(session)] = session
                return None
            self.waiting.setdefault(id(session), session)
            n, place = len(self.running), len(ahead) + 1
            wait = self.wait_s(len(ahead), list(self.running.values()), session.clock())
            return (f"**The server is at capacity:** {n} stream{'s' if n > 1 else ''} use about {used:.1f} of its "
                    f"{self.cores} CPU cores at {self.fps:.0f} frames/s, and one more would slow every stream "
                    f"below what spelling needs. **You are {_ordinal(place)} in line; expected wait "
                    f"{_about(wait)}** ({self._basis()}). Yours starts by itself: keep the camera on.")

    def _basis(self) -> str:
        if self.recent:
            return f"streams here lasted {_about(statistics.median(self.recent))} lately"
        return (f"a stream runs at most {_duration(self.time_limit)}" if self.time_limit is not None else
                "no stream has ended yet")


def _take_frame(frame, session: LiveSession | None):
    """(the tab's session, None) with its lock held when this frame is to be processed; else (session, the outputs
    that skip it): not an image, or the tab's previous frame still running (dropped, never queued)."""
    import gradio as gr

    session = session if isinstance(session, LiveSession) else LiveSession()
    skip = (gr.skip(), gr.skip(), gr.skip(), gr.skip(), session)
    if frame is None or not isinstance(frame, np.ndarray) or frame.ndim != 3:
        return session, skip
    if not session.lock.acquire(blocking=False):
        session.dropped_busy += 1
        return session, skip
    return session, None


def _stream_gate(session: LiveSession, t: float, time_limit: float | None, capacity) -> tuple[str | None, str]:
    """May this stream's frame be processed now? (None, "") yes; ("limit", "") no, it is past its time limit (its
    room is given back); ("wait", why) no, it waits for room (a waiting stream costs almost nothing)."""
    over = session.over_time(t, time_limit)
    if capacity is not None:
        capacity.track(session)  # how long streams last: the queue's wait estimate
    if over:
        if capacity is not None:
            capacity.release(session)
        return "limit", ""
    busy = capacity.admit(session) if capacity is not None else None
    if busy:
        session.wait_frame()
        return "wait", busy
    return None, ""


def live_frame(frame, session: LiveSession | None, model: str, hand: str, hold_s: float, min_confidence: float,
               stamp: str | None = None, hands: str = "mediapipe", time_limit: float | None = None,
               capacity: StreamCapacity | None = None):
    """One webcam frame (RGB, mirrored by the page) -> (annotated frame, text, latency, stamp echo, session).
    ``hands``: the app's hand pipeline; ``time_limit``: seconds a stream may run (build_app binds both).

    A frame that arrives while this tab's previous one is still being processed is dropped (every output
    skipped), so a slow frame never builds a queue.
    """
    import cv2
    import gradio as gr

    from realtime.overlay import draw

    session, skip = _take_frame(frame, session)
    if skip:
        return skip
    try:
        t_in = session.clock()
        gate, busy = _stream_gate(session, t_in, time_limit, capacity)
        if gate == "limit":  # frames are no longer processed; the text stays
            return (gr.skip(), gr.skip(), f"**This stream reached its {_duration(time_limit)} limit.** Press Stop, "
                    "then Record to go on: the text is kept.", gr.skip(), session)
        if gate == "wait":
            return gr.skip(), gr.skip(), busy, gr.skip(), session
        session.note_stamp(stamp)
        rec = session.configure(check_settings(model, hand, hold_s, min_confidence, hands))
        timer = StageTimer()
        with timer("prepare"):
            bgr = page_frame_to_bgr(frame)
        result = rec.process(bgr, t_in, timer)
        session.times.append(t_in)
        with timer("overlay"):
            shown = draw(bgr, result, session.fps, mirror=True, show_timing=False, hint=None)
            shown = cv2.cvtColor(shown, cv2.COLOR_BGR2RGB)
        session.processed += 1
        session.stage_ms = dict(timer.ms)
        session.server_ms.append((session.clock() - t_in) * 1000)
        latency = latency_markdown(session)
        session.restarted = False
        return shown, result.text, latency, stamp or "", session
    finally:
        session.lock.release()


def clear_text(session: LiveSession | None) -> str:
    return session.clear() if isinstance(session, LiveSession) else ""


def backspace_text(session: LiveSession | None) -> str:
    return session.backspace() if isinstance(session, LiveSession) else ""


def close_session(session) -> None:
    """Gradio calls this when a tab's state is deleted (the tab closed: free_tab): free its recognizer and files."""
    if isinstance(session, LiveSession):
        session.close()


def trim_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise, so the server's RSS would stay at its
    peak after tabs close)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): the allocator decides
        pass


def free_tab(blocks, session_hash: str | None) -> bool:
    """A browser tab closed (Gradio's unload event, which fires when the page's heartbeat connection drops): delete
    its state now, which closes its recognizer (close_session), rather than after the hour Gradio keeps a closed
    tab's state. Returns True if the tab had state."""
    holder = getattr(blocks, "state_holder", None)
    if holder is None or not session_hash or session_hash not in holder:
        return False
    holder.delete_state(session_hash)  # calls each gr.State's delete_callback
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)
    trim_memory()
    log.info("tab %s closed: its recognizer is freed; %d tabs hold one", session_hash[:8],
             sum(1 for s in list(_SESSIONS) if s.rec is not None))
    return True


def release_idle_sessions(idle_s: float) -> int:
    """Free the recognizers of the tabs that sent no frame for ``idle_s`` (their text stays): how many."""
    freed = sum(s.release_if_idle(s.clock(), idle_s) for s in list(_SESSIONS))
    if freed:
        trim_memory()
    return freed


def _sweep(stop: threading.Event, idle_s: float, every_s: float) -> None:
    while not stop.wait(every_s):
        try:
            release_idle_sessions(idle_s)
            if _FILES is not None:
                _FILES.prune_empty()
        except Exception:  # the sweep must go on
            log.exception("idle sweep failed")


# -- the demo's files -------------------------------------------------------------------------------------------


FILES_PREFIX = "fingerspell-demo-"  # the name of every folder a demo server makes for its files
FILES_MARKER = ".fingerspell-demo"  # in that folder: {"pid": the server's process, "started": its start time}
_FILES: DemoFiles | None = None  # the running server's folder (launch), where a tab's profile files go too


def _process_started(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux /proc), which tells a PID reused by another process
    from the one that wrote a marker; None where /proc has no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (PermissionError): alive
        pass
    now = _process_started(pid)
    return not (started and now and now != started)  # the PID now belongs to a later process


def remove_stale_folders(parent: Path) -> list[Path]:
    """Remove what killed demo servers left in ``parent``: only folders named FILES_PREFIX... that hold a marker
    written by this user's demo server whose process is gone. Anything else is left alone. The folders removed."""
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for folder in entries:
        if not folder.name.startswith(FILES_PREFIX) or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            mark = json.loads((folder / FILES_MARKER).read_text())
            pid, started = int(mark["pid"]), mark.get("started")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # no marker of ours: not a folder this demo made
        if pid == os.getpid() or _alive(pid, started):
            continue
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed


class DemoFiles:
    """One folder per demo server for every file its page makes: uploads, the Upload tab's result images, profile
    files. Gradio is pointed at it (GRADIO_TEMP_DIR); it is removed whole, folders included, when the server stops,
    and a later server removes what a killed one left (a marker names the server's process). It is made inside
    ``parent``: $GRADIO_TEMP_DIR as it was, else the system's temp folder."""

    def __init__(self, parent: str | Path | None = None):
        import tempfile

        parent = Path(parent or os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        self.stale_removed = remove_stale_folders(parent)
        self.path = Path(tempfile.mkdtemp(prefix=f"{FILES_PREFIX}{os.getpid()}-", dir=parent))
        (self.path / FILES_MARKER).write_text(json.dumps({"pid": os.getpid(),
                                                          "started": _process_started(os.getpid())}))

    def prune_empty(self, min_age_s: float = 60.0) -> int:
        """Remove the empty folders Gradio's periodic cleanup leaves (it deletes files, not their folders), once
        they are ``min_age_s`` old (a folder just made is about to get its file): how many."""
        n, now = 0, time.time()
        folders = sorted((p for p in self.path.rglob("*") if p.is_dir() and not p.is_symlink()),
                         key=lambda p: len(p.parts), reverse=True)  # the deepest first
        ages = {}
        for folder in folders:  # before any is removed: removing one changes its parent's time
            try:
                ages[folder] = now - folder.stat().st_mtime
            except OSError:
                pass
        for folder in folders:
            try:
                if ages.get(folder, 0.0) >= min_age_s and not any(folder.iterdir()):
                    folder.rmdir()
                    n += 1
            except OSError:
                pass
        return n

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)


# -- personal calibration ---------------------------------------------------------------------------------------


def calibratable(model: str) -> str | None:
    """Why ``model`` cannot be calibrated, or None: profiles adapt the keypoint classifiers only."""
    if manifest(model).get("kind", "keypoint-classifier") == "keypoint-classifier":
        return None
    fit = [m for m in available_models() if manifest(m).get("kind", "keypoint-classifier") == "keypoint-classifier"]
    return (f"{model} cannot be calibrated: profiles adapt the keypoint classifiers ({', '.join(fit)}) and the fused "
            f"readers ({', '.join(fused_models())})")


def profile_problem(profile, model: str) -> str | None:
    """Why ``profile`` does not fit the shipped ``model`` (another model, other labels or weights), or None."""
    from realtime.calibration import ProfileError

    why = calibratable(model)
    if why:
        return why
    m = manifest(model)
    try:
        profile.check_model(split_model(model)[0], m["sha256"], list(m["labels"]))
    except ProfileError as e:
        return str(e)
    return None


def parse_letters(text: str | None, model: str) -> list[str]:
    """The letters to calibrate, from the page's field ('W H Y', 'why', 'A,B'): empty means every letter of
    ``model`` (its no-letter class is never asked for); returned in the model's order."""
    import gradio as gr


    labels = [label for label in manifest(model)["labels"] if label != NO_LETTER]
    if not (text or "").strip():
        return labels
    wanted = set()
    for token in re.findall(r"[^\s,;]+", text):
        wanted |= {token.upper()} if token.upper() in labels else set(token.upper())
    unknown = sorted(wanted - set(labels))
    if unknown:
        raise gr.Error(f"{model} does not read {', '.join(unknown)}; its letters are {' '.join(labels)}.")
    return [label for label in labels if label in wanted]


def _per_letter(value) -> int:
    import gradio as gr

    try:
        k = int(value)
    except (TypeError, ValueError):
        raise gr.Error("Samples per letter must be a whole number.") from None
    if not 1 <= k <= 20:
        raise gr.Error("Samples per letter must be between 1 and 20.")
    return k


@lru_cache(maxsize=8)
def reference_images(model: str) -> dict:
    """letter -> its reference photo (BGR) for the calibration frame; {} without the datasets."""
    import base64

    import cv2

    out = {}
    for letter, jpeg in reference_photos(model):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(jpeg), np.uint8), cv2.IMREAD_COLOR)
        if img is not None:
            out[letter] = img
    return out


def calibration_html(session: LiveSession | None, model: str, t: float | None = None, note: str = "") -> str:
    """The Calibrate tab's panel: the letter to sign with its count (k/K) and reference photo, the progress bar,
    what was recorded and skipped."""
    from html import escape

    cal = session.calibration if isinstance(session, LiveSession) else None
    note = f'<p class="fs-cal-note">{escape(note)}</p>' if note else ""
    if cal is None:
        return (f'<div class="fs-cal"><p>Press Record under the camera and sign each letter shown, holding it '
                f'still until it is counted.</p>{note}</div>')
    t = session.clock() if t is None else t
    n, pct = len(cal.letters), round(100 * cal.progress)
    where = f" · letter {min(cal.index + 1, n)} of {n}" if not cal.done else ""
    photo = dict(reference_photos(model)).get(cal.letter) if cal.letter else None
    photo = (f'<figure class="fs-cal-photo"><img src="data:image/jpeg;base64,{photo}" alt="{escape(cal.letter)}">'
             f'<figcaption>{escape(cal.letter)}</figcaption></figure>' if photo else "")
    done = [f"{letter} {len(cal.samples[letter])}" for letter in cal.letters if cal.samples.get(letter)]
    lists = (f"<p>recorded: {escape(', '.join(done) or 'nothing yet')}"
             + (f" · skipped: {escape(' '.join(cal.skipped))}" if cal.skipped else "") + "</p>")
    return (f'<div class="fs-cal">{photo}<p class="fs-cal-now"><b>{escape(cal.status(t))}</b>{where}</p>'
            f'<progress max="100" value="{pct}"></progress> <span class="fs-cal-pct">{pct}%</span>{lists}{note}</div>')


def profile_markdown(session: LiveSession | None) -> str:
    """The live tab's line about the profile in use."""

    p = session.profile if isinstance(session, LiveSession) else None
    note = session.profile_note if isinstance(session, LiveSession) else ""
    if p is None:
        return (f"**{note}** " if note else "") + "*Not calibrated: the model's own reading. Record or upload a " \
                                                 "profile in the Calibrate tab.*"
    letters = [label for label in p.calibrated if label != NO_LETTER]
    return (f"**calibrated for this tab: {len(letters)} letter{'s' if len(letters) != 1 else ''}** "
            f"({' '.join(letters)}) · profile for {p.model}")


def calibrate_frame(frame, session: LiveSession | None, model: str, hand: str, hold_s: float, min_confidence: float,
                    per_letter=5, letters: str = "", hands: str = "mediapipe", time_limit: float | None = None,
                    capacity: StreamCapacity | None = None):
    """One webcam frame of the Calibrate tab -> (annotated frame, panel, profile file, live tab's profile line,
    session). A still hand is a sample of the letter asked for (realtime.calibrate.CalibrationSession); when every
    letter is done the profile is made, used in the live tab and offered as a file."""
    import cv2
    import gradio as gr

    from realtime.calibrate import draw_calibration, sample_of

    session, skip = _take_frame(frame, session)
    if skip:
        return skip
    try:
        t = session.clock()
        gate, busy = _stream_gate(session, t, time_limit, capacity)
        if gate == "limit":
            return (gr.skip(), calibration_html(session, model, t, f"This stream reached its {_duration(time_limit)} "
                    "limit. Press Stop, then Record to go on: what was recorded is kept."), gr.skip(), gr.skip(),
                    session)
        if gate == "wait":
            return gr.skip(), calibration_html(session, model, t, busy.replace("**", "")), gr.skip(), gr.skip(), session
        settings = check_settings(model, hand, hold_s, min_confidence, hands)
        why = calibratable(settings.model)
        if why:
            raise gr.Error(why + ".")
        cal = session.calibration_for(settings.model, settings.hand, _per_letter(per_letter),
                                      parse_letters(letters, settings.model))
        rec = session.configure(settings)
        was_done = cal.done
        bgr = page_frame_to_bgr(frame)
        _, found, _ = rec.read(bgr)
        cal.update(t, *(sample_of(rec, found, bgr) if found is not None else (None, None)))  # fused: with the crop
        shown = cv2.cvtColor(draw_calibration(bgr, cal, t, found, mirror=True, photos=reference_images(model),
                                              hint=None),
                             cv2.COLOR_BGR2RGB)
        path = session.finish_calibration() if cal.done and not was_done else None
        session.server_ms.append((session.clock() - t) * 1000)  # this stream's load (StreamCapacity)
        note = ("All letters done: this tab's live recognition now uses the profile. Download it below."
                if cal.done and session.profile is not None else "")
        return shown, calibration_html(session, model, t, note), path or gr.skip(), profile_markdown(session), session
    finally:
        session.lock.release()


CALIBRATION_ACTIONS = ("redo", "skip", "back", "finish", "restart")


def calibration_action(action: str, session: LiveSession | None, model: str, hand: str, per_letter=5,
                       letters: str = ""):
    """The Calibrate tab's buttons (Redo letter, Skip letter, Back, Finish, Start over) -> (panel, profile file,
    live tab's profile line, session). They work before Record too (skip the letters you will not sign)."""
    import gradio as gr

    if action not in CALIBRATION_ACTIONS:
        raise ValueError(f"action must be one of {CALIBRATION_ACTIONS}, got {action!r}")
    session = session if isinstance(session, LiveSession) else LiveSession()
    why = calibratable(model) if model in demo_models() else f"No model {model!r}"
    if why:
        raise gr.Error(why + ".")
    hand = "any" if keypoints_for(model) == "j2s" or hand not in HANDS else hand
    with session.lock:
        if action == "restart":
            session.calibration = None
        cal = session.calibration_for(model, hand, _per_letter(per_letter), parse_letters(letters, model))
        t, was_done, path, note = session.clock(), cal.done, None, ""
        if action == "redo":
            cal.redo()
        elif action == "skip":
            cal.skip(t)
        elif action == "back":
            cal.back()
        if action == "finish" or (cal.done and not was_done):
            path = session.finish_calibration()
            note = ("The profile is made: this tab's live recognition now uses it. Download it below." if path else
                    "Nothing recorded yet: sign at least one letter before Finish.")
        elif action == "restart":
            note = "Started over."
    return calibration_html(session, model, t, note), path or gr.skip(), profile_markdown(session), session


def load_profile_file(path, session: LiveSession | None, model: str):
    """An uploaded profile file -> (message, live tab's profile line, session). A corrupt file or a profile for
    another model gets the reason in the page; a good one is used in the live tab."""
    from realtime.calibration import Profile, ProfileError

    session = session if isinstance(session, LiveSession) else LiveSession()
    if not path:
        return "", profile_markdown(session), session
    path = str(getattr(path, "name", path))
    name = Path(path).name
    try:
        profile = Profile.load(path)
        problem = profile_problem(profile, model)
        if problem:
            raise ProfileError(problem)
        session.use_profile(profile)
    except ProfileError as e:
        return (f"**{name} cannot be used:** {str(e).replace(path, name)}", profile_markdown(session), session)
    return (f"**{name}** is used in the live tab.", profile_markdown(session), session)


def stop_profile(session: LiveSession | None):
    """The live tab's 'Stop using the profile' -> (live tab's profile line, session)."""
    session = session if isinstance(session, LiveSession) else LiveSession()
    session.use_profile(None)
    return profile_markdown(session), session


def profile_for_model(session: LiveSession | None, model: str):
    """After the model changed: a profile that does not fit the new model is dropped, saying so -> (live tab's
    profile line, session)."""
    if not isinstance(session, LiveSession) or session.profile is None:
        return profile_markdown(session), session
    problem = profile_problem(session.profile, model)
    if problem:
        old = session.profile.model
        session.use_profile(None)
        session.profile_note = f"The profile for {old} was dropped: it does not fit {model} ({problem})."
    return profile_markdown(session), session


# -- uploads ----------------------------------------------------------------------------------------------------


def _fit(img: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    f = max_side / max(h, w)
    return cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)


def load_image(path: str | Path) -> np.ndarray | None:
    """An uploaded file as an RGB image; None when it is not an image. Refuses huge ones before decoding them."""
    import gradio as gr
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = Path(path).name
    limit = f"the demo takes images up to {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Make it smaller and try again."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            im = Image.open(path)  # reads the header only: the size is known before any pixel is decoded
    except Image.DecompressionBombError:
        raise gr.Error(f"{name} is far too large an image; {limit}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    with im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise gr.Error(f"{name} is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); {limit}")
        try:
            img = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # phone photos: their saved rotation
        except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt
            raise gr.Error(f"{name} looks like an image but cannot be decoded ({e}).") from None
    if max(w, h) > MAX_SIDE:
        gr.Warning(f"{name} is {w}×{h} pixels: downscaled to at most {MAX_SIDE} pixels a side for recognition.")
        img = _fit(img)
    return img


def video_container(path: str | Path) -> str | None:
    """The container a file's first bytes announce (mp4, webm, avi, ...), or None. OpenCV's FFmpeg opens nearly
    anything, a text file included (as a 'tty' animation), so a file must name a video container to be one."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[4:8] == b"ftyp":
        return "mp4"  # also mov, m4v, 3gp
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"  # also mkv
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"FLV":
        return "flv"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "wmv"
    if head[:4] == b"\x00\x00\x01\xba" or head[:4] == b"\x00\x00\x01\xb3":
        return "mpeg"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpeg-ts"
    if head.startswith(b"YUV4MPEG2"):
        return "y4m"
    return None


def top_readings(rec, probs: np.ndarray, k: int = 5) -> dict[str, float]:
    order = np.argsort(probs)[::-1][:k]
    return {rec.labels[i]: float(probs[i]) for i in order}


def analyse_image(img_rgb: np.ndarray, settings: Settings):
    """A photo -> (annotated image, top readings, letter, summary): the static-image path of ``fingerspell eval``."""
    import cv2

    from realtime.overlay import draw
    from realtime.pipeline import FrameResult

    rec = make_recognizer(settings, static=True)
    try:
        bgr = cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR)
        timer = StageTimer()
        hands, hand, probs = rec.read(bgr, timer)
        if hand is None:
            result = FrameResult(0.0, hands, None, None, 0.0, None, "", dict(timer.ms))
            shown = cv2.cvtColor(draw(bgr, result, show_timing=False, hint=None), cv2.COLOR_BGR2RGB)
            which = "" if settings.hand == "any" else f"{settings.hand} "
            return shown, None, "", f"**No {which}hand found in this image.** Try a photo where the hand is clearly visible."
        k = int(np.argmax(probs))
        letter, conf = rec.labels[k], float(probs[k])
        if letter == NO_LETTER:  # the model's no-letter class: a hand that spells nothing
            result = FrameResult(0.0, hands, hand, None, 0.0, None, "", dict(timer.ms))
            shown = cv2.cvtColor(draw(bgr, result, show_timing=False, hint=None), cv2.COLOR_BGR2RGB)
            return shown, top_readings(rec, probs), "", (f"**No letter**: this hand shape spells nothing ({conf:.0%} "
                                                          "confidence), so nothing would be typed.")
        result = FrameResult(0.0, hands, hand, letter, conf, None, letter, dict(timer.ms))
        shown = cv2.cvtColor(draw(bgr, result, show_timing=False, hint=None), cv2.COLOR_BGR2RGB)
        ms = " · ".join(f"{k} {v:.1f} ms" for k, v in timer.ms.items())
        sure = "" if conf >= settings.min_confidence else f" (below the {settings.min_confidence:.0%} threshold: unsure)"
        summary = f"**{letter}** with {conf:.0%} confidence{sure} ({hand.handedness.lower()} hand) · {ms}"
        return shown, top_readings(rec, probs), letter, summary
    finally:
        rec.close()


@dataclass
class VideoFrame:
    t: float
    letter: str | None
    confidence: float
    committed: str | None
    hand: bool


def analyse_video(path: str | Path, settings: Settings, progress=None, max_frames: int = MAX_VIDEO_FRAMES):
    """A video, frame by frame on its own timestamps (like ``fingerspell live --source``) -> (frames, text, a frame
    to show). ``progress(done, total)`` is called as it goes."""
    import cv2

    from realtime.capture import VideoReader
    from realtime.overlay import draw

    frames: list[VideoFrame] = []
    shown = None
    best, committed = -1.0, False
    with ExitStack() as stack:  # closes whatever was opened, even if the next step fails
        reader = VideoReader(str(path), live=False)
        stack.callback(reader.close)
        rec = make_recognizer(settings)
        stack.callback(rec.close)
        total = min(reader.frame_count, max_frames) if reader.frame_count > 0 else max_frames
        while len(frames) < max_frames:
            img = reader.grab()
            if img is None:
                break
            img = _fit(img)
            t = reader.position_s if reader.position_s is not None else len(frames) / (reader.fps or 30.0)
            r = rec.process(img, t)
            frames.append(VideoFrame(t, r.letter, r.confidence, r.committed, r.hand is not None))
            if r.hand is not None and (r.committed or (not committed and r.confidence > best)):
                committed, best = committed or bool(r.committed), r.confidence  # show the last commit's frame
                shown = cv2.cvtColor(draw(img, r, show_timing=False, hint=None), cv2.COLOR_BGR2RGB)  # (or the surest)
            if progress is not None and (len(frames) % 5 == 0 or len(frames) == total):
                progress(len(frames), max(total, len(frames)))
        truncated = reader.grab() is not None if len(frames) >= max_frames else False
        return frames, rec.speller.text, shown, truncated


def confidence_chart(frames: list[VideoFrame], min_confidence: float):
    """Per-frame confidence of the top reading over time, with the committed letters marked: why a letter came
    out (or did not)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    t = np.array([f.t for f in frames])
    conf = np.array([f.confidence if f.hand else np.nan for f in frames])
    ax.plot(t, conf, color="#2563eb", lw=1.5, label="confidence of the top letter")
    ax.axhline(min_confidence, color="#999", ls="--", lw=1, label=f"threshold {min_confidence:.0%}")
    for f in frames:
        if f.committed and f.committed.strip():
            ax.annotate(f.committed, (f.t, 1.02), ha="center", va="bottom", fontsize=11, fontweight="bold")
            ax.axvline(f.t, color="#16a34a", lw=0.8, alpha=0.6)
    no_hand = np.array([not f.hand for f in frames])
    if no_hand.any() and len(t) > 1:
        ax.fill_between(t, 0, 1, where=no_hand, color="#eee", step="mid", label="no hand")
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("time in the video (s)")
    ax.set_ylabel("confidence")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def analyse_upload(path, model: str, hand: str, hold_s: float, min_confidence: float, progress=None,
                   hands: str = "mediapipe"):
    """The Upload tab: an image or a video file -> (annotated image, top readings, transcript, chart, summary).
    ``hands``: the app's hand pipeline (build_app binds it)."""
    import gradio as gr

    from realtime.capture import SourceError

    if not path:
        raise gr.Error("Choose an image or a video file first.")
    path = getattr(path, "name", path)  # gr.File may hand over a file object
    settings = check_settings(model, hand, hold_s, min_confidence, hands)
    name = Path(path).name
    img = load_image(path)
    if img is not None:
        shown, readings, letter, summary = analyse_image(img, settings)
        return shown, readings, letter, None, summary
    not_media = gr.Error(f"{name} is neither an image nor a video this demo can read. Upload a photo (JPEG, PNG, "
                         "…) or a video (MP4, WebM, MOV, AVI, …).")
    if video_container(path) is None:
        raise not_media
    try:
        frames, text, shown, truncated = analyse_video(
            path, settings, progress=(lambda i, n: progress((i, n), desc="frames", unit="frames")) if progress else None)
    except SourceError:
        raise not_media from None
    with_hand = sum(f.hand for f in frames)
    if truncated:
        gr.Warning(f"Only the first {len(frames)} frames of {name} were processed.")
    if with_hand == 0:
        return None, None, "", None, (f"**No hand found in {len(frames)} frames** of {name}. Film the hand so that "
                                      f"it is clearly visible, from the wrist up.")
    chart = confidence_chart(frames, settings.min_confidence)
    dur = frames[-1].t if frames else 0.0
    summary = (f"{len(frames)} frames ({dur:.1f} s): a hand in {with_hand}; spelled **{text.strip() or '(nothing)'}**"
               + ("" if text.strip() else f" — no letter was held for {settings.hold_s} s above "
                                          f"{settings.min_confidence:.0%} confidence"))
    return shown, None, text, chart, summary


# -- reference chart --------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def reference_html(model: str) -> str:
    """The selected model's letters as tiles (letters of the alphabet it cannot read struck through), and a photo
    per letter when the datasets are at hand."""
    m = manifest(model)
    not_letters = {NO_LETTER, "<blank>", " "}  # the no-letter class; a sequence model's CTC blank and space
    labels = set(m["labels"]) - not_letters
    tiles = "".join(f'<span title="recognised">{c}</span>' if c in labels else
                    f'<span class="fs-missing" title="not recognised">{c}</span>' for c in ALPHABET)
    extra = [x for x in m["labels"] if x not in ALPHABET and x not in not_letters]
    more = f"<p>Also: {' '.join(extra)}</p>" if extra else ""
    if NO_LETTER in m["labels"]:
        more += "<p>It also knows hands that spell nothing (other hand signs, such as some digits): those are never typed.</p>"
    missing = "".join(c for c in ALPHABET if c not in labels)
    note = (f"<p>{model} reads {len(labels)} letters. Not read: {', '.join(missing)}"
            " (J and Z are movements, not hand shapes).</p>" if missing else "")
    if m.get("kind") == "sequence-reader":
        trained = ("synthetic stitched sequences only" if (m.get("training") or {}).get("synthetic_only", True) else
                   "synthetic stitched motion and real hands held still, never on real fingerspelling video")
        note += ("<p>A sequence model types letters as it recognises them in the motion, J and Z included, with no "
                 f"hold. Experimental: trained on {trained}.</p>")
    photos = "".join(f'<figure><img src="data:image/jpeg;base64,{b64}" alt="{c}"><figcaption>{c}</figcaption></figure>'
                     for c, b64 in reference_photos(model))
    if photos:
        photos = f'<p>One photo per letter from its training data:</p><div class="fs-photos">{photos}</div>'
    return f'<div class="fs-letters">{tiles}</div>{more}{note}{photos}'


def reference_photos(model: str, size: int = 88) -> list[tuple[str, str]]:
    """(letter, base64 JPEG) for one photo per letter from the model's first training dataset, when
    $FINGERSPELL_DATASETS holds it: the datasets are not shipped, so without them the chart is letters only."""
    import base64
    import csv

    import cv2

    root = os.environ.get("FINGERSPELL_DATASETS")
    data = (manifest(model).get("training") or {}).get("data") or []
    if isinstance(data, dict):  # a sequence model: the datasets its letter dictionary came from
        data = [data]
    if any(isinstance(d, dict) for d in data):  # ... or of each set it was trained on (joint training)
        data = list(dict.fromkeys(s for d in data if isinstance(d, dict)
                                  for s in (d.get("dictionary") or {}).get("sources", [])))
    folders = [Path(root) / d for d in data if (Path(root) / d / "manifest.csv").is_file()] if root else []
    if not folders:  # no datasets here, or landmark-only ones (no photos)
        return []
    folder = folders[0]
    try:
        with open(folder / "manifest.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    out = []
    for label in manifest(model)["labels"]:
        row = next((r for r in rows if r.get("label") == label), None)
        img = cv2.imread(str(folder / row["path"])) if row else None
        if img is not None:
            ok, buf = cv2.imencode(".jpg", _fit(img, size), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                out.append((label, base64.b64encode(buf.tobytes()).decode("ascii")))
    return out


def on_model_change(model: str):
    """A J2S model cannot tell left from right hands: the hand selector is locked to 'any' for it."""
    import gradio as gr

    j2s = keypoints_for(model) == "j2s"
    hand = gr.update(value="any", interactive=False, info="J2S cannot tell left from right hands") if j2s else \
        gr.update(interactive=True, info="which hand spells; 'any' takes the largest hand in view")
    return hand, reference_html(model)


# -- the page ---------------------------------------------------------------------------------------------------


def _friendly(fn):
    """Unexpected errors become a short message in the page (the traceback goes to the server log only)."""
    import functools

    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:  # the page must never show a stack trace
            log.exception("demo handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong: {type(e).__name__}: {e}") from None
    return wrapper


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


def build_app(max_streams: int = 4, max_uploads: int = 2, queue_size: int = 32, stream_every: float = 0.1,
              time_limit: float = 600.0, hands: str = "mediapipe", idle_s: float = IDLE_RELEASE_S):
    """The Gradio page. ``max_streams`` tabs stream at once, ``max_uploads`` uploads run at once; past
    ``queue_size`` waiting requests a new one is refused with a message. Each stream ends after ``time_limit`` s.
    ``hands``: the hand pipeline of every recognizer the page makes (mediapipe, or onnx: ONNX Runtime); it is bound
    into this app's handlers, so two apps in one process each keep their own."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from realtime.hands import HAND_PIPELINES

    if hands not in HAND_PIPELINES:
        raise ValueError(f"hands must be one of {tuple(HAND_PIPELINES)}, got {hands!r}")

    models = demo_models()
    capacity = StreamCapacity(fps=1.0 / stream_every, time_limit=time_limit)  # this app's live and calibration streams
    if not models:
        raise RuntimeError(f"no models in {weights_dir()}")
    default = "asl-letters" if "asl-letters" in models else models[0]

    # System fonts: the default theme fetches Google fonts, which a machine without internet waits for.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    with gr.Blocks(title="fingerspell", theme=theme, css=CSS, head=ROUND_TRIP_JS, analytics_enabled=False,
                   delete_cache=(300, 900)) as app:
        gr.Markdown("# fingerspell: fingerspelling, read live\nAllow the camera, press Record under "
                    "the video and sign letters: hold a letter still for the hold time to type it; lower your hand "
                    "to type the same letter twice; keep it out of view for 1.5 s to add a space.")
        # No time to live: an open tab keeps its text however long it pauses (an idle tab's recognizer is freed by
        # the sweep below, its text kept); a closed tab's state is deleted at once by the unload event.
        session = gr.State(None, delete_callback=close_session)
        with gr.Row():
            model = gr.Dropdown(model_choices(), value=default, label="Model", scale=3,
                                info="the ASL and LIS letter models (keypoints, J2S, image), and the ASL sequence model (continuous)")
            hand = gr.Radio(list(HANDS), value="any", label="Hand", scale=2,
                            info="which hand spells; 'any' takes the largest hand in view")
            hold = gr.Slider(0.1, 2.0, value=0.5, step=0.05, label="Hold time (s)", scale=2,
                             info="how long a letter must stay to be typed")
            min_conf = gr.Slider(0.0, 1.0, value=0.6, step=0.05, label="Confidence threshold", scale=2,
                                 info="readings below it count as unsure")
        settings = [model, hand, hold, min_conf]
        with gr.Tab("Live", id="live"):
            with gr.Row():
                cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", elem_id="fs-cam",
                               webcam_options=gr.WebcamOptions(mirror=True))
                live_out = gr.HTML(frame_html(None), elem_id="fs-live-out", padding=False)  # no file per frame
            text = gr.Textbox(label="Spelled text", interactive=False, elem_id="fs-text", lines=1, max_lines=3)
            with gr.Row():
                clear = gr.Button("Clear", elem_id="fs-clear", size="sm")
                backspace = gr.Button("Backspace", elem_id="fs-backspace", size="sm")
            with gr.Row():
                profile_line = gr.Markdown(profile_markdown(None), elem_id="fs-profile")
                profile_off = gr.Button("Stop using the profile", elem_id="fs-profile-off", size="sm", scale=0)
            latency = gr.Markdown("*latency appears here once the stream runs*", elem_id="fs-latency")
            gr.Markdown(f"<small>{max_streams} webcam stream{'s' if max_streams > 1 else ''} at a time: anyone "
                        f"else waits in a queue and sees their place in it and the expected wait (in seconds) on "
                        f"the recognised image. A stream "
                        f"stops after {_duration(time_limit)}: press Stop, then Record to go on.</small>")
            stamp = gr.Textbox(elem_id="fs-stamp", elem_classes=["fs-hidden"], show_label=False, container=False)
            echo = gr.Textbox(elem_id="fs-echo", elem_classes=["fs-hidden"], show_label=False, container=False)
        with gr.Tab("Calibrate", id="calibrate"):
            gr.Markdown("Personal calibration for the model selected above: press Record and sign each letter "
                        "shown, holding it still until it is counted. Then this tab's live recognition reads *you* "
                        "better. The profile can be downloaded, and uploaded again later.")
            with gr.Row():
                cal_k = gr.Slider(1, 20, value=5, step=1, label="Samples per letter", elem_id="fs-cal-k",
                                  info="more samples, a surer calibration", scale=1)
                cal_letters = gr.Textbox(label="Letters", placeholder="all of the model's letters",
                                         info="only these letters, e.g. 'M N R' (empty: all)", elem_id="fs-cal-letters",
                                         scale=1)
            with gr.Row():
                cal_cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                                   elem_id="fs-cal-cam", webcam_options=gr.WebcamOptions(mirror=True))
                cal_out = gr.HTML(frame_html(None), elem_id="fs-cal-out", padding=False)
            cal_status = gr.HTML(calibration_html(None, default), elem_id="fs-cal-status", padding=False)
            with gr.Row():
                cal_buttons = {a: gr.Button(label, elem_id=f"fs-cal-{a}", size="sm",
                                            variant="primary" if a == "finish" else "secondary")
                               for a, label in [("redo", "Redo letter"), ("skip", "Skip letter"), ("back", "Back"),
                                                ("finish", "Finish"), ("restart", "Start over")]}
            with gr.Row():
                cal_file = gr.File(label="Your profile (download)", interactive=False, elem_id="fs-cal-file")
                cal_upload = gr.File(label="Use a profile file", file_count="single", type="filepath",
                                     file_types=[".json"], elem_id="fs-cal-upload")
            cal_message = gr.Markdown(elem_id="fs-cal-message")
        with gr.Tab("Upload", id="upload"):
            with gr.Row():
                upload = gr.File(label="An image or a video", file_count="single", type="filepath",
                                 elem_id="fs-upload")
                up_image = gr.Image(label="Recognised", show_label=False, interactive=False, elem_id="fs-up-image")
            run = gr.Button("Recognise", variant="primary", elem_id="fs-run")
            up_summary = gr.Markdown(elem_id="fs-up-summary")
            with gr.Row():
                up_text = gr.Textbox(label="Transcript", interactive=False, elem_id="fs-up-text")
                up_label = gr.Label(label="Top readings (images)", num_top_classes=5, elem_id="fs-up-label")
            up_chart = gr.Plot(label="Confidence per frame (videos)", elem_id="fs-up-chart")
        with gr.Accordion("Letters of the selected model", open=False, elem_id="fs-letters"):
            chart = gr.HTML(reference_html(default), padding=False)  # Gradio 6's default; True warns in Gradio 5

        def stream_frame(frame, session, model, hand, hold, min_conf, stamp):
            shown, *rest = live_frame(frame, session, model, hand, hold, min_conf, stamp, hands=hands,
                                      time_limit=time_limit, capacity=capacity)
            return frame_html(shown), *rest

        cam.stream(_friendly(stream_frame), inputs=[cam, session, *settings, stamp],
                   outputs=[live_out, text, latency, echo, session], stream_every=stream_every,
                   time_limit=time_limit, concurrency_limit=max_streams, concurrency_id="live",
                   show_progress="full", show_progress_on=[live_out])  # a queued tab sees its place there
        clear.click(_friendly(clear_text), inputs=session, outputs=text, queue=False)
        backspace.click(_friendly(backspace_text), inputs=session, outputs=text, queue=False)
        model.change(_friendly(on_model_change), inputs=model, outputs=[hand, chart])
        model.change(_friendly(profile_for_model), inputs=[session, model], outputs=[profile_line, session],
                     queue=False)

        def calibration_stream(frame, session, model, hand, hold, min_conf, k, letters):
            shown, *rest = calibrate_frame(frame, session, model, hand, hold, min_conf, k, letters, hands=hands,
                                           time_limit=time_limit, capacity=capacity)
            return frame_html(shown), *rest

        cal_cam.stream(_friendly(calibration_stream), inputs=[cal_cam, session, *settings, cal_k, cal_letters],
                       outputs=[cal_out, cal_status, cal_file, profile_line, session], stream_every=stream_every,
                       time_limit=time_limit, concurrency_limit=max_streams, concurrency_id="live",
                       show_progress="full", show_progress_on=[cal_out])
        for action, button in cal_buttons.items():
            def act(session, model, hand, k, letters, action=action):
                return calibration_action(action, session, model, hand, k, letters)

            button.click(_friendly(act), inputs=[session, model, hand, cal_k, cal_letters],
                         outputs=[cal_status, cal_file, profile_line, session], queue=False)
        cal_upload.upload(_friendly(load_profile_file), inputs=[cal_upload, session, model],
                          outputs=[cal_message, profile_line, session], queue=False)
        profile_off.click(_friendly(stop_profile), inputs=session, outputs=[profile_line, session], queue=False)

        def run_upload(path, model, hand, hold, min_conf, progress=gr.Progress()):  # noqa: B008 - Gradio injects it
            return analyse_upload(path, model, hand, hold, min_conf, progress=progress, hands=hands)

        run.click(_friendly(run_upload), inputs=[upload, *settings],
                  outputs=[up_image, up_label, up_text, up_chart, up_summary], concurrency_limit=max_uploads,
                  concurrency_id="upload")

        def release_tab(request):
            free_tab(app, getattr(request, "session_hash", None))

        release_tab.__annotations__["request"] = gr.Request  # Gradio passes the request by this annotation (a
        # class, not the string `from __future__ import annotations` would make, which Gradio cannot resolve here)
        app.unload(release_tab)
    app.queue(max_size=queue_size, default_concurrency_limit=max_uploads)
    patch_queue_estimates(app, capacity)
    app.fs_capacity = capacity
    stop = threading.Event()  # the idle sweep: set by launch() when the server stops
    threading.Thread(target=_sweep, args=(stop, idle_s, min(60.0, idle_s / 4)), daemon=True,
                     name="fingerspell-idle-sweep").start()
    app.fs_stop_sweep = stop
    return app


def patch_queue_estimates(app, capacity: StreamCapacity, concurrency_id: str = "live") -> bool:
    """A tab waiting in Gradio's queue for a stream place sees 'queue: 2/3 | 4.1/75.0s': its place and Gradio's
    estimate of its wait. Gradio assumes every running stream lasts its whole time limit (10 minutes by default) and
    knows no wait before the first stream ended; here the estimate comes from estimate_wait instead: the streams
    running and how long they have run, the places, and the measured durations of recent streams. It is sent again
    whenever the queue moves. Gradio has no setting for this: its queue's broadcast is replaced for this app's
    stream group (other groups, and any failure, keep Gradio's own). False where this Gradio has no such queue."""
    queue = getattr(app, "_queue", None)
    original = getattr(queue, "broadcast_estimations", None)
    try:
        from gradio.server_messages import EstimationMessage
    except ImportError:
        return False
    if original is None or not hasattr(queue, "event_queue_per_concurrency_id"):
        return False

    def broadcast_estimations(cid, after=None):
        if cid != concurrency_id:
            return original(cid, after)
        try:
            group = queue.event_queue_per_concurrency_id[cid]
            now = time.time()
            elapsed = [now - t for times in group.start_times_per_fn.values() for t in times]
            waiting = list(group.queue)
            slots = group.concurrency_limit or len(elapsed) + len(waiting)
            recent = list(capacity.recent)
            for rank, event in enumerate(waiting):
                if after is None or rank >= after:
                    eta = estimate_wait(rank, elapsed, slots, recent, capacity.time_limit)
                    queue.send_message(event, EstimationMessage(rank=rank, rank_eta=round(eta, 1),
                                                                queue_size=len(waiting)))
        except Exception:  # Gradio changed: its own estimate
            log.exception("wait estimate failed; Gradio's own is shown")
            return original(cid, after)
        return None

    queue.broadcast_estimations = broadcast_estimations
    return True


class NoOutsideRequests:
    """ASGI middleware: Gradio's page template loads one script from a CDN (iframe-resizer, used only when the page
    is embedded in another site's iframe) and preconnects to Google's font hosts, on every page load. Gradio has no
    setting for either, so they are cut out of the page's HTML here: a page load asks no outside host for anything
    (offline, it no longer waits for or logs a failed request)."""

    OUTSIDE = re.compile(rb'<script\b[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>\s*'
                         rb'|<link\b[^>]*\bhref="https?://[^"]*"[^>]*>\s*', re.DOTALL)

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path", "/") not in ("/", ""):
            return await self.app(scope, receive, send)
        start, chunks = None, []

        async def rewrite(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return None
            if message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return None
            body = b"".join(chunks)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers) and not any(
                    k.lower() == b"content-encoding" for k, v in headers):
                body = self.OUTSIDE.sub(b"", body)
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})

        return await self.app(scope, receive, rewrite)


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, max_file_size: str = "200mb",
           **build_kw) -> None:
    """Serve the page until Ctrl-C (or SIGTERM). ``share`` asks Gradio for a public link (needs internet). Every
    file the page makes goes into one folder of this server's own (DemoFiles), removed when it stops."""
    global _FILES
    if not log.handlers:  # the server's own lines (tabs closed and freed) on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("fingerspell demo: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    import atexit
    import signal

    files = _FILES = DemoFiles()
    for folder in files.stale_removed:
        log.info("removed %s, left by a demo server that was killed", folder)
    atexit.register(files.remove)  # also when start-up fails
    # Gradio reads GRADIO_TEMP_DIR when it makes each component (build_app), and two modules once at import.
    os.environ["GRADIO_TEMP_DIR"] = str(files.path)
    import gradio.routes
    import gradio.screen_recording_utils

    gradio.routes.DEFAULT_TEMP_DIR = gradio.screen_recording_utils.DEFAULT_TEMP_DIR = str(files.path)

    def stop(signum, frame):  # SIGTERM (kill, a service manager) stops the server as Ctrl-C does: files removed
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    app = None
    try:
        app = build_app(**build_kw)
        from starlette.middleware import Middleware

        app.launch(server_name=host, server_port=port, share=share, show_api=False, ssr_mode=False,
                   max_file_size=max_file_size, show_error=False, inbrowser=False,
                   app_kwargs={"middleware": [Middleware(NoOutsideRequests)]})  # returns on Ctrl-C or SIGTERM
    finally:
        if app is not None:
            app.fs_stop_sweep.set()
            app.close(verbose=False)
        files.remove()
        _FILES = None
