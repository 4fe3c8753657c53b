"""The browser demo: its handlers called directly, then the real page in headless Chromium.

The browser tests start ``fingerspell demo`` on 127.0.0.1 and drive Debian's Chromium through Playwright,
with a fake camera that plays a .y4m video of real dataset photos. They skip, saying why, without Gradio,
Playwright, Chromium or the datasets. Set FINGERSPELL_DEMO_SCREENSHOTS=DIR to keep screenshots of the page.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import manifest_rows, need_dataset, place_on_canvas, write_spelling_video

gr = pytest.importorskip("gradio", reason="the demo needs Gradio: pip install -e '.[demo]'")

from realtime import demo, demo_calibration, demo_capacity, demo_files, demo_session, demo_uploads

REPO = Path(__file__).resolve().parent.parent
WORD = "WHY"  # three letters the shipped asl-letters model reads surely on massey's hand3 photos
CHROMIUM = os.environ.get("FINGERSPELL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def massey_photos(word: str, signer: str = "hand3") -> list[np.ndarray]:
    from realtime.images import read_image

    massey = need_dataset("massey")
    rows = manifest_rows(massey)
    return [read_image(massey / next(r["path"] for r in rows if r["label"] == c and r["signer"] == signer))
            for c in word]


def as_page_sends(bgr: np.ndarray) -> np.ndarray:
    """What the page's webcam delivers to the handler: RGB, mirrored (a selfie view)."""
    import cv2

    return cv2.cvtColor(cv2.flip(bgr, 1), cv2.COLOR_BGR2RGB)


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def stream(session, frames, clock, fps=10.0, model="asl-letters", hand="any", hold=0.5, min_conf=0.6, word_list="none",
           reject_far=False):
    outs = None
    for i, f in enumerate(frames):
        clock.t += 1.0 / fps
        outs = demo_session.live_frame(f, session, model, hand, hold, min_conf, f"{i + 1}:{clock.t * 1000:.0f}:",
                                       word_list=word_list, reject_far=reject_far)
    return outs


# -- the handlers ------------------------------------------------------------------------------------------------


def test_live_frames_spell_a_word_and_sessions_do_not_share_text():
    photos = massey_photos(WORD)
    blank = np.zeros((480, 640, 3), np.uint8)
    frames = []
    for p in photos:
        frames += [as_page_sends(place_on_canvas(p))] * 10 + [blank] * 5  # 1 s per letter, 0.5 s without a hand
    clock = FakeClock()
    session = demo_session.LiveSession(clock=clock)
    shown, text, latency, echo, out_session = stream(session, frames, clock)
    assert out_session is session
    assert text == WORD
    assert shown.shape == (480, 640, 3) and shown.dtype == np.uint8
    assert session.processed == len(frames) and session.dropped_busy == 0 and session.dropped_stale == 0
    assert "hands" in latency and "processed" in latency
    assert echo.startswith(f"{len(frames)}:")

    other = demo_session.LiveSession(clock=clock)  # a second tab starts from nothing and leaves the first alone
    _, text2, *_ = stream(other, frames[:12], clock)
    assert text2 == WORD[0] and session.rec.speller.text == WORD
    assert demo_session.backspace_text(session) == WORD[:-1]
    assert demo_session.clear_text(session) == ""
    assert other.rec.speller.text == WORD[0]
    session.close()
    other.close()


def test_a_frame_that_arrives_while_one_is_processed_is_dropped_not_queued():
    session = demo_session.LiveSession()
    frame = np.zeros((480, 640, 3), np.uint8)
    with session.lock:  # a frame of this tab is being processed
        outs = demo_session.live_frame(frame, session, "asl-letters", "any", 0.5, 0.6, "1:0:")
    assert all(o == gr.skip() for o in outs[:4])  # nothing in the page changes
    assert outs[4] is session and session.dropped_busy == 1 and session.processed == 0
    outs = demo_session.live_frame(frame, session, "asl-letters", "any", 0.5, 0.6, "2:0:")
    assert session.processed == 1 and outs[1] == ""
    session.close()


def test_a_stream_stops_being_processed_at_its_time_limit_and_record_again_goes_on():
    clock = FakeClock()
    session = demo_session.LiveSession(clock=clock)
    frame = np.zeros((480, 640, 3), np.uint8)

    def send(seconds, fps=10):
        outs = None
        for _ in range(int(seconds * fps)):
            clock.t += 1 / fps
            outs = demo_session.live_frame(frame, session, "asl-letters", "any", 0.5, 0.6, time_limit=20)
        return outs

    send(19)
    assert session.processed == 190
    outs = send(26)  # the page goes on sending past the limit (Gradio's own limit does not stop it)
    assert session.processed in (200, 201)  # 20 s at 10 frames/s (the last one up to rounding)
    assert "reached its 20 seconds limit" in outs[2] and outs[0] == gr.skip()
    processed, clock.t = session.processed, clock.t + 5  # Stop, then Record
    send(1)
    assert session.processed == processed + 10
    session.close()


def test_an_idle_tab_frees_its_recognizer_and_keeps_its_text():
    """A tab that pauses (open, not streaming) gives its recognizer back after IDLE_RELEASE_S; its text stays, Clear
    and Backspace still work, and the next frame goes on with the same text, saying the recognizer restarted."""
    clock = FakeClock()
    session = demo_session.LiveSession(clock=clock)
    frames = [as_page_sends(place_on_canvas(p)) for p in massey_photos("W")] * 10
    _, text, *_ = stream(session, frames, clock)
    assert text == "W"
    assert not session.release_if_idle(clock.t + 10, idle_s=60)  # a short pause: kept
    assert session.release_if_idle(clock.t + 3600, idle_s=60) and session.rec is None
    assert session.text == "W" and demo_session.backspace_text(session) == "" and demo_session.clear_text(session) == ""
    session._kept_text = "WH"
    clock.t += 3600
    _, text, latency, *_ = demo_session.live_frame(np.zeros((480, 640, 3), np.uint8), session, "asl-letters", "any",
                                                   0.5, 0.6)
    assert text == "WH" and session.rec is not None and "restarted: your text is kept" in latency
    session.close()


def test_stage_table_keeps_its_columns_and_a_new_streams_first_round_trip_is_not_counted():
    clock = FakeClock()
    s = demo_session.LiveSession(clock=clock)
    s.stage_ms = {"prepare": 1.0, "hands": 5.0, "smoothing": 0.1, "overlay": 1.0}  # no hand: no features, classifier
    table = demo_session.latency_markdown(s).split("last frame:")[1]
    assert all(k in table for k in demo_session.STAGE_ORDER) and table.count("–") == 2
    s.over_time(clock(), None)  # Record: a stream starts
    for stamp in ["1:1000:35", "2:1100:19980", "3:1200:80", "4:1300:90"]:  # 19980: the first echo waited in the queue
        s.note_stamp(stamp)
    assert list(s.round_trip_ms) == [80, 90]


