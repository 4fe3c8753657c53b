"""The browser demo's handlers when the input is odd (found by a review): a thin strip that used to crash the
server, animated GIFs, cut-off videos, a damaged profile, a model change while a letter is held, time wording; a
stream's time limit, its place in the queue, its errors, calibration settings changed midway, 16-bit PNGs; and, in
the real page, Record at once after Stop and a stream left running in another tab."""
import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the browser demo needs the demo extra (pip install -e '.[demo]')")

import test_demo  # noqa: E402 - its browser fixtures, for the real-page tests at the end

chromium, fake_camera, browser = test_demo.chromium, test_demo.fake_camera, test_demo.browser


def test_a_thin_strip_is_refused_and_the_photo_cascade_never_blows_it_up(tmp_path):
    from PIL import Image

    from realtime.demo_uploads import load_image
    from realtime.hands.base import MAX_UPSCALED_SIDE, static_views

    Image.new("RGB", (1920, 40), "white").save(tmp_path / "banner.png")
    with pytest.raises(gr.Error, match="too thin|that thin"):
        load_image(tmp_path / "banner.png")
    view, scale, pad = next(static_views(np.zeros((40, 1920, 3), np.uint8), 256))  # the first view pads by half
    assert scale <= MAX_UPSCALED_SIDE / 1920 and max(view.shape[:2]) - 2 * pad <= MAX_UPSCALED_SIDE
    view, scale, pad = next(static_views(np.zeros((64, 64, 3), np.uint8), 256))  # small photos: upscaled as before
    assert scale == 4.0 and view.shape[0] - 2 * pad == 256


