"""The Upload tab of the demo: an image or a video file, recognised.

An image (:func:`analyse_image`) gives its letter and top readings on the photo detectors, like ``fingerspell
eval``; a video (:func:`analyse_video`) is read frame by frame on its own timestamps, like ``fingerspell live
--source`` (with the word list chosen, if any: ``--lexicon``), and gives the transcript and a per-frame confidence
chart (:func:`confidence_chart`); a photo is read without the word list (a single letter is no word). Files are checked
before they are decoded (:func:`load_image` refuses huge images, :func:`video_container` asks for a real video
container). Apart from the live tab: nothing here keeps state between requests.
"""
from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.demo_session import NO_WORD_LIST, Settings, check_settings, make_recognizer
from realtime.manifest import NO_LETTER
from realtime.pipeline import StageTimer

MAX_IMAGE_PIXELS = 50_000_000  # refused above this (a 50-megapixel photo is already far more than a hand needs)
MAX_SIDE = 1920  # larger images and video frames are downscaled to this longer side before recognition
MAX_VIDEO_FRAMES = 3600  # two minutes at 30 fps; longer videos are cut with a warning


def fit_image(img: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """``img`` downscaled to at most ``max_side`` pixels a side (as it is if it fits): uploads, and the reference
    photos (realtime.demo_calibration)."""
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
        if max(w, h) > MAX_ASPECT * max(min(w, h), 1):
            raise gr.Error(f"{name} is {w}×{h} pixels: a strip that thin cannot hold a hand. Upload a photo of the "
                           f"hand (at most {MAX_ASPECT}:1).")
        if getattr(im, "n_frames", 1) > 1:  # an animated GIF or WebP: a video, not one photo
            if im.format == "GIF":
                return None  # read frame by frame as a video
            gr.Warning(f"{name} is animated; only its first frame was read.")
        try:
            img = rgb_of(ImageOps.exif_transpose(im))  # phone photos: their saved rotation
        except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt
            raise gr.Error(f"{name} looks like an image but cannot be decoded ({e}).") from None
    if max(w, h) > MAX_SIDE:
        gr.Warning(f"{name} is {w}×{h} pixels: downscaled to at most {MAX_SIDE} pixels a side for recognition.")
        img = fit_image(img)
    return img


MAX_ASPECT = 12  # a longer side more than this many times the shorter: no hand fits, refused


def rgb_of(im) -> np.ndarray:
    """A PIL image as 8-bit RGB. PIL's convert('RGB') clips a 16-bit grey image (mode I;16, or I) at 255 instead of
    scaling it, so a 16-bit grey PNG came out white: its values are scaled to 8 bits here. (16-bit colour PNGs PIL
    already reads as 8-bit RGB.)"""
    if not (im.mode.startswith("I;16") or im.mode == "I"):
        return np.asarray(im.convert("RGB"))
    grey = np.asarray(im).astype(np.float32)
    if im.mode != "I" or grey.max() > 255:  # 16 bits a value (an 8-bit image stored as I stays as it is)
        grey /= 257.0
    grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.dstack([grey] * 3)


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
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"  # animated: OpenCV reads its frames
    return None


def top_readings(rec, probs: np.ndarray, k: int = 5) -> dict[str, float]:
    order = np.argsort(probs)[::-1][:k]
    return {rec.labels[i]: float(probs[i]) for i in order}


def analyse_image(img_rgb: np.ndarray, settings: Settings):
    """A photo -> (annotated image, top readings, letter, summary): the static-image path of ``fingerspell eval``
    (which has no ``--lexicon``: the word list, if one is chosen, is not used for a photo)."""
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
            img = fit_image(img)
            t = reader.position_s if reader.position_s is not None else len(frames) / (reader.fps or 30.0)
            r = rec.process(img, t)
            frames.append(VideoFrame(t, r.letter, r.confidence, r.committed, r.hand is not None))
            if r.hand is not None and (r.committed or (not committed and r.confidence > best)):
                committed, best = committed or bool(r.committed), r.confidence  # show the last commit's frame
                shown = cv2.cvtColor(draw(img, r, show_timing=False, hint=None), cv2.COLOR_BGR2RGB)  # (or the surest)
            if progress is not None and (len(frames) % 5 == 0 or len(frames) == total):
                progress(len(frames), max(total, len(frames)))
        truncated = reader.grab() is not None if len(frames) >= max_frames else False
        damaged = reader.ended_early or (f"{reader.corrupt} corrupt frames were skipped" if reader.corrupt else None)
        rec.speller.finish()  # the input ended: the last word is done (corrected with a word list), as in live
        return frames, rec.speller.text, shown, truncated, damaged


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
                   hands: str = "mediapipe", word_list: str | None = NO_WORD_LIST, reject_far: bool | None = False):
    """The Upload tab: an image or a video file -> (annotated image, top readings, transcript, chart, summary).
    ``hands``: the app's hand pipeline (build_app binds it); ``word_list``: a name of demo_session.WORD_LISTS, used
    for videos (a photo is read without it); ``reject_far``: refuse hands far from every learned letter."""
    import gradio as gr

    from realtime.capture import SourceError

    if not path:
        raise gr.Error("Choose an image or a video file first.")
    path = getattr(path, "name", path)  # gr.File may hand over a file object
    settings = check_settings(model, hand, hold_s, min_confidence, hands, word_list, reject_far)
    name = Path(path).name
    img = load_image(path)
    if img is not None:
        shown, readings, letter, summary = analyse_image(img, settings)
        if settings.lexicon:
            summary += (f"  \n*The word list ({settings.word_list}) is not used for a photo: it corrects words spelled "
                        "in a video or live.*")
        return shown, readings, letter, None, summary
    not_media = gr.Error(f"{name} is neither an image nor a video this demo can read. Upload a photo (JPEG, PNG, "
                         "…) or a video (MP4, WebM, MOV, AVI, …).")
    if video_container(path) is None:
        raise not_media
    try:
        frames, text, shown, truncated, damaged = analyse_video(
            path, settings, progress=(lambda i, n: progress((i, n), desc="frames", unit="frames")) if progress else None)
    except SourceError as e:  # a video container that cannot be read: say why, as `fingerspell live` does
        raise gr.Error(f"{name} cannot be read as a video: {e}. Is it cut off or empty?") from None
    with_hand = sum(f.hand for f in frames)
    if truncated:
        gr.Warning(f"Only the first {len(frames)} frames of {name} were processed.")
    if damaged:
        gr.Warning(f"{name}: {damaged}")
    if with_hand == 0:
        return None, None, "", None, (f"**No hand found in {len(frames)} frames** of {name}. Film the hand so that "
                                      f"it is clearly visible, from the wrist up.")
    chart = confidence_chart(frames, settings.min_confidence)
    dur = frames[-1].t if frames else 0.0
    summary = (f"{len(frames)} frames ({dur:.1f} s): a hand in {with_hand}; spelled **{text.strip() or '(nothing)'}**"
               + ("" if text.strip() else f" — no letter was held for {settings.hold_s} s above "
                                          f"{settings.min_confidence:.0%} confidence"))
    return shown, None, text, chart, summary