def test_streams_are_admitted_by_measured_capacity():
    """2 cores at 10 frames/s: streams of 50 ms a frame (0.5 core each) fit three (1.5 of the 1.6-core budget); a
    fourth waits, is told why, costs nothing, and starts once a stream stops."""
    clock = FakeClock()
    cap = demo_capacity.StreamCapacity(fps=10, cores=2)
    sessions = [demo_session.LiveSession(clock=clock) for _ in range(4)]
    for s in sessions:
        s.server_ms.extend([50.0] * 5)
        s.rec = object()  # streaming
        s.over_time(clock(), None)
    assert [cap.admit(s) is None for s in sessions] == [True, True, True, False]
    blank = np.zeros((480, 640, 3), np.uint8)
    outs = demo_session.live_frame(blank, sessions[3], "asl-letters", "any", 0.5, 0.6, capacity=cap)
    assert "at capacity" in outs[2] and "1.5 of its 2 CPU cores" in outs[2] and sessions[3].processed == 0
    clock.t += demo_session.RESTART_GAP_S + 1  # the first stream stopped; the others go on
    for s in sessions[1:]:
        s.over_time(clock(), None)
    assert cap.admit(sessions[3]) is None and cap.admit(sessions[0]) is not None
    for s in sessions:
        s.rec = None


def test_wait_estimate_from_the_streams_running_and_how_long_streams_last():
    est = demo_capacity.estimate_wait
    recent = [60.0] * 5  # streams here have lasted a minute
    assert est(0, [30.0], 1, recent, 600) == 30  # first in line: the running stream's expected rest
    assert est(1, [30.0], 1, recent, 600) == 90  # second: then one typical stream more
    assert est(0, [30.0, 50.0], 2, recent, 600) == 10  # two places: the one running longer frees first
    assert est(1, [30.0, 50.0], 2, recent, 600) == 30  # ... and the one ahead takes it
    assert est(0, [10.0], 2, recent, 600) == 0  # a free place
    assert est(0, [30.0], 1, [], 600) == 570  # nothing measured yet: up to the time limit
    assert est(0, [90.0], 1, recent, 600) == 510  # longer than the recent ones: up to the limit
    assert est(0, [700.0], 1, recent, 600) == demo_capacity.OVERRUN_S  # past the limit: told to stop
    assert est(2, [30.0], 1, [20.0, 40.0, 50.0], 600) == 15 + 40 + 40  # the median of the longer ones, then typical


def test_a_stream_waiting_for_room_sees_its_place_and_a_wait_that_moves_and_no_round_trip_of_the_wait():
    """2 cores fit three 50 ms streams; two more wait in order, each told its place and a wait estimate made from how
    long the running streams have run and how long streams lasted lately, updated as time passes and the queue
    moves. Once a waiting stream runs, its first round trips (which carry the wait) are not counted, nor are the
    frames it sent while waiting counted as dropped."""
    clock = FakeClock()
    cap = demo_capacity.StreamCapacity(fps=10, cores=2, time_limit=600)
    cap.recent.extend([60.0] * 5)
    running = [demo_session.LiveSession(clock=clock) for _ in range(3)]
    blank = np.zeros((480, 640, 3), np.uint8)

    def tick(seconds, sessions):  # every session sends a frame a second (the running ones without recognition)
        for _ in range(int(seconds)):
            clock.t += 1.0
            for s in running:
                if s in sessions:
                    s.over_time(clock(), 600)
                    cap.track(s)
                    assert cap.admit(s) is None
            outs = [demo_session.live_frame(blank, s, "asl-letters", "any", 0.5, 0.6,
                                            f"{s.n}:{clock.t * 1000:.0f}:19980", time_limit=600, capacity=cap)
                    for s in waiting if s in sessions]
            for s in waiting:
                s.n += 1
        return outs

    for s in running:
        s.server_ms.extend([50.0] * 5)
        s.rec = object()  # streaming
    waiting = [demo_session.LiveSession(clock=clock) for _ in range(2)]
    for s in waiting:
        s.n = 1
        s.server_ms.extend([50.0] * 29)  # as heavy as the others once it runs (the median of the last 30)
    tick(10, running[:1])
    tick(10, running[:2])
    outs = tick(10, running + waiting)  # the first stream has run 30 s, the second 20 s
    first, second = (o[2] for o in outs)
    assert "You are 1st in line; expected wait about 30 seconds" in first, first
    assert "You are 2nd in line; expected wait about 40 seconds" in second, second
    assert "lasted about 60 seconds lately" in first
    assert all(s.processed == 0 for s in waiting)
    outs = tick(10, running + waiting)
    assert "1st in line; expected wait about 20 seconds" in outs[0][2] and "about 30 seconds" in outs[1][2]
    tick(3, running[1:] + waiting)  # the first stream stopped (no frame for 2 s): the first in line runs
    assert waiting[0].processed == 1 and len(cap.recent) == 6 and cap.recent[-1] == 39  # it ran from 101 to 140 s
    outs = tick(1, running[1:] + waiting)
    assert "You are 1st in line" in outs[1][2]  # the second moved up
    assert 19980 not in waiting[0].round_trip_ms  # the round trip its stamps carried while it waited
    assert waiting[0].dropped_stale == 0  # the frames numbered while it waited are not dropped frames
    waiting[0].note_stamp(f"{waiting[0].n}:0:75")
    assert list(waiting[0].round_trip_ms) == [75]
    for s in running:
        s.rec = None
    waiting[0].close()


def test_gradios_queue_shows_the_measured_wait_not_the_whole_time_limit():
    """A tab waiting in Gradio's queue (all --max-streams places taken) gets its place and the estimate above as
    Gradio's ETA (Gradio's own: none before a stream has ended, then the whole time limit)."""
    app = demo.build_app(max_streams=1, time_limit=600)
    try:
        queue = app._queue
        for fn in app.fns.values():
            queue.create_event_queue_for_fn(fn)  # as the server does at start-up
        group = queue.event_queue_per_concurrency_id["live"]
        app.fs_capacity.recent.extend([60.0] * 5)
        stream_fn = next(fn for fn in app.fns.values() if fn.concurrency_id == "live")
        group.start_times_per_fn[stream_fn].add(time.time() - 30)  # one stream, running for 30 s
        group.queue.extend([SimpleNamespace(_id="a"), SimpleNamespace(_id="b")])  # two tabs wait
        sent = []
        queue.send_message = lambda event, msg: sent.append((event._id, msg.rank, msg.queue_size, msg.rank_eta))
        queue.broadcast_estimations("live")
        assert [m[:3] for m in sent] == [("a", 0, 2), ("b", 1, 2)]
        assert sent[0][3] == pytest.approx(30, abs=1) and sent[1][3] == pytest.approx(90, abs=1)
    finally:
        app.fs_stop_sweep.set()


def test_long_text_stays_inside_the_annotated_frame():
    import cv2

    from realtime.overlay import FONT, draw, fit_tail
    from realtime.pipeline import FrameResult

    text = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG " * 3
    shown = fit_tail(text + "_", 640 - 24, 0.9)
    assert shown.startswith("...") and shown.endswith("DOG _") and len(shown) < 45
    assert cv2.getTextSize(shown, FONT, 0.9, 1)[0][0] <= 640 - 24
    assert fit_tail("WHY_", 616, 0.9) == "WHY_"
    img = draw(np.zeros((480, 640, 3), np.uint8), FrameResult(0.0, [], None, None, 0.0, None, text), show_timing=False)
    assert img[-30:, -12:].max() == 0  # the right margin of the text line stays empty


