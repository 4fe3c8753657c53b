"""One browser tab of the demo (``fingerspell demo``): its settings, its recognizer and its live stream.

- the settings the page's controls choose (:class:`Settings`), checked (:func:`check_settings`), the models the
  selector offers, the word lists (:data:`WORD_LISTS`, ``--lexicon``), and the :class:`~realtime.pipeline.Recognizer`
  made for them (:func:`make_recognizer`);
- :class:`LiveSession`: a tab's recognizer and speller, the lock that makes the newest frame win, its calibration
  and profile, and the counters shown under the video (:func:`latency_markdown`);
- the live tab's handlers (:func:`live_frame`, Clear, Backspace) and what frees a tab's recognizer: a closed tab
  (:func:`free_tab`) and the idle sweep (:func:`release_idle_sessions`).

Kept apart from the page (realtime.demo) so that the handlers can be called, and tested, without building it;
the capacity, calibration and upload modules build on this one.
"""
from __future__ import annotations

import json
import logging
import statistics
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from realtime import demo_files
from realtime.manifest import NO_LETTER, available_models, spelled_letters, weights_dir
from realtime.hands.hand import WHICH_HAND as HANDS
from realtime.pipeline import RECOGNIZER_STAGES, StageTimer
from realtime.speller import SpellerConfig

log = logging.getLogger("fingerspell.demo")

STAGE_ORDER = ("prepare", *RECOGNIZER_STAGES, "overlay")  # the browser frame decoded instead of captured
MAX_STREAM_SIDE = 1280  # live frames are downscaled to this: MediaPipe looks at ~256 px anyway
MIN_SPELL_FPS = 5.0  # below this many processed frames a second the page warns that spelling is unreliable
IDLE_RELEASE_S = 300.0  # a tab that sent no frame for this long gives its recognizer back (its text stays)
RESTART_GAP_S = 2.0  # a tab that sent no frame for this long stopped its stream (when the page gives no Record count)
NOTE_S = 10.0  # how long the Calibrate tab shows what a change of settings kept (its panel is redrawn every frame)


NO_WORD_LIST = "none"
# The Word list selector (``--lexicon``, realtime.lexicon): shown name -> a list in realtime/wordlists (or a path).
# When a word ends, a misread letter inside a listed word is corrected; words outside the list are still spelled, but
# a name one letter from a listed word may be changed, so it is off by default. Not for photos (PipelineOptions.check).
WORD_LISTS: dict[str, str | None] = {NO_WORD_LIST: None, "English (en.txt)": "en.txt", "Italian (it.txt)": "it.txt"}
WORD_LIST_DIR = Path(__file__).resolve().parent / "wordlists"


@dataclass(frozen=True)
class Settings:
    """What the page's controls choose, and the server's hand pipeline (``fingerspell demo --hands``, fixed per app);
    a new model, hand, hand pipeline or word list means a new recognizer (the text kept), the rest is changed in
    place."""

    model: str
    hand: str = "any"
    hold_s: float = 0.5
    min_confidence: float = 0.6
    hands: str = "mediapipe"  # mediapipe, or onnx (the same models on ONNX Runtime)
    word_list: str = NO_WORD_LIST  # a name of WORD_LISTS
    reject_far: bool = False  # --reject-far-hands: a hand far from every learned letter is read as no letter

    def speller(self) -> SpellerConfig:
        return SpellerConfig(hold_s=self.hold_s, min_confidence=self.min_confidence)

    @property
    def lexicon(self) -> str | None:
        """The word list's file (PipelineOptions.lexicon), or None."""
        name = WORD_LISTS.get(self.word_list)
        return str(WORD_LIST_DIR / name) if name else None

    def rebuilds(self, other: Settings | None) -> bool:
        """Whether going from ``other`` to these settings needs a new recognizer."""
        return other is None or (self.model, self.hand, self.hands, self.word_list, self.reject_far) != (
            other.model, other.hand, other.hands, other.word_list, other.reject_far)


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


