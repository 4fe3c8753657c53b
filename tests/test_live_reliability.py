"""The live path when things go wrong (found by a review): a source that fails or stalls mid-run keeps the text, a
stop signal is seen while a source is stalled, sources without timestamps, a deletion while the letter is still
held, option values that would run and give nonsense, several streams each on their own clock."""
import os
import signal
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from helpers import run_cli
from realtime.capture import SourceError, _Reader, make_reader, natural_key
from realtime.live import run_live
from realtime.pipeline import FrameResult
from realtime.speller import Speller, SpellerConfig


class ReadsA:
    """A recognizer that reads every frame as a held A (the loop's control flow, without models)."""

    def __init__(self):
        self.speller = Speller(SpellerConfig())

    def process(self, image, t, timer=None):
        committed = self.speller.update(t, "A", 0.99)
        return FrameResult(t, [], None, "A", 0.99, committed, self.speller.text, {})

    def close(self):
        pass


class Frames(_Reader):
    """``n`` frames at 30 per second, then ``then()``: raise, block, or end."""

    def __init__(self, n, then=lambda: None):
        self.n, self.i, self.then = n, 0, then

    def grab(self):
        if self.i >= self.n:
            return self.then()
        self.position_s = self.i / 30
        self.i += 1
        return np.zeros((48, 64, 3), np.uint8)


def test_a_source_that_fails_mid_run_keeps_the_text_and_says_why():
    def unplugged():
        raise SourceError("camera 0 stopped delivering frames (none for 2 s)")

    run = run_live(ReadsA(), Frames(30, unplugged), window=False)
    assert run.text == "A" and run.error and "stopped delivering" in run.error and not run.interrupted


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_is_seen_while_the_source_is_stalled(sig):
    stalled = threading.Event()

    def stall():
        stalled.set()
        threading.Event().wait(30)  # a camera that stopped answering
        return None

    threading.Timer(1.0, lambda: stalled.wait(10) and os.kill(os.getpid(), sig)).start()
    t0 = time.monotonic()
    run = run_live(ReadsA(), Frames(30, stall), window=False)
    assert run.interrupted and run.text == "A" and run.error is None
    assert time.monotonic() - t0 < 6  # not the 10 s read timeout


def test_equal_frame_times_do_not_crash_the_speller():
    s = Speller()
    for c in "AABB":
        s.update(1.0, c, 0.9)
    for i in range(40):
        s.update(1.0 + i / 30, "C", 0.9)
    assert s.text == "C"


def test_a_deleted_letter_still_held_is_not_typed_again_until_released():
    s = Speller()
    for i in range(30):
        s.update(i / 30, "A", 0.9)
    assert s.text == "A"
    s.backspace()
    for i in range(30, 60):
        s.update(i / 30, "A", 0.9)
    assert s.text == ""  # still the same held A
    for i in range(60, 75):
        s.update(i / 30, None, 0.0, hand_present=False)  # the hand drops (a release)
    for i in range(75, 100):
        s.update(i / 30, "A", 0.9)
    assert s.text == "A"
    s.clear()
    for i in range(100, 120):
        s.update(i / 30, "B", 0.9)  # another letter types as usual after a clear
    assert s.text == "B"


def test_a_video_without_timestamps_plays_at_its_frame_rate(tmp_path):
    """Raw MJPEG (JPEG frames back to back) has no timestamps: the frames still get increasing times."""
    path = tmp_path / "raw.mjpeg"
    with open(path, "wb") as f:
        for i in range(12):
            f.write(cv2.imencode(".jpg", np.full((48, 64, 3), 20 * i, np.uint8))[1].tobytes())
    reader = make_reader(str(path))
    times = []
    while reader.grab() is not None:
        times.append(reader.position_s)
    reader.close()
    assert len(times) >= 10 and all(b > a for a, b in zip(times, times[1:])) and times[0] >= 0


