"""The browser demo's handlers when the input is odd (found by a review): a thin strip that used to crash the
server, animated GIFs, cut-off videos, a damaged profile, a model change while a letter is held, time wording."""
import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the browser demo needs the demo extra (pip install -e '.[demo]')")


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
