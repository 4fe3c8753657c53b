"""The browser demo (``fingerspell demo``): the live path of ``fingerspell live`` behind a Gradio page.

Two tabs:

- **Live**: the webcam streams frames to the server (``gr.Image(streaming=True)``); each frame goes
  through the same :class:`~realtime.pipeline.Recognizer` as ``fingerspell live`` and comes back
  annotated, with the spelled text and the milliseconds per stage.
- **Upload**: an image (the letter, its top readings) or a video (processed frame by frame with a
  progress bar: the transcript and a per-frame confidence chart).

The settings above the tabs (model, hand, hold time, confidence threshold, word list) apply to every tab; the word list
(``--lexicon``) corrects words in the live stream and in videos, not in photos.

Latest frame wins. Gradio keeps one pending frame per stream and replaces it when a newer one
arrives, so frames never queue up behind a slow one; on top of that each tab's
:class:`~realtime.demo_session.LiveSession` holds a lock, and a frame that arrives while another is being processed is
dropped, not queued. The page numbers its frames and stamps them with the capture time
(:data:`ROUND_TRIP_JS`); the server echoes the stamp back, so the page measures the real round trip
(capture -> server -> annotated frame on screen) and the server counts the frames that newer ones
replaced.

Each browser tab has its own recognizer and speller (``gr.State``); at most ``max_streams`` tabs
stream at once, the others wait in Gradio's queue and see their place in it.

This module is the page: its layout, its handlers wired to Gradio, the server's start and stop (:func:`launch`).
The rest is in modules of one job each: realtime.demo_session (settings, a tab's recognizer and live stream),
realtime.demo_capacity (how many streams run at once, the wait estimates), realtime.demo_calibration (the
Calibrate tab), realtime.demo_uploads (the Upload tab) and realtime.demo_files (the server's temporary files).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from functools import lru_cache

import numpy as np

from realtime import demo_files
from realtime.demo_calibration import (calibrate_frame, calibration_action, calibration_html, load_profile_file,
                                       profile_for_model, profile_markdown, reference_photos, stop_profile)
from realtime.demo_capacity import StreamCapacity, patch_queue_estimates
from realtime.demo_files import DemoFiles
from realtime.demo_session import (IDLE_RELEASE_S, NO_WORD_LIST, WORD_LISTS, backspace_text, clear_text,
                                   close_session, demo_models, duration_words, free_tab, idle_sweep, keypoints_for,
                                   live_frame, manifest, model_choices, rejects_far_hands)
from realtime.demo_uploads import analyse_upload
from realtime.hands.hand import WHICH_HAND as HANDS
from realtime.manifest import NO_LETTER, weights_dir

log = logging.getLogger("fingerspell.demo")

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Numbers each webcam frame, stamps it with its capture time, the last round trip and how many times Record was
# pressed, and measures the round trip when the server's echo of a stamp comes back with the annotated frame.
# Gradio's streaming webcam encodes each frame with canvas.toDataURL("image/jpeg"), so that call marks the moment of
# capture. The Record count tells the server a new stream, however soon after Stop (demo_session.stream_of).
ROUND_TRIP_JS = """
<script>
(() => {
  let n = 0, lastEcho = "", rtt = "", records = 0;
  const box = (id) => document.querySelector(`#${id} textarea, #${id} input`);
  const orig = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (type, ...rest) {
    const stamp = box("fs-stamp");
    if (type === "image/jpeg" && stamp) {
      n += 1;
      stamp.value = `${n}:${Date.now()}:${rtt}:${records}`;
      stamp.dispatchEvent(new Event("input", {bubbles: true}));
    }
    return orig.call(this, type, ...rest);
  };
  // Stop turns Gradio's streaming webcam off: Record again would need "Click to Access Webcam" first. Once a
  // camera of this page has streamed, it is switched back on by itself, so Stop then Record is one click each.
  const used = new Set();
  const button = (cam) => cam?.querySelector("button[aria-label='capture photo']");
  document.addEventListener("click", (e) => {
    const cam = e.target.closest?.("#fs-cam, #fs-cal-cam");
    const record = cam && e.target.closest("button[aria-label='capture photo']");
    if (!record) return;
    used.add(cam.id);
    if (record.querySelector("[title='start recording']")) records += 1;  // Record, not Stop: a new stream
  }, true);
  setInterval(() => {
    // A stream left running in a tab the user moved away from (Live, Calibrate) is stopped: it would hold one of
    // the server's stream places and its CPU for nothing. Record goes on with the same text.
    for (const cam of document.querySelectorAll("#fs-cam, #fs-cal-cam")) {
      const on = button(cam)?.querySelector("[title='stop recording'], [title='spinner']");
      if (on && cam.offsetParent === null) button(cam).click();
    }
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
            " (in this alphabet they are movements, not hand shapes).</p>" if missing else "")
    if m.get("kind") == "sequence-reader":
        trained = ("synthetic stitched sequences only" if (m.get("training") or {}).get("synthetic_only", True) else
                   "synthetic stitched motion and real hands held still, never on real fingerspelling video")
        motion = " and ".join(c for c in ("J", "Z") if c in labels)
        note += ("<p>A sequence model types letters as it recognises them in the motion"
                 f"{f', {motion} included' if motion else ''}, with no "
                 f"hold. Experimental: trained on {trained}. The hold time and the confidence threshold are for the "
                 "letter models; this one types every letter it reads.</p>")
    photos = "".join(f'<figure><img src="data:image/jpeg;base64,{b64}" alt="{c}"><figcaption>{c}</figcaption></figure>'
                     for c, b64 in reference_photos(model))
    if photos:
        photos = f'<p>One photo per letter from its training data:</p><div class="fs-photos">{photos}</div>'
    return f'<div class="fs-letters">{tiles}</div>{more}{note}{photos}'


WORD_LIST_INFO = ("live and videos only (not photos): when a word ends, a misread letter inside a listed word is "
                  "corrected; other words are still spelled, but a name one letter from a listed word may change")


REJECT_FAR_INFO = ("a hand far from every learned letter is read as no letter: fewer stray letters, a few more "
                   "missed; not with a profile")
NO_REJECT_FAR_INFO = "only for a keypoint model with a letter distance (asl-letters)"


def on_model_change(model: str):
    """A J2S model cannot tell left from right hands: the hand selector is locked to 'any' for it. Refusing far hands
    is offered only for a model that can (demo_session.rejects_far_hands); for another it is unticked."""
    import gradio as gr

    j2s = keypoints_for(model) == "j2s"
    hand = gr.update(value="any", interactive=False, info="J2S cannot tell left from right hands") if j2s else \
        gr.update(interactive=True, info="which hand spells; 'any' takes the largest hand in view")
    far = gr.update(interactive=True, info=REJECT_FAR_INFO) if rejects_far_hands(model) else \
        gr.update(value=False, interactive=False, info=NO_REJECT_FAR_INFO)
    return hand, far, reference_html(model)


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
            word_list = gr.Dropdown(list(WORD_LISTS), value=NO_WORD_LIST, label="Word list", scale=2,
                                    elem_id="fs-word-list", info=WORD_LIST_INFO)
            able = rejects_far_hands(default)
            reject_far = gr.Checkbox(False, label="Refuse far hands", scale=2, elem_id="fs-reject-far",
                                     interactive=able, info=REJECT_FAR_INFO if able else NO_REJECT_FAR_INFO)
        settings = [model, hand, hold, min_conf, word_list, reject_far]
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
                        f"stops after {duration_words(time_limit)} (the time it waited is not counted: press Stop, then "
                        f"Record to go on) and when you switch to another tab (press Record when you are back)."
                        f"</small>")
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

        def stream_frame(frame, session, model, hand, hold, min_conf, word_list, reject_far, stamp):
            shown, *rest = live_frame(frame, session, model, hand, hold, min_conf, stamp, hands=hands,
                                      time_limit=time_limit, capacity=capacity, word_list=word_list,
                                      reject_far=reject_far)
            return frame_html(shown), *rest

        cam.stream(_friendly(stream_frame), inputs=[cam, session, *settings, stamp],
                   outputs=[live_out, text, latency, echo, session], stream_every=stream_every,
                   time_limit=time_limit, concurrency_limit=max_streams, concurrency_id="live",
                   show_progress="full", show_progress_on=[live_out])  # a queued tab sees its place there
        clear.click(_friendly(clear_text), inputs=session, outputs=text, queue=False)
        backspace.click(_friendly(backspace_text), inputs=session, outputs=text, queue=False)
        model.change(_friendly(on_model_change), inputs=model, outputs=[hand, reject_far, chart])
        model.change(_friendly(profile_for_model), inputs=[session, model], outputs=[profile_line, session],
                     queue=False)

        def calibration_stream(frame, session, model, hand, hold, min_conf, word_list, reject_far, k, letters, stamp):
            # neither the word list nor the far-hand refusal is passed: calibration keeps the live tab's (its
            # recognizer is not rebuilt for them)
            shown, *rest = calibrate_frame(frame, session, model, hand, hold, min_conf, k, letters, hands=hands,
                                           time_limit=time_limit, capacity=capacity, stamp=stamp)
            return frame_html(shown), *rest

        cal_cam.stream(_friendly(calibration_stream), inputs=[cal_cam, session, *settings, cal_k, cal_letters, stamp],
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

        def run_upload(path, model, hand, hold, min_conf, word_list, reject_far,
                       progress=gr.Progress()):  # noqa: B008 - Gradio injects it
            return analyse_upload(path, model, hand, hold, min_conf, progress=progress, hands=hands,
                                  word_list=word_list, reject_far=reject_far)

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
    threading.Thread(target=idle_sweep, args=(stop, idle_s, min(60.0, idle_s / 4)), daemon=True,
                     name="fingerspell-idle-sweep").start()
    app.fs_stop_sweep = stop
    return app


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
    if not log.handlers:  # the server's own lines (tabs closed and freed) on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("fingerspell demo: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    import atexit
    import signal

    files = demo_files.current = DemoFiles()
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
        demo_files.current = None
