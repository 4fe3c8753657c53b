"""The live loop: capture -> recognise -> show (or write JSON lines), until the source ends or the user quits."""
from __future__ import annotations

import json
import signal
import sys
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path

from realtime.capture import ThreadedCapture, make_reader
from realtime.pipeline import Recognizer, StageTimer

KEY_QUIT = {ord("q"), 27}
KEY_CLEAR = {ord("c")}
KEY_BACKSPACE = {8, 127, ord("b")}


class FpsMeter:
    def __init__(self, window: int = 30):
        self.times: deque[float] = deque(maxlen=window)

    def tick(self, t: float) -> float:
        self.times.append(t)
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)


def run_live(recognizer: Recognizer, source: str, window: bool = True, jsonl: str | Path | None = None,
             mirror: bool = True, max_frames: int | None = None, width: int | None = None,
             height: int | None = None, show_timing: bool = True, folder_fps: float = 30.0) -> str:
    """Run until the source ends, 'q' is pressed or Ctrl-C; returns the spelled text.

    Raises :class:`realtime.capture.SourceError` if the source cannot be opened.
    """
    import cv2

    from realtime.overlay import draw

    fps = FpsMeter()
    frames = 0
    t_start = time.perf_counter()
    stop = {"flag": False}

    def on_sigint(*_):  # finish the frame, then leave cleanly
        stop["flag"] = True

    with ExitStack() as stack:  # releases, in reverse order, whatever was acquired, even if a later step fails
        stack.callback(recognizer.close)
        out = stack.enter_context(open(jsonl, "w", encoding="utf-8")) if jsonl else None
        cap = stack.enter_context(ThreadedCapture(make_reader(source, width, height, folder_fps)))
        if window:
            stack.callback(cv2.destroyAllWindows)
        stack.callback(signal.signal, signal.SIGINT, signal.getsignal(signal.SIGINT))
        signal.signal(signal.SIGINT, on_sigint)
        while not stop["flag"]:
            frame = cap.read(timeout=10.0)
            if frame is None:
                break
            timer = StageTimer()
            timer.ms["capture"] = frame.decode_ms
            # Files: the frame's media time, so results don't depend on machine speed.
            t = frame.media_t if frame.media_t is not None else frame.t
            result = recognizer.process(frame.image, t, timer)
            rate = fps.tick(time.perf_counter())
            if window:
                with timer("overlay"):
                    shown = draw(frame.image, result, rate, mirror=mirror, show_timing=show_timing)
                result.ms = dict(timer.ms)
                cv2.imshow("fingerspell", shown)
                key = cv2.waitKey(1) & 0xFF
                if key in KEY_QUIT:
                    break
                if key in KEY_CLEAR:
                    recognizer.speller.clear()
                elif key in KEY_BACKSPACE:
                    recognizer.speller.backspace()
            if out:
                rec = result.to_json()
                rec.update(frame=frame.index, fps=round(rate, 2))
                out.write(json.dumps(rec) + "\n")
            frames += 1
            if max_frames and frames >= max_frames:
                break
        dropped, corrupt = cap.dropped, cap.corrupt
    elapsed = time.perf_counter() - t_start
    print(f"{frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} FPS); "
          f"{dropped} stale frames dropped, {corrupt} corrupt frames skipped", file=sys.stderr)
    return recognizer.speller.text