def rejects_far_hands(model: str) -> bool:
    """Whether a selector value can refuse hands far from every learned letter (``--reject-far-hands``): a keypoint
    model that ships its letter distance (realtime.letter_distance) and reads it alone, not fused."""
    m = manifest(model)
    return (not split_model(model)[1] and m.get("kind", "keypoint-classifier") == "keypoint-classifier"
            and bool(m.get("distance")))


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
        letters = spelled_letters(m["labels"])
        motion = " and ".join(c for c in ("J", "Z") if c in letters)
        what = {"j2s": "J2S: image crop", "image-classifier": "image classifier on the hand crop",
                "sequence-reader": f"continuous: a sequence model, {motion + ', ' if motion else ''}no hold; "
                                   "experimental"}.get(m.get("kind"), "MediaPipe keypoints")
        out.append((f"{name} ({len(letters)} letters, {what})", name))
    return out


def check_settings(model: str, hand: str, hold_s: float, min_confidence: float, hands: str = "mediapipe",
                   word_list: str | None = NO_WORD_LIST, reject_far: bool | None = False) -> Settings:
    """Validated settings; a request from outside the page (the API) gets a message, not a stack trace. ``hands``
    comes from the app (build_app), not from the page; ``word_list`` is a name of WORD_LISTS (None: none);
    ``reject_far``: refuse hands far from every learned letter (only where :func:`rejects_far_hands`)."""
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
    word_list = word_list or NO_WORD_LIST
    if word_list not in WORD_LISTS:
        raise gr.Error(f"Word list must be one of {', '.join(map(repr, WORD_LISTS))}, not {word_list!r}.")
    reject_far = bool(reject_far)
    if reject_far and not rejects_far_hands(model):
        able = [m for m in demo_models() if rejects_far_hands(m)]
        raise gr.Error(f"{model} cannot refuse hands far from its letters (it needs a keypoint model with a letter "
                       f"distance, read alone: {', '.join(able) or 'none shipped'}): untick it.")
    return Settings(model, hand, hold_s, min_confidence, hands, word_list, reject_far)


def model_letters(model: str) -> list[str]:
    """The letters a selector value reads (not blank, space or the no-letter class): what a word list's words must be
    spelled with."""
    return spelled_letters(manifest(model)["labels"])


def check_word_list(settings: Settings) -> None:
    """A word list with no word the model's letters can spell (realtime.lexicon.Lexicon keeps only those) is a
    message that says so, not a failed model."""
    import gradio as gr

    from realtime.lexicon import Lexicon

    letters = model_letters(settings.model)
    try:
        Lexicon.load(settings.lexicon, letters)
    except ValueError:
        raise gr.Error(f"The word list {settings.word_list} has no word that {settings.model} can spell with its "
                       f"letters ({' '.join(sorted(letters))}): choose another word list, or none.") from None
    except OSError as e:  # a list missing from the install
        raise gr.Error(f"The word list {settings.word_list} cannot be read ({e}): choose another, or none.") from None


RETRY_BUILD_S = 5.0  # a recognizer that failed to build is tried again for the same settings after this long