def test_a_frame_rate_too_low_to_spell_is_told():
    clock = FakeClock()
    s = demo_session.LiveSession(clock=clock)
    for _ in range(12):
        clock.t += 0.5  # 2 frames/s
        s.times.append(clock.t)
    assert "2.0 frames/s is too few to spell reliably" in demo_session.latency_markdown(s)
    s.times.clear()
    for _ in range(12):
        clock.t += 0.1
        s.times.append(clock.t)
    assert "too few" not in demo_session.latency_markdown(s)


def test_stamps_give_round_trip_and_count_frames_a_newer_one_replaced():
    s = demo_session.LiveSession()
    for stamp in ["1:1000:", "2:1100:80", "6:1500:90", "7:1600:70", "garbage", None]:
        s.note_stamp(stamp)
    assert s.dropped_stale == 3  # frames 3, 4 and 5 were replaced before the server took them
    assert list(s.round_trip_ms) == [80, 90, 70]
    assert "round trip 80 ms" in demo_session.latency_markdown(s)


def test_settings_tune_in_place_and_a_new_model_keeps_the_text():
    s = demo_session.LiveSession()
    rec = s.configure(demo_session.Settings("asl-letters"))
    rec.speller.text = "AB"
    assert s.configure(demo_session.Settings("asl-letters", hold_s=1.0, min_confidence=0.8)) is rec
    assert rec.speller.config.hold_s == 1.0 and rec.speller.config.min_confidence == 0.8
    rec2 = s.configure(demo_session.Settings("lis-letters", hold_s=1.0, min_confidence=0.8))
    assert rec2 is not rec and rec2.speller.text == "AB" and "Q" in rec2.labels and "S" not in rec2.labels
    s.close()


def test_j2s_models_run_as_j2s_with_any_hand():
    assert demo_session.keypoints_for("lis-j2s") == "j2s" and demo_session.keypoints_for("asl-letters") == "mediapipe"
    assert demo_session.check_settings("lis-j2s", "left", 0.5, 0.6).hand == "any"
    hand, far, html = demo.on_model_change("lis-j2s")
    assert hand["value"] == "any" and hand["interactive"] is False and far["value"] is False
    assert "fs-missing" in html and ">S<" in html  # S is not in the LIS models
    s = demo_session.LiveSession()
    outs = demo_session.live_frame(np.zeros((480, 640, 3), np.uint8), s, "lis-j2s", "left", 0.5, 0.6)
    assert s.rec.keypoints == "j2s" and outs[1] == ""
    s.close()


def test_refusing_far_hands_is_a_setting_of_the_models_that_can_and_a_profile_reads_without_it(tmp_path):
    """The "Refuse far hands" box (--reject-far-hands): offered for asl-letters only; ticking it rebuilds the
    recognizer with the letter distance and keeps the text; a profile reads through the embedding (as the CLI refuses
    the pair) and the live tab says so; uploads read with it too."""
    import cv2

    from realtime.calibration import CalibratedClassifier

    assert demo_session.rejects_far_hands("asl-letters") and not demo_session.rejects_far_hands("lis-letters")
    assert not any(demo_session.rejects_far_hands(m) for m in demo_session.fused_models())
    with pytest.raises(gr.Error, match="lis-letters cannot refuse hands far from its letters.*asl-letters"):
        demo_session.check_settings("lis-letters", "any", 0.5, 0.6, reject_far=True)
    _, far, _ = demo.on_model_change("asl-letters")
    assert far["interactive"] is True
    _, far, _ = demo.on_model_change("lis-letters")
    assert far["interactive"] is False and far["value"] is False

    clock = FakeClock()
    s = demo_session.LiveSession(clock=clock)
    photos = [as_page_sends(place_on_canvas(p)) for p in massey_photos(WORD)]
    letters = [[p] * 10 + [np.zeros((480, 640, 3), np.uint8)] * 5 for p in photos]
    stream(s, letters[0], clock)
    plain = s.rec
    assert plain.classifier.distance is None
    _, text, *_ = stream(s, letters[1] + letters[2], clock, reject_far=True)
    assert s.rec is not plain and s.rec.classifier.distance is not None and s.settings.reject_far
    assert text == WORD  # the text typed before the change is kept, and the signers' letters are still read

    strict = s.rec
    _, _, path, line, _ = calibrate(s, clock, photos[0], lambda c: c.count("W") == 2, letters="w")
    assert s.rec is strict  # the calibration kept the live tab's setting: no rebuild
    assert path and isinstance(s.rec.classifier, CalibratedClassifier) and s.rec.classifier.base.distance is not None
    assert "Far hands are not refused while your profile is used" in line
    s.close()

    image = tmp_path / "b.png"
    cv2.imwrite(str(image), place_on_canvas(massey_photos("B")[0]))
    assert demo_uploads.analyse_upload(str(image), "asl-letters", "any", 0.5, 0.6, reject_far=True)[2] == "B"


@pytest.mark.parametrize("args, message", [
    (("no-such-model", "any", 0.5, 0.6), "No model"),
    (("asl-letters", "both", 0.5, 0.6), "Hand must be"),
    (("asl-letters", "any", -1, 0.6), "Hold time"),
])
def test_bad_settings_get_a_message(args, message):
    with pytest.raises(gr.Error, match=message):
        demo_session.check_settings(*args)


def test_reference_chart_lists_the_models_letters():
    html = demo.reference_html("asl-letters")
    assert all(f">{c}<" in html for c in "ABCY")
    assert "J, Z" in html


# -- calibration -------------------------------------------------------------------------------------------------


def calibrate(session, clock, frame, until, fps=10.0, k=2, letters="H W Y", limit=60):
    """Send ``frame`` to the Calibrate tab until ``until(calibration)`` holds; the last outputs."""
    for _ in range(limit):
        clock.t += 1.0 / fps
        outs = demo_calibration.calibrate_frame(frame, session, "asl-letters", "any", 0.5, 0.6, k, letters)
        if until(session.calibration):
            return outs
    raise AssertionError(f"not reached in {limit} frames: {session.calibration.status(clock.t)}")