def test_image_folders_play_in_numeric_order_and_bad_folders_are_refused(tmp_path):
    assert sorted(["f10.png", "f9.png", "f1.png"], key=lambda n: natural_key(n)) == ["f1.png", "f9.png", "f10.png"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(SourceError, match="none of the 1 images"):
        make_reader(str(tmp_path / "bad"))
    for empty in ("", "  "):
        with pytest.raises(SourceError, match="empty source"):
            make_reader(empty)


def test_a_video_file_over_http_is_read_as_a_file_not_a_live_stream(tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(20):
        w.write(np.full((48, 64, 3), 10 * i, np.uint8))
    w.release()
    handler = lambda *a: SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reader = make_reader(f"http://127.0.0.1:{server.server_address[1]}/clip.avi")
        frames = 0
        while reader.grab() is not None:
            frames += 1
        reader.close()
    finally:
        server.shutdown()
    assert not reader.live and frames == 20


@pytest.mark.parametrize("option,value", [("--fps", "0"), ("--fps", "nan"), ("--hold", "-1"), ("--hold", "inf"),
                                          ("--min-confidence", "2"), ("--space-after", "0"), ("--release", "-0.1")])
def test_option_values_that_would_give_nonsense_are_refused(option, value):
    r = run_cli("live", "--no-window", "--source", "nowhere", option, value)
    assert r.returncode == 2 and f"argument {option}" in r.stderr, r.stderr


def test_a_window_that_cannot_open_is_said_before_the_work(monkeypatch):
    from realtime.cli_common import window_problem

    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    assert window_problem() == "no display to open a window on"
    monkeypatch.setenv("DISPLAY", ":97")  # no X server there: Qt would abort the process, the probe says why
    assert "display :97" in window_problem()


def test_several_streams_keep_their_own_clocks_and_refuse_the_fused_reader():
    from realtime.pipeline import PipelineOptions
    from realtime.streams import MultiStreamRecognizer

    with pytest.raises(ValueError, match="keypoint classifier only"):
        MultiStreamRecognizer(2, PipelineOptions(hands="onnx", classifier_kind="fused"))
    rec = MultiStreamRecognizer(2, PipelineOptions(hands="onnx"))
    try:
        blank = np.zeros((240, 320, 3), np.uint8)
        results = rec.process([blank, blank], [1.0, 7.5])
        assert [r.t for r in results] == [1.0, 7.5]
        with pytest.raises(ValueError, match="frame times"):
            rec.process([blank, blank], [1.0])
    finally:
        rec.close()


def test_an_empty_result_of_the_sequence_reader_does_not_blame_the_hold():
    from realtime.live import ReadingStats, hold_needed

    stats = ReadingStats(0.6)
    for i in range(5):
        stats.add(FrameResult(i / 30, [], object(), "A", 0.9, None, "", {}))
    assert "--hold" in stats.why_empty(hold_needed(Speller()))
    assert "sequence reader typed none" in stats.why_empty(hold_needed(object())) and "--hold" not in \
        stats.why_empty(None)


def spell_with_one_blank_frame(step_s: float, frames: int, gap_s: float) -> str:
    """L at one frame every ``step_s``, one frame without a hand, the next frame ``gap_s`` later, L again."""
    s = Speller()
    for i in range(frames):
        s.update(i * step_s, "L", 0.9)
    t = frames * step_s
    s.update(t, None, 0.0, hand_present=False)
    for i in range(frames):
        s.update(t + gap_s + i * step_s, "L", 0.9)
    return s.text


def test_one_blank_frame_that_lasts_seconds_is_a_space_and_a_release():
    """A GIF or a stream that sends a frame only on change holds one frame without a hand for seconds: that is a
    space, not a glitch; at 2 frames/s a single blank frame (0.5 s) is still a glitch."""
    assert spell_with_one_blank_frame(0.1, 10, 2.0) == "L L"
    assert spell_with_one_blank_frame(0.5, 4, 0.5) == "L"


class NoHands:
    """A batched tracker that never finds a hand (the lite tracker missing one the full model would find)."""

    def step(self, frames, tracked):
        return [[] for _ in frames], tracked

    def close(self):
        pass


class FindsAHand:
    """The full model on the whole frame: finds a hand, and counts the frames it looked at and its batches."""

    def __init__(self):
        self.calls, self.batches = 0, 0

    def __call__(self, frame):
        return self.detect_many([frame])[0]

    def detect_many(self, frames):
        from realtime.hands import Hand

        self.calls += len(frames)
        self.batches += 1
        lm = np.random.default_rng(0).uniform(60, 180, (21, 3)).astype(np.float32)
        return [[Hand(lm, "Right", 0.9, (frame.shape[1], frame.shape[0]))] for frame in frames]


def test_several_streams_look_again_with_the_full_model_as_one_camera_does():
    """--redetect-after reached one camera only: with several sources (live --source a,b, bench --streams) a
    stream whose tracker kept missing the hand was never looked at again."""
    from realtime.pipeline import PipelineOptions
    from realtime.streams import MultiStreamRecognizer

    blank = np.zeros((240, 320, 3), np.uint8)
    rec = MultiStreamRecognizer(2, PipelineOptions(hands="onnx", device="cpu", redetect_after=3))
    try:
        rec.tracker, full = NoHands(), FindsAHand()
        rec._fallback = full
        found = [[r.hand is not None for r in rec.process([blank, blank], [i / 30] * 2)] for i in range(4)]
        assert found == [[False, False], [False, False], [True, True], [False, False]]  # the 3rd empty frame
        assert full.calls == 2  # once per stream, only on the frame that needed it
        assert full.batches == 1  # both streams were due on the same step: one batch
    finally:
        rec.close()
    off = MultiStreamRecognizer(2, PipelineOptions(hands="onnx", device="cpu", redetect_after=0))
    try:
        off.tracker, off._fallback = NoHands(), FindsAHand()
        for i in range(6):
            assert [r.hand for r in off.process([blank, blank], [i / 30] * 2)] == [None, None]
        assert off._fallback.calls == 0
    finally:
        off.close()


def test_redetect_after_is_refused_where_nothing_is_tracked_and_reaches_the_sequence_reader(tmp_path, capsys):
    from realtime.cli import main
    from realtime.hands import Redetect
    from realtime.pipeline import Recognizer

    for argv, why in ((["eval", "--data", str(tmp_path)], "photos are read one at a time"),
                      (["calibrate", "--data", str(tmp_path), "--out", str(tmp_path / "p.json")],
                       "photos are read one at a time"),
                      (["live", "--no-window", "--source", "nowhere", "--keypoints", "j2s"], "palm detector alone")):
        assert main([*argv, "--redetect-after", "3"]) == 2
        err = capsys.readouterr().err
        assert "--redetect-after" in err and why in err, err
    rec = Recognizer.build(reader="sequence", hands="onnx", device="cpu", redetect_after=3)
    try:
        assert isinstance(rec.hands, Redetect) and rec.hands.after == 3
    finally:
        rec.close()


@pytest.mark.parametrize("option", ["--hold", "--release", "--space-after", "--smoothing"])
def test_the_sequence_reader_refuses_the_spelling_options_it_has_no_use_for(option, capsys):
    """It types a letter on the frame its model reads it: a --hold (or release, timed space, smoothing) would be
    silently ignored."""
    from realtime.cli import main

    assert main(["live", "--no-window", "--source", "nowhere", "--reader", "sequence", option, "1"]) == 2
    err = capsys.readouterr().err
    assert f"{option} would do nothing" in err and "--reader letters" in err, err


def test_the_sequence_reader_types_a_letter_only_once_it_is_read_with_min_confidence():
    from realtime.cli import _options, build_parser
    from realtime.live import confidence_needed
    from realtime.pipeline import Recognizer

    o = _options(build_parser().parse_args(["live", "--reader", "sequence", "--min-confidence", "0.7"]))
    assert o.sequence_min_confidence == 0.7
    reader = Recognizer.from_options(o, hands_stage=object()).sequence
    assert reader.min_confidence == 0.7 and confidence_needed(reader) == 0.7
    a = reader.classes.index("A")
    readings = iter([0.5] * 3 + [0.9] * 3 + [None] * 4 + [0.5] * 5 + [None] * 4 + [0.9] * 2)

    class Scripted:  # the model's reading: A with the next probability, or blank (None)
        def run(self, _, feeds):
            p = next(readings)
            logp = np.full(len(reader.classes), np.log(1e-4), np.float32)
            logp[a if p is not None else reader.blank] = np.log(p if p is not None else 0.99)
            return [logp[None]]

    reader.session, reader.step = Scripted(), None  # the window path, its session scripted
    hand = np.zeros(reader.dim, np.float32)
    typed = [reader.update(hand, i / 30)[2] for i in range(21)]
    assert typed.index("A") == 3  # the first sure frame, once; the run that is never sure types nothing
    assert reader.text == "AA" and typed.count("A") == 2
    default = _options(build_parser().parse_args(["live", "--reader", "sequence"]))
    assert default.sequence_min_confidence == 0.0 and default.speller.min_confidence == 0.6


@pytest.mark.parametrize("argv,why", [
    (["live", "--image-weight", "0.5"], "--image-weight weighs the image model against the keypoint model"),
    (["live", "--classifier", "image", "--image-weight", "0.5"], "--classifier image would ignore it"),
    (["live", "--image-model", "lis-letters-image"], "--image-model applies to --classifier image or fused"),
    (["live", "--sequence-model", "asl-sequence"], "--sequence-model applies to --reader sequence"),
    (["eval", "--lexicon", "realtime/wordlists/en.txt"], "eval reads independent photos"),
    (["calibrate", "--reader", "sequence"], "a profile calibrates the letter classifier"),
    (["calibrate", "--sequence-model", "asl-sequence"], "--sequence-model would do nothing"),
    (["calibrate", "--lexicon", "realtime/wordlists/en.txt"], "--lexicon would do nothing"),
    (["calibrate", "--reject-far-hands"], "--reject-far-hands is a way of reading, not part of a profile"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_options_the_chosen_reader_or_classifier_has_no_use_for_are_refused(argv, why, tmp_path, capsys):
    """They were silently ignored: --image-weight or --image-model with the keypoint classifier, --sequence-model
    with the letter reader, the sequence reader's options on calibrate."""
    from realtime.cli import main

    where = {"live": ["--no-window", "--source", "nowhere"], "eval": ["--data", str(tmp_path)],
             "calibrate": ["--data", str(tmp_path), "--out", str(tmp_path / "p.json")]}[argv[0]]
    assert main([argv[0], *where, *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.json").exists()


def test_image_weight_still_reaches_the_fused_reader():
    from realtime.cli import _options, build_parser
    from realtime.crop_classifier import DEFAULT_IMAGE_WEIGHT

    parse = build_parser().parse_args
    assert _options(parse(["live", "--classifier", "fused", "--image-weight", "0.6"])).image_weight == 0.6
    assert _options(parse(["live", "--classifier", "fused"])).image_weight == DEFAULT_IMAGE_WEIGHT


def test_the_image_model_chosen_by_default_is_named_and_model_is_refused_with_the_image_classifier(capsys):
    """--classifier image read with the Italian lis-letters-image unannounced (--model defaults to asl-letters), and
    took --model asl-letters without a word while reading Italian letters."""
    from realtime.cli import main

    for argv, said in ((["--classifier", "image"], "reads the Italian (LIS) letters with lis-letters-image"),
                       (["--classifier", "fused"], "with lis-letters-image and lis-letters (the default")):
        assert main(["live", "--no-window", "--source", "nowhere", *argv]) == 2  # the source: after the note
        assert said in capsys.readouterr().err
    main(["live", "--no-window", "--source", "nowhere", "--classifier", "image", "--image-model", "lis-letters-image"])
    assert "(the default" not in capsys.readouterr().err
    assert main(["live", "--no-window", "--source", "nowhere", "--classifier", "image", "--model", "asl-letters"]) == 2
    assert "--model asl-letters would do nothing" in capsys.readouterr().err


def test_several_sources_and_a_camera_option_are_hinted_with_lives_own_options(tmp_path, capsys):
    """live --source a,b pointed at bench's --streams; live --camera 7 got argparse's 'unrecognized arguments'."""
    from realtime.cli import main

    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((48, 64, 3), np.uint8))
    assert main(["live", "--no-window", "--source", f"{tmp_path},{tmp_path}"]) == 2  # --hands mediapipe: refused
    err = capsys.readouterr().err
    assert "live --source A,B" in err and "use --hands onnx or torch" in err, err
    with pytest.raises(SystemExit) as e:
        main(["live", "--camera", "7"])
    assert e.value.code == 2 and "live reads a camera with --source INDEX" in capsys.readouterr().err