def make_recognizer(settings: Settings, static: bool = False):
    """The pipeline for these settings; ``static`` uses the photo detectors (no tracking between frames). The word
    list corrects words spelled in a video or live: independent photos are read without it."""
    import gradio as gr

    from realtime.manifest import ModelError
    from realtime.pipeline import Recognizer

    if is_sequence_model(settings.model) and static:
        raise gr.Error(f"{settings.model} reads motion between frames, not single photos: use it in the Live "
                       "tab or on a video.")
    lexicon = None if static else settings.lexicon
    if lexicon:
        check_word_list(settings)
    if is_sequence_model(settings.model):
        try:
            return Recognizer.build(reader="sequence", sequence_model=settings.model, hand=settings.hand,
                                    speller=settings.speller(), hands=settings.hands, lexicon=lexicon)
        except (ModelError, ValueError) as e:
            raise gr.Error(f"Cannot load model {settings.model}: {e}") from None
    try:
        keypoint_model, image_model = split_model(settings.model)
        if image_model:  # the keypoint model and the image classifier, fused (--classifier fused)
            return Recognizer.build(model=keypoint_model, hand=settings.hand, speller=settings.speller(), static=static,
                                    hands=settings.hands, classifier_kind="fused", image_model=image_model,
                                    lexicon=lexicon)
        if manifest(settings.model).get("kind") == "image-classifier":  # a hand crop read by an image classifier
            return Recognizer.build(hand=settings.hand, speller=settings.speller(), static=static, hands=settings.hands,
                                    classifier_kind="image", image_model=settings.model, lexicon=lexicon)
        return Recognizer.build(model=settings.model, hand=settings.hand, keypoints=keypoints_for(settings.model),
                                speller=settings.speller(), static=static, hands=settings.hands, lexicon=lexicon,
                                reject_far=settings.reject_far)
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
        self.seen: float | None = None  # the last frame the page sent, processed or dropped: the stream is alive
        self._stream_no: str | None = None  # the page's Record count for this stream (stream_of), None from an API client
        self.ran_s = 0.0  # seconds this stream ran: its time limit (over_time)
        self._waited = False  # this frame waited for room (wait_frame): the time until the next is not run time
        self._last_error = ""  # the last failure said in the page (stream_error), logged once
        self.profile = None  # this tab's calibration profile (realtime.calibration.Profile), used by the live tab
        self.profile_note = ""  # why a profile was dropped, shown once in the live tab
        self.calibration = None  # the calibration being recorded (realtime.calibrate.CalibrationSession)
        self._calibration_key: tuple | None = None
        self._calibrations: dict = {}  # (model, hand) -> its calibration: another model's samples wait for it
        self._calibration_note = ("", 0.0)  # what a change of settings kept, and until when it is shown
        self._profile_dir: str | None = None  # where this tab's profile file is offered for download
        self._rtt_skip = 0
        self._kept_text = ""  # the text while the recognizer is released (an idle tab, release_if_idle)
        self.restarted = False  # the recognizer was released while idle and rebuilt: the page says the text was kept
        self.calibration_check = ""  # the last Finish's self-check (realtime.calibrate.self_check), for the panel
        self._failed_build = None  # (settings, when, error) of the last recognizer that could not be built
        _SESSIONS.add(self)

    def configure(self, settings: Settings):
        """The recognizer for these settings: rebuilt for another model, hand, hand pipeline or word list (keeping
        the text and a profile that fits the new model), else tuned."""
        if self.rec is None or settings.rebuilds(self.settings):
            failed = self._failed_build
            if failed is not None and failed[0] == settings and self.clock() - failed[1] < RETRY_BUILD_S:
                raise failed[2]  # the same settings failed a moment ago: said again, not rebuilt every frame
            text = self.text
            self._close_rec()
            try:
                self.rec = make_recognizer(settings)
            except Exception as e:
                self._failed_build = (settings, self.clock(), e)
                raise
            self._failed_build = None
            # the letter still held is not typed again, and with a word list neither the kept text nor a word it
            # ends inside is rescored (Speller.resume, WordListSpeller.resume, SequenceReader.resume)
            self.rec.speller.resume(text)
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
        else:
            if self.profile is not None and getattr(base, "distance", None) is not None:
                # the profile reads through the classifier's embedding, not its rejecting call (as the CLI refuses the
                # pair): a profile may teach the person's own shape of a letter, far from the training hands
                self.profile_note = ("Far hands are not refused while your profile is used: it may have taught your "
                                     "own shape of a letter, far from the training hands.")
        self.rec.smoother.reset()

    def use_profile(self, profile) -> None:
        """Use ``profile`` (or none) in the live tab from the next frame on. Check it first (profile_problem): one
        that does not fit the recognizer's model is dropped, with a note."""
        with self.lock:
            self.profile, self.profile_note = profile, ""
            self._apply_profile()

    def calibration_for(self, model: str, hand: str, per_letter: int, letters: list[str]):
        """The calibration being recorded for these settings. A change of settings never throws samples away: another
        number per letter or other letters keep what was recorded (the samples of letters no longer asked for are set
        aside, and come back with their letters); another model or hand records its own, and the first one's samples
        wait for its model and hand. Only Start over (forget_calibration) discards them. Says what it kept
        (calibration_notice)."""
        from realtime.calibrate import CalibrationSession

        key = (model, hand, per_letter, tuple(letters))
        if self.calibration is not None and key == self._calibration_key:
            return self.calibration
        old, old_key = self.calibration, self._calibration_key
        kept = self._calibrations.get((model, hand))
        cal = CalibrationSession(list(manifest(model)["labels"]), per_letter)
        cal.letters = list(letters)  # the letters asked for, in the model's order
        if kept is not None:
            cal.samples, cal.crops = kept.samples, kept.crops
            done = set(kept.skipped) | {letter for letter in letters if cal.count(letter) >= per_letter}
            cal.index = next((i for i, letter in enumerate(letters) if letter not in done), len(letters))
            cal.skipped = [letter for letter in kept.skipped if letter in letters[:cal.index]]
        self._calibrations[(model, hand)] = self.calibration = cal
        self._calibration_key = key
        notes = []
        if old is not None and old_key[:2] != (model, hand) and any(old.samples.values()):
            notes.append(f"The {_samples(sum(map(len, old.samples.values())))} recorded for {old_key[0]} "
                         f"({old_key[1]} hand) are kept for it: select it again to go on with them.")
        if kept is not None:
            here = sum(cal.count(letter) for letter in letters)
            aside = sum(map(len, cal.samples.values())) - here
            if here:
                notes.append(f"The {_samples(here)} already recorded {'is' if here == 1 else 'are'} kept.")
            if aside:
                notes.append(f"{_samples(aside)} of letters not asked for now {'is' if aside == 1 else 'are'} set "
                             "aside: ask for those letters again to use them.")
        self._calibration_note = (" ".join(notes), self.clock() + NOTE_S)
        return cal

    def calibration_notice(self, t: float) -> str:
        """What the last change of calibration settings kept, for NOTE_S seconds."""
        text, until = self._calibration_note
        return text if t < until else ""

    @property
    def calibration_model(self) -> str | None:
        return self._calibration_key[0] if self._calibration_key is not None else None

    def forget_calibration(self, model: str, hand: str) -> None:
        """Start over: the samples recorded for this model and hand are discarded, as asked."""
        self._calibrations.pop((model, hand), None)
        self.calibration_check = ""
        if self._calibration_key is not None and self._calibration_key[:2] == (model, hand):
            self.calibration = self._calibration_key = None

    def finish_calibration(self) -> str | None:
        """A profile from what was recorded: used in the live tab from now on, and written to a file for download
        (its path is returned). None when nothing was recorded."""
        if self.calibration is None or not any(self.calibration.samples.values()):
            return None
        model, hand = self._calibration_key[:2]
        if self.settings is None:
            return None
        if self.rec is None or (self.settings.model, self.settings.hand) != (model, hand):
            # the samples are the calibration model's features: the profile is made with that model, also when the
            # Live tab used another since, or the idle sweep released the recognizer
            self.configure(replace(self.settings, model=model, hand=hand))
        from realtime.calibration import CalibratedClassifier

        clf = self.rec.classifier
        base = clf.base if isinstance(clf, CalibratedClassifier) else clf
        profile = self.calibration.to_profile(base, {"source": "browser demo"})
        self.profile, self.profile_note = profile, ""
        self._apply_profile()
        if self._profile_dir is None:
            import tempfile

            self._profile_dir = tempfile.mkdtemp(prefix="fingerspell-profile-",  # in the server's folder
                                                 dir=demo_files.current.path
                                                 if demo_files.current is not None else None)
        fused = f"-with-{profile.image_model}" if profile.crops is not None else ""
        path = str(profile.save(Path(self._profile_dir) / f"fingerspell-profile-{profile.model}{fused}.json"))
        from realtime.calibrate import describe_check, self_check

        try:  # which letters to record again; the profile (written above) stands without it
            self.calibration_check = describe_check(self_check(base, profile))
        except Exception as e:  # noqa: BLE001 - an extra: said, never in the way of the profile
            self.calibration_check = f"self-check skipped ({type(e).__name__}: {e})"
        return path

    def note_stamp(self, stamp: str | None) -> None:
        """Read the page's 'frame id:capture ms:last round trip ms:Record presses' stamp: count skipped ids, keep the
        round trip (the Record count is read where a new stream is told apart)."""
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

    def over_time(self, now: float, time_limit: float | None, stream: str | None = None) -> bool:
        """Whether this tab's stream has run past ``time_limit``. Gradio's own stream time limit does not stop a
        webcam stream (one ran 45 s of 20), so it is counted here: the seconds the stream ran, not those it waited
        for room (wait_frame) or went without frames (queued by Gradio again after its own limit). A new stream starts
        when the page's Record count ``stream`` changes, however soon after Stop; without one (an API client), after
        a pause of RESTART_GAP_S. A stream that goes on sending stays over its time, after any gap. A count of "0"
        means the page never saw its Record button (Gradio's markup changed): then the pause decides, as without one."""
        stream = None if stream == "0" else stream
        gap = None if self._last_frame is None else now - self._last_frame
        if gap is None or (stream != self._stream_no if stream is not None else gap > RESTART_GAP_S):
            self._stream_start, self.ran_s = now, 0.0
            self._rtt_skip = 2  # the round trips of the first two stamps (see note_stamp)
            self._last_id = None  # the frames the page numbered before this stream are not its dropped frames
            self.times.clear()  # the frame rate of this stream only
        elif gap <= RESTART_GAP_S and not self._waited:
            self.ran_s += gap
        self._last_frame = self.seen = now
        self._stream_no, self._waited = stream, False
        return time_limit is not None and self.ran_s > time_limit

    def wait_frame(self) -> None:
        """A frame of a stream that waits for room (StreamCapacity): not processed, its wait not counted as run time,
        and neither a dropped frame nor a round trip (the first frames once it runs carry the wait: note_stamp skips
        them)."""
        self._last_id = None
        self._rtt_skip = 2
        self._waited = True

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
            self._calibrations.clear()
            if self._profile_dir is not None:
                import shutil

                shutil.rmtree(self._profile_dir, ignore_errors=True)
                self._profile_dir = None
        finally:
            if got:
                self.lock.release()