def test_calibrate_tab_records_redoes_goes_back_skips_and_the_live_tab_uses_the_profile(tmp_path):
    from realtime.calibration import CalibratedClassifier, Profile

    clock = FakeClock()
    session = demo_session.LiveSession(clock=clock)
    w = as_page_sends(place_on_canvas(massey_photos("W")[0]))
    act = lambda action: demo_calibration.calibration_action(action, session, "asl-letters", "any", 2, "h w y")
    panel, _, line, _ = act("skip")  # before Record: H will not be signed
    assert "next: W" in panel and "letter 2 of 3" in panel and "skipped: H" in panel and "Not calibrated" in line
    shown, panel, _, _, _ = calibrate(session, clock, w, lambda c: c.count() == 1)
    assert "sign W: 1/2" in panel and "<progress" in panel and shown.shape == (480, 640, 3)
    panel, *_ = act("redo")
    assert "sign W: 0/2" in panel
    calibrate(session, clock, w, lambda c: c.letter == "Y")  # W done: Y is asked next
    panel, *_ = act("back")
    assert session.calibration.letter == "W" and "recorded: nothing yet" in panel  # back to W, its samples cleared
    calibrate(session, clock, w, lambda c: c.letter == "Y")
    panel, path, line, _ = act("skip")  # Y skipped: every letter is done, the profile is made
    assert "All letters done" not in panel and "The profile is made" in panel
    assert "Self-check (each sample read by a profile made without it): 2/2 read right" in panel
    profile = Profile.load(path)
    assert profile.model == "asl-letters" and profile.counts()["W"] == 2 and profile.calibrated == ["W"]
    assert "calibrated for this tab: 1 letter** (W)" in line
    demo_session.live_frame(w, session, "asl-letters", "any", 0.5, 0.6)
    assert isinstance(session.rec.classifier, CalibratedClassifier)
    line, _ = demo_calibration.stop_profile(session)
    assert "Not calibrated" in line and not isinstance(session.rec.classifier, CalibratedClassifier)

    # the downloaded file, uploaded again
    message, line, _ = demo_calibration.load_profile_file(path, session, "asl-letters")
    assert "is used in the live tab" in message and "calibrated for this tab: 1 letter" in line
    # another model: the profile is dropped, saying why
    line, _ = demo_calibration.profile_for_model(session, "lis-letters")
    assert "The profile for asl-letters was dropped: it does not fit lis-letters" in line and session.profile is None
    message, _, _ = demo_calibration.load_profile_file(path, session, "lis-letters")
    assert "cannot be used" in message and "made for asl-letters" in message
    bad = tmp_path / "me.json"
    bad.write_text('{"kind": "fingerspell-profile", "format": 1')
    message, line, _ = demo_calibration.load_profile_file(str(bad), session, "asl-letters")
    assert "**me.json cannot be used:** me.json: not a readable profile file" in message and "Not calibrated" in line
    folder = Path(path).parent
    session.close()
    assert not folder.exists()  # the tab's profile file goes with the tab


def test_the_fused_reader_is_offered_and_its_calibration_keeps_the_hand_crops():
    """The selector offers lis-letters + lis-letters-image fused; calibrating it records each sample's hand crop, and
    the live tab then reads with the keypoint and the image similarity terms."""
    from realtime.calibration import CalibratedClassifier, Profile
    from realtime.crop_classifier import FusedClassifier
    from realtime.images import read_image

    fused = "lis-letters+lis-letters-image"
    assert fused in [name for _, name in demo_session.model_choices()]
    assert demo_session.split_model(fused) == ("lis-letters", "lis-letters-image")
    assert demo_session.manifest(fused)["labels"] == demo_session.manifest("lis-letters")["labels"]
    assert demo_calibration.calibratable(fused) is None
    lis = need_dataset("lis")
    row = next(r for r in manifest_rows(lis) if r["label"] == "A" and r["signer"] == "GIULIA"
               and r["path"].endswith("front.JPG"))
    frame = as_page_sends(place_on_canvas(read_image(lis / row["path"])))
    clock = FakeClock()
    session = demo_session.LiveSession(clock=clock)
    for _ in range(60):
        clock.t += 0.1
        _, _, path, _, _ = demo_calibration.calibrate_frame(frame, session, fused, "any", 0.5, 0.6, 2, "A")
        if session.calibration.done:
            break
    assert session.calibration.done and isinstance(path, str), session.calibration.status(clock.t)
    profile = Profile.load(path)
    assert profile.model == "lis-letters" and profile.image_model == "lis-letters-image"
    assert profile.crops.shape == (2, 32, 32, 3) and profile.calibrated == ["A"]
    demo_session.live_frame(frame, session, fused, "any", 0.5, 0.6)
    clf = session.rec.classifier
    assert isinstance(clf, CalibratedClassifier) and isinstance(clf.base, FusedClassifier)
    assert clf.image_adapter is not None  # the crops are used
    assert Path(path).name == "fingerspell-profile-lis-letters-with-lis-letters-image.json"
    line, _ = demo_calibration.profile_for_model(session, "lis-letters")  # the same keypoint model: the profile stays
    assert session.profile is not None and "calibrated for this tab: 1 letter" in line
    demo_session.live_frame(frame, session, "lis-letters", "any", 0.5, 0.6)  # rebuilt for the keypoint model alone
    clf = session.rec.classifier
    assert isinstance(clf, CalibratedClassifier) and clf.image_adapter is None  # its crops are not used there
    session.close()


def test_calibration_letters_and_models_that_cannot_be_calibrated():
    labels = demo_session.manifest("asl-letters")["labels"]
    assert demo_calibration.parse_letters("", "asl-letters") == [c for c in labels if c != "none"]
    assert demo_calibration.parse_letters("y, w h", "asl-letters") == ["H", "W", "Y"]
    with pytest.raises(gr.Error, match="does not read J, Z"):
        demo_calibration.parse_letters("JZ", "asl-letters")
    assert demo_calibration.calibratable("asl-letters") is None
    assert "lis-j2s cannot be calibrated" in demo_calibration.calibratable("lis-j2s")
    with pytest.raises(gr.Error, match="cannot be calibrated"):
        demo_calibration.calibration_action("skip", None, "lis-letters-image", "any", 1, "")
    panel, path, _, _ = demo_calibration.calibration_action("finish", None, "asl-letters", "any", 1, "")
    assert "Nothing recorded yet" in panel and path == gr.skip()


# -- uploads -----------------------------------------------------------------------------------------------------


def upload(path, **kw):
    args = {"model": "asl-letters", "hand": "any", "hold_s": 0.5, "min_confidence": 0.6} | kw
    return demo_uploads.analyse_upload(str(path), **args)


def test_upload_an_image(tmp_path):
    import cv2

    path = tmp_path / "b.png"
    cv2.imwrite(str(path), place_on_canvas(massey_photos("B")[0]))
    shown, readings, letter, chart, summary = upload(path)
    assert letter == "B" and max(readings, key=readings.get) == "B" and chart is None
    assert shown.shape == (480, 640, 3) and "**B**" in summary


def test_upload_of_a_hand_that_spells_nothing_says_so(tmp_path):
    """An open hand (the digit 5 of `digits`) is asl-letters' no-letter class: no letter, and it says why."""
    import shutil

    from helpers import need_dataset

    src = sorted((need_dataset("digits") / "5").iterdir())[0]
    shutil.copy(src, tmp_path / "five.jpg")
    shown, readings, letter, chart, summary = upload(tmp_path / "five.jpg")
    assert letter == "" and "No letter" in summary and max(readings, key=readings.get) == "none"


def test_upload_a_video_gives_transcript_chart_and_progress(tmp_path):
    from matplotlib.figure import Figure

    video = tmp_path / "why.mp4"
    write_spelling_video(video, massey_photos(WORD))
    calls = []
    shown, readings, text, chart, summary = upload(video, progress=lambda *a, **k: calls.append(a))
    assert text == WORD
    assert isinstance(chart, Figure) and shown is not None and readings is None
    assert calls and calls[-1][0] == (len(WORD) * 27, len(WORD) * 27)  # write_spelling_video: 18 + 9 frames a letter
    assert f"spelled **{WORD}**" in summary


def test_upload_a_video_without_a_hand(tmp_path):
    import cv2

    video = tmp_path / "empty.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (320, 240))
    for _ in range(20):
        w.write(np.full((240, 320, 3), 90, np.uint8))
    w.release()
    _, _, text, chart, summary = upload(video)
    assert "No hand found in 20 frames" in summary and text == "" and chart is None


