"""Personal calibration in the demo's Calibrate tab: record a profile in the browser, or upload one.

The tab's webcam stream (:func:`calibrate_frame`) counts a still hand as a sample of the letter asked for
(realtime.calibrate.CalibrationSession); its buttons (:func:`calibration_action`) redo, skip, go back, finish or
start over. A finished profile is used by the same tab's live recognition and offered for download; an uploaded
one (:func:`load_profile_file`) is checked against the model first. The reference photos shown while calibrating
(:func:`reference_photos`, :func:`reference_images`, also used by ``fingerspell calibrate``) are here too.
Apart from the live tab's session, which only holds the calibration and the profile.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from realtime.demo_capacity import StreamCapacity
from realtime.demo_session import (LiveSession, check_settings, demo_models, duration_words, fused_models,
                                   rejects_far_hands,
                                   keypoints_for, manifest, page_frame_to_bgr, past_recorded, split_model, stream_error,
                                   stream_gate, stream_of, take_frame)
from realtime.demo_uploads import fit_image
from realtime.hands.hand import WHICH_HAND as HANDS
from realtime.manifest import NO_LETTER, available_models


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
        profile.check_model(split_model(model)[0], m["sha256"], list(m["labels"]), m.get("features"))
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


def reference_photos(model: str, size: int = 88) -> list[tuple[str, str]]:
    """(letter, base64 JPEG) for one photo per letter from the model's first training dataset, when
    $FINGERSPELL_DATASETS holds it: the datasets are not shipped, so without them the chart is letters only.
    Made once per model (a calibration frame asks for them every frame)."""
    return list(_reference_photos(model, size, os.environ.get("FINGERSPELL_DATASETS")))


@lru_cache(maxsize=16)
def _reference_photos(model: str, size: int, root: str | None) -> tuple[tuple[str, str], ...]:
    import base64
    import csv

    import cv2

    data = (manifest(model).get("training") or {}).get("data") or []
    if isinstance(data, dict):  # a sequence model: the datasets its letter dictionary came from
        data = [data]
    if any(isinstance(d, dict) for d in data):  # ... or of each set it was trained on (joint training)
        data = list(dict.fromkeys(s for d in data if isinstance(d, dict)
                                  for s in (d.get("dictionary") or {}).get("sources", [])))
    folders = [Path(root) / d for d in data if (Path(root) / d / "manifest.csv").is_file()] if root else []
    if not folders:  # no datasets here, or landmark-only ones (no photos)
        return ()
    folder = folders[0]
    try:
        with open(folder / "manifest.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return ()
    out = []
    for label in manifest(model)["labels"]:
        row = next((r for r in rows if r.get("label") == label), None)
        img = cv2.imread(str(folder / row["path"])) if row else None
        if img is not None:
            ok, buf = cv2.imencode(".jpg", fit_image(img, size), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                out.append((label, base64.b64encode(buf.tobytes()).decode("ascii")))
    return tuple(out)


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
    model = session.calibration_model or model  # the letter's photo from the calibration's own model
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
            f"({' '.join(letters)}) · profile for {p.model}" + (f" · *{note}*" if note else ""))


def calibrate_frame(frame, session: LiveSession | None, model: str, hand: str, hold_s: float, min_confidence: float,
                    per_letter=5, letters: str = "", hands: str = "mediapipe", time_limit: float | None = None,
                    capacity: StreamCapacity | None = None, stamp: str | None = None):
    """One webcam frame of the Calibrate tab -> (annotated frame, panel, profile file, live tab's profile line,
    session). A still hand is a sample of the letter asked for (realtime.calibrate.CalibrationSession); when every
    letter is done the profile is made, used in the live tab and offered as a file. ``stamp``: the page's (for its
    Record count, stream_of). Calibration reads no words, so the word list stays the one the live tab's recognizer has
    now, which is then not rebuilt for it. A frame that fails says why in the panel (stream_error)."""
    import cv2
    import gradio as gr

    from realtime.calibrate import draw_calibration, sample_of

    session, skip = take_frame(frame, session)
    if skip:
        return skip
    try:
        t = session.clock()
        gate, busy = stream_gate(session, t, time_limit, capacity, stream_of(stamp))
        if gate == "limit":
            return (gr.skip(), calibration_html(session, model, t, f"This stream reached its "
                    f"{duration_words(time_limit)} limit. Press Stop, then Record to go on: what was recorded "
                    "is kept."), gr.skip(), gr.skip(), session)
        if gate == "wait":
            return gr.skip(), calibration_html(session, model, t, busy.replace("**", "")), gr.skip(), gr.skip(), session
        try:
            # the live tab's word list and far-hand refusal are kept, so its recognizer is not rebuilt for calibration
            # (the samples are features; a profile reads through the embedding, never the refusal)
            live = session.settings
            settings = check_settings(model, hand, hold_s, min_confidence, hands,
                                      live.word_list if live is not None else None,
                                      live is not None and live.reject_far and rejects_far_hands(model))
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
            past_recorded(cal)
            shown = cv2.cvtColor(draw_calibration(bgr, cal, t, found, mirror=True, photos=reference_images(model),
                                                  hint=None),
                                 cv2.COLOR_BGR2RGB)
            path = session.finish_calibration() if cal.done and not was_done else None
        except Exception as e:  # noqa: BLE001 - said in the panel, the stream goes on
            why = stream_error(session, e, "What was recorded is kept.").replace("**", "")
            return gr.skip(), calibration_html(session, model, t, why), gr.skip(), gr.skip(), session
        session.server_ms.append((session.clock() - t) * 1000)  # this stream's load (StreamCapacity)
        note = ("All letters done: this tab's live recognition now uses the profile. Download it below. "
                + check_sentence(session) if cal.done and session.profile is not None else session.calibration_notice(t))
        return shown, calibration_html(session, model, t, note), path or gr.skip(), profile_markdown(session), session
    finally:
        session.lock.release()


CALIBRATION_ACTIONS = ("redo", "skip", "back", "finish", "restart")


def check_sentence(session: LiveSession) -> str:
    """The last Finish's self-check as a sentence of the panel (empty when there is none)."""
    check = session.calibration_check.rstrip(".")
    return f"{check[:1].upper()}{check[1:]}." if check else ""


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
            session.forget_calibration(model, hand)
        cal = session.calibration_for(model, hand, _per_letter(per_letter), parse_letters(letters, model))
        t, was_done, path = session.clock(), cal.done, None
        note = session.calibration_notice(t)
        if action == "redo":
            cal.redo()
        elif action == "skip":
            cal.skip(t)
        elif action == "back":
            cal.back()
        past_recorded(cal)
        if action == "finish" or (cal.done and not was_done):
            path = session.finish_calibration()
            note = ("The profile is made: this tab's live recognition now uses it. Download it below. "
                    + check_sentence(session) if path else "Nothing recorded yet: sign at least one letter before Finish.")
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