def _samples(n: int) -> str:
    return f"{n} sample{'' if n == 1 else 's'}"


def past_recorded(cal) -> None:
    """Move the calibration past the letters that already have their samples (kept from before a change of
    settings), so that none is asked for again."""
    while not cal.done and cal.count() >= cal.per_letter:
        cal.index += 1


def stream_error(session: LiveSession, e: Exception, kept: str) -> str:
    """What the page says when a frame of a stream fails (Markdown): raised, the error would end the stream with
    only a red badge on the video, so it is said in the status text instead and the next frame tries again. An
    unexpected error is logged once, with its traceback (call it from the ``except``)."""
    import gradio as gr

    if isinstance(e, gr.Error):  # a refusal (a model that cannot do this, a setting out of range): it says why
        return f"**{e.message}** {kept} The stream goes on by itself once this is changed."
    message = f"{type(e).__name__}: {e}"
    if message != session._last_error:
        log.exception("a stream frame failed")
    session._last_error = message
    return (f"**This frame could not be processed** ({message}). {kept} The stream goes on; if this stays, press "
            "Stop, then Record, or choose another model.")


def stream_of(stamp: str | None) -> str | None:
    """The page's Record count in its stamp ('frame id:capture ms:last round trip ms:Record count'), or None."""
    parts = (stamp or "").split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


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