def test_upload_a_file_that_is_neither_image_nor_video(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture\n" * 100)
    with pytest.raises(gr.Error, match="neither an image nor a video"):
        upload(path)
    with pytest.raises(gr.Error, match="Choose an image"):
        demo_uploads.analyse_upload(None, "asl-letters", "any", 0.5, 0.6)


def test_upload_a_huge_image_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = tmp_path / "huge.png"  # a valid PNG header claiming 12000 x 9000 pixels, and almost no data
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 9000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with pytest.raises(gr.Error, match="108 megapixels"):
        upload(path)


def test_upload_a_truncated_image(tmp_path):
    import cv2

    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8))
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(gr.Error, match="cannot be decoded"):
        upload(path)


def test_a_large_image_is_downscaled(tmp_path):
    import cv2

    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), cv2.resize(place_on_canvas(massey_photos("B")[0]), (3200, 2400)))
    with pytest.warns(UserWarning, match="downscaled to at most 1920"):  # gr.Warning, outside a page
        shown, _, letter, _, _ = upload(path)
    assert max(shown.shape[:2]) == demo_uploads.MAX_SIDE and letter == "B"


# -- the word list (--lexicon) -------------------------------------------------------------------------------------

EN, IT = "English (en.txt)", "Italian (it.txt)"
BLANK = np.zeros((480, 640, 3), np.uint8)


def test_the_word_list_gives_letter_and_sequence_readers_their_lexicon_and_none_a_plain_speller():
    from realtime.lexicon import Lexicon, WordListSpeller
    from realtime.speller import Speller

    assert list(demo_session.WORD_LISTS) == ["none", EN, IT]
    assert demo_session.check_settings("asl-letters", "any", 0.5, 0.6).word_list == "none"  # the default
    assert demo_session.check_settings("asl-letters", "any", 0.5, 0.6, word_list=None).lexicon is None  # an API client
    with pytest.raises(gr.Error, match="Word list must be one of"):
        demo_session.check_settings("asl-letters", "any", 0.5, 0.6, word_list="fr.txt")
    s = demo_session.LiveSession()
    try:
        def frame(model, word_list):  # as the page sends it
            outs = demo_session.live_frame(BLANK, s, model, "any", 0.5, 0.6, word_list=word_list)
            assert isinstance(outs[0], np.ndarray), outs[2]
            return s.rec

        rec = frame("asl-letters", EN)
        assert isinstance(rec.speller, WordListSpeller) and rec.options.lexicon.endswith("en.txt")
        assert "WHY" in rec.speller.lexicon.words and rec.speller.config.hold_s == 0.5
        rec = frame("asl-letters", "none")
        assert type(rec.speller) is Speller and rec.options.lexicon is None
        rec = frame("lis-letters", EN)  # the other alphabet's list: the words its letters spell
        assert isinstance(rec.speller, WordListSpeller) and "WHY" in rec.speller.lexicon.words
        assert not any(set(w) & set("GJSZ") for w in rec.speller.lexicon.words)
        fused = demo_session.fused_models()
        if fused:  # the keypoint model and the image classifier, fused: the same letter reader
            rec = frame(fused[0], IT)
            assert isinstance(rec.speller, WordListSpeller) and "CIAO" in rec.speller.lexicon.words
        rec = frame("asl-sequence", EN)
        assert rec.sequence is not None and rec.speller is rec.sequence
        assert isinstance(rec.sequence.lexicon, Lexicon) and "WHY" in rec.sequence.lexicon.words
        rec = frame("asl-sequence", "none")
        assert rec.sequence is not None and rec.sequence.lexicon is None
    finally:
        s.close()


def test_changing_the_word_list_keeps_the_text_typed_so_far():
    """Mid-word and mid-stream: each change rebuilds the recognizer with the text kept, and spelling goes on."""
    photos = [as_page_sends(place_on_canvas(p)) for p in massey_photos(WORD)]
    letters = [[p] * 10 + [BLANK] * 5 for p in photos]  # 1 s a letter, 0.5 s without a hand (no space)
    clock = FakeClock()
    s = demo_session.LiveSession(clock=clock)
    try:
        _, text, *_ = stream(s, letters[0] + [photos[1]] * 10, clock, word_list=EN)
        assert text == WORD[:2]
        rec = s.rec
        _, text, *_ = stream(s, [photos[1]] * 10, clock, word_list="none")  # changed while H is held: not typed again
        assert s.rec is not rec and text == WORD[:2]
        for word_list in (IT, EN):
            rec = s.rec
            shown, text, latency, *_ = stream(s, [BLANK] * 3, clock, word_list=word_list)
            assert s.rec is not rec and isinstance(shown, np.ndarray) and text == WORD[:2], latency
        _, text, *_ = stream(s, letters[2], clock, word_list=EN)
        assert text == WORD
        s.rec.speller.resume("CIAO A")  # the sequence reader keeps the text too
        shown, text, *_ = stream(s, [BLANK], clock, model="asl-sequence", word_list=EN)
        assert text == "CIAO A" and s.rec.sequence is not None
        # the kept text is not taken for the word being spelled, nor is the word it ends inside rescored
        assert s.rec.sequence.word_start == len("CIAO ") and not s.rec.sequence.whole_word
        s.rec.sequence.finish()
        assert s.rec.speller.text == "CIAO A"
    finally:
        s.close()


def test_a_photo_upload_with_a_word_list_reads_the_photo_without_it(tmp_path):
    import cv2

    from realtime.speller import Speller

    rec = demo_session.make_recognizer(demo_session.Settings("asl-letters", word_list=EN), static=True)
    try:  # PipelineOptions.check refuses --lexicon for photos: the photo recognizer is built without it
        assert rec.options.static and rec.options.lexicon is None and type(rec.speller) is Speller
    finally:
        rec.close()
    path = tmp_path / "b.png"
    cv2.imwrite(str(path), place_on_canvas(massey_photos("B")[0]))
    shown, readings, letter, _, summary = upload(path, word_list=EN)
    assert letter == "B" and max(readings, key=readings.get) == "B" and shown is not None
    assert "**B**" in summary and "not used for a photo" in summary
    assert "not used for a photo" not in upload(path)[4]  # no word list, no note


def test_a_video_upload_rescores_its_last_word_against_the_word_list(tmp_path, monkeypatch):
    from realtime.lexicon import Lexicon

    video = tmp_path / "why.mp4"
    write_spelling_video(video, massey_photos(WORD))
    words = []
    real = Lexicon.correct

    def correct(self, word, *args):
        words.append(word)
        return real(self, word, *args)

    monkeypatch.setattr(Lexicon, "correct", correct)
    _, _, text, _, summary = upload(video, word_list=EN)
    assert text == WORD and words == [WORD] and f"spelled **{WORD}**" in summary  # the input ended: the word ends
    words.clear()
    assert upload(video)[2] == WORD and words == []