def test_an_animated_gif_is_read_as_a_video_not_as_its_first_frame(tmp_path):
    from PIL import Image

    from realtime.demo_uploads import load_image, video_container

    frames = [Image.new("RGB", (64, 48), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "why.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / "still.gif")
    assert load_image(tmp_path / "why.gif") is None and video_container(tmp_path / "why.gif") == "gif"
    assert load_image(tmp_path / "still.gif").shape == (48, 64, 3)


def test_a_cut_off_video_says_why_it_cannot_be_read(tmp_path):
    from realtime.demo_uploads import analyse_upload

    (tmp_path / "cut.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40)
    with pytest.raises(gr.Error, match="cannot be read as a video"):
        analyse_upload(str(tmp_path / "cut.mp4"), "asl-letters", "any", 0.5, 0.6)


def test_time_limits_are_said_as_set():
    from realtime.demo_session import duration_words

    assert [duration_words(s) for s in (0.5, 20, 150, 210, 600)] == [
        "0.5 seconds", "20 seconds", "2.5 minutes", "3.5 minutes", "10 minutes"]


def test_a_rebuilt_speller_does_not_type_the_held_letter_again():
    from realtime.speller import Speller

    s = Speller()
    s.resume("HW")  # the recognizer was rebuilt for another hand or model while W is held
    for i in range(30):
        s.update(i / 30, "W", 0.9)
    assert s.text == "HW"
    for i in range(30, 40):
        s.update(i / 30, None, 0.0, hand_present=False)
    for i in range(40, 70):
        s.update(i / 30, "W", 0.9)
    assert s.text == "HWW"


def test_a_profile_whose_samples_do_not_fit_the_model_is_refused():
    from realtime.calibration import make_profile
    from realtime.classifier import OnnxClassifier
    from realtime.demo_calibration import profile_problem

    kp = OnnxClassifier("asl-letters")
    prof = make_profile(kp, np.random.default_rng(0).normal(size=(3, kp.spec.dim)).astype(np.float32), ["A", "B", "C"])
    assert profile_problem(prof, "asl-letters") is None
    prof.samples = prof.samples[:, :10]
    prof.features = {**prof.features, "dim": 10}
    assert "damaged" in profile_problem(prof, "asl-letters")


def test_finish_makes_the_profile_with_the_calibration_model_whatever_the_live_tab_used_since():
    from realtime.demo_session import LiveSession, check_settings

    session = LiveSession()
    try:
        asl = check_settings("asl-letters", "any", 0.5, 0.6)
        session.configure(asl)
        cal = session.calibration_for("asl-letters", "any", 2, ["W"])
        dim = session.rec.classifier.spec.dim
        cal.samples["W"] = [np.zeros(dim, np.float32), np.ones(dim, np.float32)]
        session.configure(check_settings("lis-letters", "any", 0.5, 0.6))  # the Live tab streamed another model
        path = session.finish_calibration()
        assert path and "asl-letters" in path and session.profile.model == "asl-letters"
        session._close_rec()  # the idle sweep released the recognizer: what was recorded still makes a profile
        assert session.finish_calibration() is not None
    finally:
        session.close()


# -- streams: their time limit, the queue for room, errors (found by a review) -------------------------------------


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


BLANK = np.zeros((480, 640, 3), np.uint8)


def send(session, clock, seconds, stream="1", fps=10.0, time_limit=None, capacity=None, model="asl-letters"):
    """Frames of the page's ``stream``-th Record for ``seconds``, stamped as the page stamps them; the last outputs."""
    from realtime.demo_session import live_frame

    outs = None
    for _ in range(round(seconds * fps)):
        clock.t += 1 / fps
        session.n = getattr(session, "n", 0) + 1
        outs = live_frame(BLANK, session, model, "any", 0.5, 0.6, f"{session.n}:{clock.t * 1000:.0f}::{stream}",
                          time_limit=time_limit, capacity=capacity)
    return outs


def test_stop_then_record_at_once_starts_a_new_stream():
    """The page numbers its Record presses: Stop, then Record within the 2 s that used to tell a new stream is one."""
    from realtime.demo_session import LiveSession

    clock = FakeClock()
    session = LiveSession(clock=clock)
    try:
        outs = send(session, clock, 3, stream="1", time_limit=2)
        assert "reached its 2 seconds limit" in outs[2]
        processed = session.processed
        clock.t += 0.5  # Stop, then Record half a second later
        outs = send(session, clock, 1, stream="2", time_limit=2)
        assert session.processed == processed + 10 and "reached" not in outs[2]
    finally:
        session.close()


def test_a_stream_past_its_limit_stays_stopped_after_a_gap_until_record():
    """With --max-streams 1 Gradio ends the stream at its own limit and the page's next frame waits in Gradio's
    queue behind another tab: the frames that come back after that gap are the same stream, still past its limit."""
    from realtime.demo_session import LiveSession

    clock = FakeClock()
    session = LiveSession(clock=clock)
    try:
        send(session, clock, 3, stream="1", time_limit=2)
        processed = session.processed
        clock.t += 60  # in Gradio's queue while another tab streams
        outs = send(session, clock, 1, stream="1", time_limit=2)
        assert session.processed == processed and "reached its 2 seconds limit" in outs[2]
        assert "Stop, then Record" in outs[2]  # and says what to do
        outs = send(session, clock, 1, stream="2", time_limit=2)  # the user pressed Stop, then Record
        assert session.processed == processed + 10
    finally:
        session.close()


def test_the_time_limit_counts_the_time_a_stream_ran_not_its_wait_for_room():
    from realtime.demo_capacity import StreamCapacity
    from realtime.demo_session import LiveSession

    clock = FakeClock()
    cap = StreamCapacity(fps=10, cores=1)  # room for one stream of 60 ms a frame
    running, waiting = LiveSession(clock=clock), LiveSession(clock=clock)
    running.rec = object()  # streaming (no recognizer needed here)
    try:
        running.over_time(clock(), 20)
        assert cap.admit(running) is None
        for _ in range(30):  # 30 s in line, a frame a second, while the other stream runs
            clock.t += 1
            running.over_time(clock(), 20)
            outs = send(waiting, clock, 1, fps=1, time_limit=20, capacity=cap)
            assert "1st in line" in outs[2]
        clock.t += 3  # the running stream stopped: the waiting one starts
        outs = send(waiting, clock, 5, fps=2, time_limit=20, capacity=cap)
        assert waiting.processed == 10 and "reached" not in outs[2]
        outs = send(waiting, clock, 16, fps=1, time_limit=20, capacity=cap)
        assert "reached its 20 seconds limit" in outs[2]  # 20 s after it started, not after it came
    finally:
        running.rec = None
        running.close()
        waiting.close()


def test_a_model_change_at_capacity_keeps_the_place_and_the_text(monkeypatch):
    """Building the new model's recognizer takes a while (its frames meanwhile are dropped, its recognizer is
    None): a stream waiting for room must not take the place of the one that changes its model."""
    from realtime import demo_session
    from realtime.demo_capacity import StreamCapacity

    clock = FakeClock()
    cap = StreamCapacity(fps=10, cores=1)
    mine, other = demo_session.LiveSession(clock=clock), demo_session.LiveSession(clock=clock)
    try:
        send(mine, clock, 0.5, capacity=cap)
        mine.rec.speller.text = "HELLO"
        mine.server_ms.extend([60.0] * 30)  # 0.6 of the core's 0.8: no room for a second stream
        outs = send(other, clock, 0.1, capacity=cap)
        assert "1st in line" in outs[2]
        build = demo_session.make_recognizer

        def slow_build(settings, static=False):
            for _ in range(15):  # 3 s: both tabs go on sending frames; this tab's are dropped (its lock is held)
                send(mine, clock, 0.1, capacity=cap, model="lis-letters")
                outs = send(other, clock, 0.1, capacity=cap)
                assert "1st in line" in outs[2], "the waiting stream took the place of the one changing its model"
            return build(settings, static)

        monkeypatch.setattr(demo_session, "make_recognizer", slow_build)
        outs = send(mine, clock, 0.1, capacity=cap, model="lis-letters")
        assert outs[1] == "HELLO" and mine.settings.model == "lis-letters"
        assert "1st in line" in send(other, clock, 0.1, capacity=cap)[2]  # before this tab's next frame too
        processed = mine.processed
        assert send(mine, clock, 0.1, capacity=cap, model="lis-letters")[1].startswith("HELLO")  # a space: no hand
        assert mine.processed == processed + 1
    finally:
        mine.close()
        other.close()


def test_an_error_in_a_stream_is_said_in_the_status_text_and_the_stream_goes_on(monkeypatch):
    from realtime.demo_calibration import calibrate_frame
    from realtime.demo_session import LiveSession, check_settings

    clock = FakeClock()
    session = LiveSession(clock=clock)
    try:
        session.configure(check_settings("asl-letters", "any", 0.5, 0.6))
        session.rec.speller.text = "AB"

        def broken(*args, **kwargs):
            raise RuntimeError("the hand graph failed")

        monkeypatch.setattr(session.rec, "process", broken)
        outs = send(session, clock, 0.1)  # no exception: Gradio would end the stream with only an error badge
        assert "could not be processed" in outs[2] and "the hand graph failed" in outs[2] and "text is kept" in outs[2]
        assert outs[1] == gr.skip()  # the text on the page stays
        monkeypatch.undo()
        outs = send(session, clock, 0.1)
        assert outs[1] == "AB" and session.processed == 1  # the next frame runs again
        outs = send(session, clock, 0.1, model="no-such-model")  # a refusal: its own message
        assert "No model 'no-such-model'" in outs[2]
        _, panel, *_ = calibrate_frame(BLANK, session, "lis-j2s", "any", 0.5, 0.6, 2, "")
        assert "lis-j2s cannot be calibrated" in panel
    finally:
        session.close()


def test_a_page_that_never_saw_its_record_button_falls_back_to_the_pause_rule():
    """The page counts Record presses by Gradio's button markup; if that changes the count stays "0", which must
    not leave a stream past its limit stopped for good: a pause starts a new stream again, as without a count."""
    from realtime.demo_session import RESTART_GAP_S, LiveSession

    clock = FakeClock()
    session = LiveSession(clock=clock)
    for _ in range(60):  # 6 s of a 5 s limit
        over = session.over_time(clock(), 5.0, "0")
        clock.t += 0.1
    assert over
    clock.t += RESTART_GAP_S + 1
    assert not session.over_time(clock(), 5.0, "0")
    session.close()


def test_a_recognizer_that_cannot_be_built_is_not_rebuilt_every_frame(monkeypatch):
    """A model that fails to load fails every frame of the stream: said each time, built again only after
    RETRY_BUILD_S or when the settings change, and the text is kept throughout."""
    from realtime import demo_session
    from realtime.demo_session import RETRY_BUILD_S, LiveSession, check_settings

    clock = FakeClock()
    session = LiveSession(clock=clock)
    built = []
    real_build = demo_session.make_recognizer

    def failing(settings, static=False):
        built.append(settings.model)
        if settings.hand == "left":
            raise gr.Error("Cannot load model asl-letters: damaged")
        return real_build(settings, static)

    monkeypatch.setattr(demo_session, "make_recognizer", failing)
    try:
        session.configure(check_settings("asl-letters", "any", 0.5, 0.6))
        session.rec.speller.text = "AB"
        bad = check_settings("asl-letters", "left", 0.5, 0.6)
        for _ in range(3):
            with pytest.raises(gr.Error, match="damaged"):
                session.configure(bad)
            clock.t += 0.1
        assert len(built) == 2  # the good one, then the failing one once
        clock.t += RETRY_BUILD_S
        with pytest.raises(gr.Error, match="damaged"):
            session.configure(bad)
        assert len(built) == 3
        session.configure(check_settings("asl-letters", "any", 0.5, 0.6))  # back to what works
        assert len(built) == 4 and session.text == "AB"
    finally:
        session.close()


def test_changing_calibration_settings_keeps_the_samples_recorded():
    from realtime.demo_calibration import calibrate_frame, calibration_action
    from realtime.demo_session import LiveSession

    clock = FakeClock()
    session = LiveSession(clock=clock)
    try:
        calibration_action("skip", session, "asl-letters", "any", 2, "H W Y")  # H skipped
        cal = session.calibration
        cal.samples["W"] = [np.zeros(10, np.float32), np.ones(10, np.float32)]  # W recorded
        cal.index = 2
        _, panel, *_ = calibrate_frame(BLANK, session, "asl-letters", "any", 0.5, 0.6, 3, "H W Y")  # 3 per letter
        assert session.calibration.count("W") == 2 and session.calibration.letter == "W"  # W needs one more
        assert "kept" in panel and "2 samples" in panel, panel
        _, panel, *_ = calibrate_frame(BLANK, session, "asl-letters", "any", 0.5, 0.6, 2, "W Y")  # 2, without H
        assert session.calibration.letter == "Y" and session.calibration.count("W") == 2 and "kept" in panel
        _, panel, *_ = calibrate_frame(BLANK, session, "asl-letters", "any", 0.5, 0.6, 2, "Y")  # W not asked for
        assert "2 samples of letters not asked for now are set aside" in panel, panel
        _, panel, *_ = calibrate_frame(BLANK, session, "lis-letters", "any", 0.5, 0.6, 2, "")  # another model
        assert "recorded for asl-letters (any hand) are kept for it" in panel, panel
        assert not any(session.calibration.samples.values())
        calibrate_frame(BLANK, session, "asl-letters", "any", 0.5, 0.6, 2, "W Y")  # and back: still there
        assert session.calibration.count("W") == 2 and session.calibration.letter == "Y"
        calibration_action("restart", session, "asl-letters", "any", 2, "W Y")  # Start over: gone, as asked
        assert not any(session.calibration.samples.values()) and session.calibration.letter == "W"
    finally:
        session.close()


def test_a_16_bit_png_upload_is_read_at_its_real_brightness(tmp_path):
    """A 16-bit grey PNG came out white: PIL's convert('RGB') clips its I;16 values at 255 instead of scaling them."""
    import cv2

    from realtime.demo_uploads import load_image

    grey = np.tile(np.linspace(0, 255, 320).astype(np.uint8), (240, 1))
    cv2.imwrite(str(tmp_path / "grey16.png"), grey.astype(np.uint16) * 257)
    colour = np.dstack([grey, 255 - grey, np.full_like(grey, 90)])
    cv2.imwrite(str(tmp_path / "colour16.png"), colour.astype(np.uint16) * 257)
    img = load_image(tmp_path / "grey16.png")
    assert img.dtype == np.uint8 and img.shape == (240, 320, 3)
    assert np.abs(img[..., 0].astype(int) - grey).max() <= 1
    img = load_image(tmp_path / "colour16.png")
    assert np.abs(img.astype(int) - cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)).max() <= 1


# -- the same, in the real page --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_server(tmp_path_factory):
    """``fingerspell demo`` with one stream place and a 5 s time limit: its URL."""
    with test_demo.served_demo(tmp_path_factory.mktemp("gradio-cache"), "--max-streams", "1",
                               "--time-limit", "5") as server:
        yield server.url


def press(cam, now: str) -> None:
    """Click the streaming webcam's button once it shows ``now`` ('start recording': Record, 'stop recording': Stop).
    Record waits for the camera's picture: a click before it is ignored."""
    cam.locator(f"button[aria-label='capture photo'] [title='{now}']").wait_for(timeout=15_000)
    if now == "start recording":
        cam.locator("video").evaluate("v => new Promise(ok => v.readyState >= 2 ? ok() : "
                                      "v.addEventListener('loadeddata', () => ok(), {once: true}))")
    cam.get_by_role("button", name="capture photo").click()


LATENCY = "(document.querySelector('#fs-latency')?.innerText || '')"


def recording(browser, url: str, camera: str = "#fs-cam"):
    """A new page of the demo with ``camera``'s webcam turned on and recording: (page, camera locator)."""
    page = browser.new_page()
    page.goto(url)
    cam = page.locator(camera)
    cam.get_by_text("Click to Access Webcam").click()
    press(cam, "start recording")
    return page, cam


def test_browser_record_at_once_after_stop_at_the_time_limit_goes_on(browser, short_server):
    page, cam = recording(browser, short_server)
    page.wait_for_function(f"() => {LATENCY}.includes('reached its 5 seconds limit')", timeout=60_000)
    press(cam, "stop recording")
    press(cam, "start recording")  # at once: the page turns the camera back on by itself
    page.wait_for_function(f"() => {LATENCY}.includes(' processed') && !{LATENCY}.includes('reached')",
                           timeout=15_000)
    press(cam, "stop recording")
    page.close()


def test_browser_a_stream_stops_when_its_tab_is_left_and_gives_its_place_to_the_other(browser, short_server):
    """One stream place: the Live tab's stream, left running when the user goes to Calibrate, held it (and the CPU),
    so the calibration waited in the queue."""
    page, cam = recording(browser, short_server)
    page.wait_for_function(f"() => {LATENCY}.includes(' processed')", timeout=60_000)
    page.get_by_role("tab", name="Calibrate").click()
    page.wait_for_function("() => !document.querySelector('#fs-cam [title=\"stop recording\"]')", timeout=3_000)
    cal = page.locator("#fs-cal-cam")
    cal.get_by_text("Click to Access Webcam").click()
    press(cal, "start recording")
    page.wait_for_function("() => (document.querySelector('#fs-cal-status')?.innerText || '').includes('recorded:')",
                           timeout=15_000)
    page.close()