def page_frame_to_bgr(frame: np.ndarray) -> np.ndarray:
    """A webcam frame as the page sends it (RGB, a selfie view) -> BGR as ``fingerspell live`` sees the hand,
    downscaled to MAX_STREAM_SIDE."""
    import cv2

    h, w = frame.shape[:2]
    if max(h, w) > MAX_STREAM_SIDE:
        f = MAX_STREAM_SIDE / max(h, w)
        frame = cv2.resize(frame, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(cv2.flip(frame, 1), cv2.COLOR_RGB2BGR)


def duration_words(seconds: float) -> str:
    """A time limit as the page says it: '20 seconds', '10 minutes', '2.5 minutes', '0.5 seconds'."""
    if seconds >= 120:
        return f"{seconds / 60:g} minutes" if (seconds / 60) % 0.5 == 0 else f"{seconds:.0f} seconds"
    return f"{seconds:g} seconds" if seconds < 10 else f"{seconds:.0f} seconds"


def take_frame(frame, session: LiveSession | None):
    """(the tab's session, None) with its lock held when this frame is to be processed; else (session, the outputs
    that skip it): not an image, or the tab's previous frame still running (dropped, never queued)."""
    import gradio as gr

    session = session if isinstance(session, LiveSession) else LiveSession()
    skip = (gr.skip(), gr.skip(), gr.skip(), gr.skip(), session)
    if frame is None or not isinstance(frame, np.ndarray) or frame.ndim != 3:
        return session, skip
    if not session.lock.acquire(blocking=False):
        session.dropped_busy += 1
        session.seen = session.clock()  # its stream goes on (StreamCapacity), while a frame (a new model) takes long
        return session, skip
    return session, None


def stream_gate(session: LiveSession, t: float, time_limit: float | None, capacity,
                stream: str | None = None) -> tuple[str | None, str]:
    """May this stream's frame be processed now? (None, "") yes; ("limit", "") no, it is past its time limit (its
    room is given back); ("wait", why) no, it waits for room (a waiting stream costs almost nothing). ``stream``:
    the page's Record count (stream_of)."""
    over = session.over_time(t, time_limit, stream)
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
               capacity=None, word_list: str | None = NO_WORD_LIST, reject_far: bool | None = False):
    """One webcam frame (RGB, mirrored by the page) -> (annotated frame, text, latency, stamp echo, session).
    ``hands``: the app's hand pipeline; ``time_limit``: seconds a stream may run; ``capacity``: the app's
    realtime.demo_capacity.StreamCapacity, or None (build_app binds all three); ``word_list``: a name of WORD_LISTS;
    ``reject_far``: refuse hands far from every learned letter (``--reject-far-hands``).

    A frame that arrives while this tab's previous one is still being processed is dropped (every output
    skipped), so a slow frame never builds a queue. A frame that fails says why in the latency text (stream_error).
    """
    import cv2
    import gradio as gr

    from realtime.overlay import draw

    session, skip = take_frame(frame, session)
    if skip:
        return skip
    try:
        t_in = session.clock()
        gate, busy = stream_gate(session, t_in, time_limit, capacity, stream_of(stamp))
        if gate == "limit":  # frames are no longer processed; the text stays
            return (gr.skip(), gr.skip(), f"**This stream reached its {duration_words(time_limit)} limit.** Press Stop, "
                    "then Record to go on: the text is kept.", gr.skip(), session)
        if gate == "wait":
            return gr.skip(), gr.skip(), busy, gr.skip(), session
        session.note_stamp(stamp)
        try:
            rec = session.configure(check_settings(model, hand, hold_s, min_confidence, hands, word_list, reject_far))
            timer = StageTimer()
            with timer("prepare"):
                bgr = page_frame_to_bgr(frame)
            result = rec.process(bgr, t_in, timer)
            session.times.append(t_in)
            with timer("overlay"):
                shown = draw(bgr, result, session.fps, mirror=True, show_timing=False, hint=None)
                shown = cv2.cvtColor(shown, cv2.COLOR_BGR2RGB)
        except Exception as e:  # noqa: BLE001 - said in the page, the stream goes on
            return gr.skip(), gr.skip(), stream_error(session, e, "Your text is kept."), gr.skip(), session
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


def idle_sweep(stop: threading.Event, idle_s: float, every_s: float) -> None:
    """The idle sweep (a thread of build_app's, until ``stop`` is set): every ``every_s`` frees the idle tabs'
    recognizers and prunes the empty folders in the server's files."""
    while not stop.wait(every_s):
        try:
            release_idle_sessions(idle_s)
            if demo_files.current is not None:
                demo_files.current.prune_empty()
        except Exception:  # the sweep must go on
            log.exception("idle sweep failed")