def test_a_word_list_with_no_word_the_model_can_spell_is_said_and_the_text_is_kept(tmp_path, monkeypatch):
    """The ASL and LIS letter models read no J or Z (movements): a list of J and Z words is none of theirs."""
    import cv2

    lst = tmp_path / "jz.txt"
    lst.write_text("# only words with J or Z\njazz\nzoo\njoy\n")
    jz = "J and Z (jz.txt)"
    monkeypatch.setitem(demo_session.WORD_LISTS, jz, str(lst))
    clock = FakeClock()
    s = demo_session.LiveSession(clock=clock)
    try:
        stream(s, [BLANK], clock)
        s.rec.speller.resume("OK")
        shown, text, status, *_ = stream(s, [BLANK], clock, word_list=jz)
        assert shown == gr.skip() and text == gr.skip()
        assert ("The word list J and Z (jz.txt) has no word that asl-letters can spell" in status
                and "choose another word list, or none" in status and "Your text is kept" in status), status
        assert "Traceback" not in status and "Cannot load model" not in status and s.text == "OK"
        shown, text, *_ = stream(s, [BLANK], clock, word_list="none")  # changed: the stream goes on, text kept
        assert isinstance(shown, np.ndarray) and text == "OK"
        shown, text, *_ = stream(s, [BLANK], clock, model="asl-sequence", word_list=jz)  # it reads J and Z
        assert isinstance(shown, np.ndarray) and text == "OK" and s.rec.sequence.lexicon.words == ["JAZZ", "JOY", "ZOO"]
    finally:
        s.close()
    video = tmp_path / "empty.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (320, 240))
    for _ in range(5):
        w.write(np.full((240, 320, 3), 90, np.uint8))
    w.release()
    with pytest.raises(gr.Error, match="has no word that lis-letters can spell"):
        upload(video, model="lis-letters", word_list=jz)
    image = tmp_path / "grey.png"
    cv2.imwrite(str(image), np.full((240, 320, 3), 90, np.uint8))
    assert "No hand found" in upload(image, model="lis-letters", word_list=jz)[4]  # a photo: the list is not used


def test_empty_folders_left_by_gradios_cleanup_are_pruned(tmp_path):
    files = demo_files.DemoFiles(tmp_path)
    assert files.path.parent == tmp_path and files.path.name.startswith(demo_files.FILES_PREFIX)
    old, new = files.path / "a" / "b", files.path / "c"
    old.mkdir(parents=True)
    new.mkdir()
    (files.path / "d").mkdir()
    (files.path / "d" / "upload.png").write_bytes(b"x")
    for folder in (old, old.parent):
        os.utime(folder, (time.time() - 120, time.time() - 120))
    assert files.prune_empty(min_age_s=60) == 2  # a/b, then a; c is too new (its file may be on its way)
    assert {p.name for p in files.path.iterdir()} == {"c", "d", demo_files.FILES_MARKER}
    files.remove()
    assert not files.path.exists() and tmp_path.exists()


def start_demo(port: int, env: dict, log) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "demo", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_until_serving(f"http://127.0.0.1:{port}/", proc, log)
    return proc


def test_a_server_keeps_its_files_in_its_own_folder_removed_when_it_stops_or_by_the_next_one(tmp_path):
    """Uploads and the Upload tab's result images go into one folder of the server's own, inside $GRADIO_TEMP_DIR.
    A killed server (kill -9) leaves it; the next server removes it on start-up, and nothing else: not folders
    without the demo's marker, nor one whose server is alive. A clean stop (SIGTERM) leaves nothing."""
    import signal

    import cv2
    from gradio_client import Client, handle_file

    image, video = tmp_path / "b.png", tmp_path / "why.mp4"
    cv2.imwrite(str(image), place_on_canvas(massey_photos("B")[0]))
    write_spelling_video(video, massey_photos(WORD))
    parent = tmp_path / "gradio"
    keep = [parent / "fingerspell-demo-notes", parent / "fingerspell-demo-alive", parent / "other"]
    for folder in keep:
        folder.mkdir(parents=True)
        (folder / "note.txt").write_text("not the demo's\n")
    (keep[1] / demo_files.FILES_MARKER).write_text(f'{{"pid": {os.getpid()}}}')  # a server that is running
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", GRADIO_TEMP_DIR=str(parent))

    def recognise(port, path):
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        return client.predict(handle_file(str(path)), "asl-letters", "any", 0.5, 0.6, api_name="/run_upload")

    def own_folder(proc):
        found = [p for p in parent.iterdir() if p.name.startswith(f"{demo_files.FILES_PREFIX}{proc.pid}-")]
        assert len(found) == 1, found
        return found[0]

    with tempfile.TemporaryFile() as log:
        port = free_port()
        first = start_demo(port, env, log)
        try:
            assert recognise(port, image)[2] == "B" and recognise(port, video)[2] == WORD
            folder = own_folder(first)
            names = {p.name for p in folder.rglob("*") if p.is_file()}
            assert {"b.png", "why.mp4"} <= names and any(n.endswith((".webp", ".png")) and n != "b.png"
                                                          for n in names), names  # the result image too
        finally:
            first.kill()  # kill -9: no clean-up
            first.wait(10)
        assert folder.exists()
        second = start_demo(port, env, log)
        try:
            assert not folder.exists()  # removed on start-up: its server is gone
            assert all((f / "note.txt").exists() for f in keep)
            assert recognise(port, image)[2] == "B"
            mine = own_folder(second)
            assert any(p.name == "b.png" for p in mine.rglob("*"))
            second.send_signal(signal.SIGTERM)  # a clean stop
            assert second.wait(30) == 0
        finally:
            if second.poll() is None:
                second.kill()
        log.seek(0)
        assert "left by a demo server that was killed" in log.read().decode(errors="replace")
    assert sorted(parent.iterdir()) == sorted(keep)  # nothing of the demo's is left
    assert all((f / "note.txt").exists() for f in keep)


def test_cli_demo_without_gradio_says_how_to_install(monkeypatch, capsys):
    from realtime.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    assert main(["demo"]) == 2
    assert "pip install -e '.[demo]'" in capsys.readouterr().err


# -- the real page in a real browser ---------------------------------------------------------------------------


def write_y4m(path: Path, photos: list[np.ndarray], fps: int = 15, hold_s: float = 1.5, gap_s: float = 0.6,
              tail_s: float = 1.6) -> None:
    """A fake-camera video: each photo on a webcam-sized frame for hold_s, a gap without a hand after each, and a
    longer pause at the end so that the loop Chromium plays starts a new word."""
    import cv2

    blank = np.zeros((480, 640, 3), np.uint8)
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F%d:1 Ip A1:1 C420jpeg\n" % fps)

        def put(img, seconds):
            planes = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420).tobytes()  # Y, then U and V at half resolution
            f.writelines(b"FRAME\n" + planes for _ in range(int(seconds * fps)))

        for p in photos:
            put(place_on_canvas(p), hold_s)
            put(blank, gap_s)
        put(blank, tail_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_demo(cache: Path, *options: str):
    """``fingerspell demo`` on a free port of 127.0.0.1 with ``options`` and its own Gradio cache folder, until the
    block ends: (url, process, log file, cache folder)."""
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", GRADIO_TEMP_DIR=str(cache))
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "demo", "--host", "127.0.0.1", "--port",
                                 str(port), *options], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(url, proc, log)
            yield SimpleNamespace(url=url, proc=proc, log=log, cache=cache)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo for the module's browser tests, one stream at a time."""
    with served_demo(tmp_path_factory.mktemp("gradio-cache"), "--max-streams", "1") as server:
        yield server


@pytest.fixture(scope="module")
def server(demo_server):
    return demo_server.url


def wait_until_serving(url: str, proc: subprocess.Popen, log, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"fingerspell demo exited with {proc.returncode}:\n{log.read().decode()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"fingerspell demo did not serve within {timeout_s:.0f} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory):
    path = tmp_path_factory.mktemp("camera") / "why.y4m"
    write_y4m(path, massey_photos(WORD))
    return path


@pytest.fixture(scope="module")
def chromium():
    """Playwright with Debian's Chromium: ``chromium(camera)`` starts a headless browser whose fake camera plays the
    .y4m video ``camera`` (closed with the module)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright: "
                                                                 "pip install -e '.[test]'")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"the browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as p, ExitStack() as stack:
        def launch(camera: Path):
            args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={camera}"]
            profile = stack.enter_context(tempfile.TemporaryDirectory())
            try:
                ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                           args=args, viewport={"width": 1280, "height": 900})
            except Exception as e:  # noqa: BLE001 - an unusable browser is a reason to skip, stated
                pytest.skip(f"Chromium at {CHROMIUM} does not start under Playwright: {str(e).splitlines()[0]}")
            stack.callback(ctx.close)
            return ctx
        yield launch


@pytest.fixture(scope="module")
def browser(chromium, fake_camera):
    """Headless Chromium whose camera plays the fake-camera video (W, H, Y)."""
    return chromium(fake_camera)


def shot(page, name: str, tmp_path: Path, full_page: bool = True) -> None:
    folder = Path(os.environ.get("FINGERSPELL_DEMO_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=full_page)


def files_in(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_browser_live_stream_spells_the_word_the_camera_shows(browser, demo_server, tmp_path):
    """The page spells the word; it asks no outside host for anything, and the stream writes no file."""
    server = demo_server.url
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    cached = files_in(demo_server.cache)
    page.goto(server)
    cam = page.locator("#fs-cam")
    cam.get_by_text("Click to Access Webcam").click()
    cam.get_by_role("button", name="capture photo").click()  # the streaming webcam's Record button
    text = page.locator("#fs-text textarea")
    # The camera loops W, H, Y with a pause after the Y: within two loops the whole word is spelled.
    page.wait_for_function("w => (document.querySelector('#fs-text textarea')?.value || '').includes(w)",
                           arg=WORD, timeout=45_000)
    assert WORD in text.input_value()
    outside = [u for u in requests if not u.startswith((server, "data:", "blob:"))]
    assert not outside, f"the page asked outside hosts: {outside}"
    assert files_in(demo_server.cache) == cached  # annotated frames travel inline, never as files
    latency = page.locator("#fs-latency").inner_text()
    assert "round trip" in latency and "ms" in latency and "hands" in latency
    rtt = float(latency.split("round trip ")[1].split(" ms")[0])
    assert 0 < rtt < 5000
    page.get_by_text("Letters of the selected model").click()  # the reference chart
    letters = page.locator("#fs-letters .fs-letters")
    letters.wait_for(timeout=5_000)
    assert all(c in letters.inner_text() for c in "ABCWY")
    page.wait_for_timeout(300)
    shot(page, "demo-live.png", tmp_path, full_page=True)
    cam.get_by_role("button", name="capture photo").click()  # Stop
    time.sleep(1.0)
    processed = int(page.locator("#fs-latency").inner_text().split(" processed")[0].split("· ")[-1])
    cam.get_by_role("button", name="capture photo").click()  # Record again: one click, the camera stayed on
    page.wait_for_function("n => parseInt((document.querySelector('#fs-latency')?.innerText || '')"
                           ".split(' processed')[0].split('· ').pop()) > n + 5", arg=processed, timeout=15_000)
    cam.get_by_role("button", name="capture photo").click()  # Stop
    time.sleep(1.0)  # let a frame still on its way come back
    page.locator("#fs-clear").click()
    page.wait_for_function("() => document.querySelector('#fs-text textarea')?.value === ''", timeout=10_000)
    page.close()


def test_browser_a_second_stream_waits_in_the_queue_then_runs(browser, server):
    """The server runs with --max-streams 1: a second tab sees its place in the queue, and streams once the
    first one stops."""
    first, second = browser.new_page(), browser.new_page()
    for page in (first, second):
        page.goto(server)
        page.locator("#fs-cam").get_by_text("Click to Access Webcam").click()
    first.locator("#fs-cam").get_by_role("button", name="capture photo").click()
    first.wait_for_function("() => (document.querySelector('#fs-text textarea')?.value || '') !== ''", timeout=30_000)
    second.locator("#fs-cam").get_by_role("button", name="capture photo").click()
    second.wait_for_function("() => (document.querySelector('#fs-live-out')?.innerText || '').includes('queue: 1/1')",
                             timeout=15_000)
    assert second.locator("#fs-text textarea").input_value() == ""
    status = second.locator("#fs-live-out").inner_text()
    print("queued tab sees:", status.replace("\n", " "))
    # its wait estimate (patch_queue_estimates): 'queue: 1/1 | 0.4/590.2s', at most the stream's time limit left
    eta = re.search(r"queue: 1/1 \|\s*[\d.]+/([\d.]+)s", status)
    assert eta and 0 < float(eta[1]) <= 600, status
    first.locator("#fs-cam").get_by_role("button", name="capture photo").click()  # Stop: the queue moves on
    second.wait_for_function("w => [...w].some(c => (document.querySelector('#fs-text textarea')?.value || '')"
                             ".includes(c))", arg=WORD, timeout=30_000)
    second.locator("#fs-cam").get_by_role("button", name="capture photo").click()
    first.close()
    second.close()


def photo_and_video(tmp_path):
    """A massey photo of B on a webcam-sized canvas, and a video spelling WORD: what the upload tests send."""
    import cv2

    image = tmp_path / "letter-b.png"
    cv2.imwrite(str(image), place_on_canvas(massey_photos("B")[0]))
    video = tmp_path / "why.mp4"
    write_spelling_video(video, massey_photos(WORD))
    return image, video


def upload_in_page(page, path, want: str, clear: bool = False) -> None:
    """In the Upload tab: ``path`` uploaded and run (after Clear), until the spelled text is ``want``."""
    if clear:
        page.locator("#fs-upload button[aria-label='Clear']").first.click()
    page.locator("#fs-upload input[type=file]").set_input_files(str(path))
    page.locator("#fs-run").click()
    text = "document.querySelector('#fs-up-text textarea')?.value"
    page.wait_for_function(f"w => {text} === w", arg=want, timeout=60_000)


def test_browser_upload_an_image_a_video_and_a_bad_file(browser, server, tmp_path):
    image, video = photo_and_video(tmp_path)
    page = browser.new_page()
    page.goto(server)
    page.get_by_role("tab", name="Upload").click()
    upload_in_page(page, image, "B")
    assert "B with" in page.locator("#fs-up-summary").inner_text()
    upload_in_page(page, video, WORD, clear=True)
    assert f"spelled {WORD}" in page.locator("#fs-up-summary").inner_text()
    page.locator("#fs-up-chart img, #fs-up-chart canvas, #fs-up-chart svg").first.wait_for(timeout=10_000)
    page.wait_for_timeout(500)
    shot(page, "demo-upload.png", tmp_path)

    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture\n")
    page.locator("#fs-upload button[aria-label='Clear']").first.click()
    page.locator("#fs-upload input[type=file]").set_input_files(str(bad))
    page.locator("#fs-run").click()
    page.get_by_text("neither an image nor a video").first.wait_for(timeout=15_000)
    assert "Traceback" not in page.content()
    page.close()


def test_browser_the_word_list_is_a_setting_for_videos_and_a_photo_still_reads(browser, server, tmp_path):
    """The Word list selector beside the other settings, saying it is for live and videos: with English chosen a
    photo still reads its letter (without the list, and says so) and a video its word, also with far hands refused."""
    image, video = photo_and_video(tmp_path)
    page = browser.new_page()
    page.goto(server)
    chooser = page.locator("#fs-word-list")
    assert "Word list" in chooser.inner_text() and "not photos" in chooser.inner_text()
    assert chooser.locator("input").input_value() == "none"
    chooser.locator("input").click()
    page.get_by_role("option", name=EN).click()
    page.wait_for_function(f"() => document.querySelector('#fs-word-list input')?.value === '{EN}'", timeout=10_000)
    page.get_by_role("tab", name="Upload").click()
    upload_in_page(page, image, "B")
    summary = page.locator("#fs-up-summary")
    summary.get_by_text("not used for a photo").wait_for(timeout=10_000)
    far = page.locator("#fs-reject-far input")  # refusing far hands: a setting that reaches the uploads too
    assert far.is_enabled() and not far.is_checked()
    far.check()
    upload_in_page(page, video, WORD, clear=True)
    assert f"spelled {WORD}" in summary.inner_text() and "Traceback" not in page.content()
    page.close()


def test_browser_calibrate_download_upload_and_the_live_tab_uses_the_profile(chromium, server, tmp_path):
    """K = 1 for H and W with a camera that shows W only: Skip H before Record, sign W, and the profile is made,
    downloaded (a valid profile of the model), used by the live tab; a corrupt upload gets the reason in the page."""
    from realtime.calibration import Profile

    camera = tmp_path / "w.y4m"
    write_y4m(camera, massey_photos("W"), hold_s=2.0, gap_s=0.0, tail_s=0.0)
    page = chromium(camera).new_page()
    page.goto(server)
    page.get_by_role("tab", name="Calibrate").click()
    page.locator("#fs-cal-k input[type=number]").fill("1")
    page.locator("#fs-cal-k input[type=number]").press("Enter")
    page.locator("#fs-cal-letters textarea, #fs-cal-letters input").first.fill("H W")
    panel = page.locator("#fs-cal-status")
    page.locator("#fs-cal-skip").click()  # the camera never shows H
    page.wait_for_function("() => document.querySelector('#fs-cal-status')?.innerText.includes('skipped: H')",
                           timeout=10_000)
    assert "letter 2 of 2" in panel.inner_text()
    cam = page.locator("#fs-cal-cam")
    cam.get_by_text("Click to Access Webcam").click()
    cam.get_by_role("button", name="capture photo").click()  # Record
    page.wait_for_function("() => document.querySelector('#fs-cal-status')?.innerText.includes('All letters done')",
                           timeout=30_000)
    assert "recorded: W 1" in panel.inner_text() and "100%" in panel.inner_text()
    shot(page, "demo-calibrate.png", tmp_path)
    cam.get_by_role("button", name="capture photo").click()  # Stop
    link = page.locator("#fs-cal-file a").first
    link.wait_for(timeout=10_000)
    with page.expect_download() as download:
        link.click()
    profile = Profile.load(download.value.path())
    assert profile.model == "asl-letters" and profile.calibrated == ["W"] and profile.meta["skipped"] == ["H"]
    assert profile.model_sha256 == demo_session.manifest("asl-letters")["sha256"]

    bad = tmp_path / "corrupt.json"
    bad.write_text("{ not json")
    page.locator("#fs-cal-upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#fs-cal-message')?.innerText.includes('cannot be used')",
                           timeout=15_000)
    assert "not a readable profile file" in page.locator("#fs-cal-message").inner_text()
    assert "Traceback" not in page.content()
    page.get_by_role("tab", name="Live").click()
    assert "calibrated for this tab: 1 letter" in page.locator("#fs-profile").inner_text()
    page.locator("#fs-profile-off").click()
    page.wait_for_function("() => document.querySelector('#fs-profile')?.innerText.includes('Not calibrated')",
                           timeout=10_000)
    page.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def server_log(demo_server) -> str:
    with open(f"/proc/self/fd/{demo_server.log.fileno()}", "rb") as f:  # its own offset: the server's is shared
        return f.read().decode(errors="replace")


def test_browser_closed_tabs_give_their_memory_back(browser, demo_server):
    """Tabs that streamed hold a recognizer each (tens of MB); when they close, the server frees it at once (not an
    hour later) and its memory returns to within one tab's worth of where it was with one tab open."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc to read the server's memory")
    pid, n = demo_server.proc.pid, 3
    closed_before = server_log(demo_server).count("closed: its recognizer is freed")
    pages = []
    for i in range(n + 1):
        page = browser.new_page()
        page.goto(demo_server.url)
        cam = page.locator("#fs-cam")
        cam.get_by_text("Click to Access Webcam").click()
        cam.get_by_role("button", name="capture photo").click()  # Record
        page.wait_for_function("() => (document.querySelector('#fs-latency')?.innerText || '').includes('processed')",
                               timeout=30_000)
        cam.get_by_role("button", name="capture photo").click()  # Stop: the next tab's stream may run (one at a time)
        pages.append(page)
        if i == 0:
            time.sleep(1.0)
            one_tab = rss_mb(pid)
    time.sleep(1.0)
    all_tabs = rss_mb(pid)
    for page in pages:
        page.close()
    deadline = time.monotonic() + 30
    while server_log(demo_server).count("closed: its recognizer is freed") < closed_before + n + 1:
        assert time.monotonic() < deadline, "the server did not free the closed tabs within 30 s"
        time.sleep(0.25)
    time.sleep(0.5)
    after = rss_mb(pid)
    print(f"server RSS: one tab {one_tab:.0f} MB, {n + 1} tabs {all_tabs:.0f} MB, all closed {after:.0f} MB")
    per_tab = (all_tabs - one_tab) / n
    assert per_tab > 10, f"the extra tabs cost only {per_tab:.0f} MB each: the test measures nothing"
    # The heap does not shrink to the byte (allocator arenas, Gradio's own per-event caches): less than one tab's worth
    # may stay, where a leak would keep all n extra tabs' worth (seen: 545 / 685 / 575 MB on the 2-core CI).
    assert after < one_tab + per_tab, (one_tab, all_tabs, after)


@pytest.mark.data
def test_the_sequence_model_reads_live_and_videos_but_not_photos_or_profiles(tmp_path):
    assert "asl-sequence" in [name for _, name in demo_session.model_choices()]
    assert demo_session.check_settings("asl-sequence", "any", 0.5, 0.6).model == "asl-sequence"
    s = demo_session.LiveSession()
    rec = s.configure(demo_session.Settings("asl-sequence"))
    assert rec.sequence is not None
    s.close()
    with pytest.raises(gr.Error, match="reads motion between frames"):
        demo_session.make_recognizer(demo_session.Settings("asl-sequence"), static=True)
    assert "cannot be calibrated" in demo_calibration.calibratable("asl-sequence")
    _, _, html = demo.on_model_change("asl-sequence")
    assert "blank" not in html
    video = tmp_path / "why.mp4"
    write_spelling_video(video, massey_photos(WORD))
    shown, readings, text, chart, summary = upload(video, model="asl-sequence")
    assert shown is not None and set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ ")
