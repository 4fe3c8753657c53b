"""The live loop: capture -> recognise -> show (or write JSON lines), until the source ends or the user quits."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from realtime.capture import SourceError, SourceTimeout, ThreadedCapture, _Reader, make_reader
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


class PartialFile:
    """A text file written beside PATH and moved into place when closed.

    A run that fails before writing anything (a mistyped --source, a bad model) leaves an earlier PATH as it
    was and no 0-byte file; an interrupted run keeps the lines it wrote.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._f = open(self.tmp, "x", encoding="utf-8")
        self.lines = 0

    def write_line(self, line: str) -> None:
        self._f.write(line + "\n")
        self.lines += 1

    def close(self) -> None:
        self._f.close()
        if not self.lines:
            self.tmp.unlink()
            return
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:  # the lines are kept where they were written, and the message says where
            raise OSError(f"cannot move the results into {self.path} ({e.strerror}); they are kept in "
                          f"{self.tmp}") from e

    def __enter__(self) -> "PartialFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReadingStats:
    """What the frames showed, so that an empty result can say why it is empty."""

    def __init__(self, min_confidence: float):
        self.min_confidence = min_confidence
        self.frames = self.hand_frames = 0
        self.longest: tuple[str, float] | None = None  # the letter read longest without a break, and for how long
        self._reading, self._since = None, 0.0

    def add(self, result) -> None:
        self.frames += 1
        self.hand_frames += result.hand is not None
        confident = result.letter is not None and result.confidence >= self.min_confidence
        reading = result.letter if confident else None
        if reading != self._reading:
            self._reading, self._since = reading, result.t
        if reading is not None and (self.longest is None or result.t - self._since > self.longest[1]):
            self.longest = (reading, result.t - self._since)

    def why_empty(self, hold_s: float | None) -> str:
        """Why nothing was typed; ``hold_s`` None: a reader that needs no hold (the sequence reader)."""
        if not self.hand_frames:
            return f"no text: no hand was seen in any of the {self.frames} frames"
        if self.longest is None:
            return (f"no text: a hand was seen in {self.hand_frames} of {self.frames} frames, but no letter was read"
                    + (f" with confidence {self.min_confidence:g} or more (--min-confidence)" if self.min_confidence
                       else ""))
        letter, held = self.longest
        if hold_s is None:
            return (f"no text: letters were seen (the longest, {letter}, for {held:.2f} s), but the sequence reader "
                    "typed none of them")
        return (f"no text: letters were seen (the longest, {letter}, for {held:.2f} s), but none was held for "
                f"{hold_s:g} s (--hold)")


# Ctrl-C, and the signals of `kill`, `timeout` and a closed terminal: each ends the run the same clean way
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def finish_on_ctrl_c(stack: ExitStack) -> dict:
    """From here until ``stack`` closes, Ctrl-C (or SIGTERM, SIGHUP) sets ``["flag"]`` (the loop finishes its frame
    and leaves cleanly, keeping what it wrote and printing the text) instead of killing the process; the previous
    handlers come back when the stack closes."""
    stop = {"flag": False}

    def on_signal(*_):
        stop["flag"] = True

    for sig in STOP_SIGNALS:
        stack.callback(signal.signal, sig, signal.getsignal(sig))
        signal.signal(sig, on_signal)
    return stop


def next_frame(cap: ThreadedCapture, stop: dict, timeout: float = 10.0, poll: float = 0.2):
    """The next frame, or None when the source ended or a stop signal came. Waits in short slices, so that Ctrl-C
    is seen at once even while a camera or stream is stalled; SourceError after ``timeout`` s without a frame."""
    waited = 0.0
    while not stop["flag"]:
        try:
            return cap.read(timeout=min(poll, timeout - waited))
        except SourceTimeout:
            waited += poll
            if waited >= timeout:
                raise SourceTimeout(f"no frame from the source for {timeout:g} s") from None
    return None


def hold_needed(speller) -> float | None:
    """The seconds a letter must be held to be typed, or None for a reader that types without a hold."""
    from realtime.speller import Speller

    return speller.config.hold_s if isinstance(speller, Speller) else None


def confidence_needed(speller) -> float:
    """The probability a reading needs to count (--min-confidence): the speller's, or the sequence reader's own
    (``min_confidence``, 0 by default), which its ``config`` does not hold."""
    own = getattr(speller, "min_confidence", None)
    return own if own is not None else speller.config.min_confidence


@dataclass
class LiveRun:
    text: str
    frames: int
    interrupted: bool = False  # Ctrl-C
    ended_early: str | None = None  # the file stopped before the end its container promised
    corrupt: int = 0
    why_empty: str | None = None  # set when text is empty
    error: str | None = None  # the source failed mid-run (a camera unplugged, a stream that stalled); text is kept

    @property
    def lost_frames(self) -> bool:
        return bool(self.ended_early or self.corrupt)


def run_live(recognizer: Recognizer, source: str | _Reader, window: bool = True, jsonl: str | Path | None = None,
             mirror: bool = True, max_frames: int | None = None, width: int | None = None,
             height: int | None = None, show_timing: bool = True, folder_fps: float = 30.0) -> LiveRun:
    """Run until the source ends, 'q' is pressed or Ctrl-C.

    The source is opened before --jsonl is created. Raises :class:`realtime.capture.SourceError` if it
    cannot be opened.
    """
    import cv2

    from realtime.overlay import draw

    fps = FpsMeter()
    stats = ReadingStats(confidence_needed(recognizer.speller))
    t_start = time.perf_counter()
    with ExitStack() as stack:  # releases, in reverse order, whatever was acquired, even if a later step fails
        stop = finish_on_ctrl_c(stack)  # set before any file is opened
        stack.callback(recognizer.close)
        reader = source if isinstance(source, _Reader) else make_reader(source, width, height, folder_fps)
        cap = stack.enter_context(ThreadedCapture(reader))
        out = stack.enter_context(PartialFile(jsonl)) if jsonl else None
        if window:
            stack.callback(cv2.destroyAllWindows)
        error = None
        while not stop["flag"]:
            try:
                frame = next_frame(cap, stop)
            except SourceError as e:  # what was spelled so far is still the result, and is printed
                error = str(e)
                break
            if frame is None:
                break
            timer = StageTimer()
            timer.ms["capture"] = frame.decode_ms
            # Files: the frame's media time, so results don't depend on machine speed.
            t = frame.media_t if frame.media_t is not None else frame.t
            result = recognizer.process(frame.image, t, timer)
            stats.add(result)
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
                out.write_line(json.dumps(rec))
            if max_frames and stats.frames >= max_frames:
                break
        dropped, corrupt, ended_early = cap.dropped, cap.corrupt, cap.ended_early
    elapsed = time.perf_counter() - t_start
    frames = stats.frames
    print(f"{frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} FPS); "
          f"{dropped} stale frames dropped, {corrupt} corrupt frames skipped"
          + (f"; {ended_early}" if ended_early else ""), file=sys.stderr)
    recognizer.speller.finish()
    text = recognizer.speller.text
    why = stats.why_empty(hold_needed(recognizer.speller)) if not text.strip() else None
    return LiveRun(text, frames, stop["flag"], ended_early, corrupt, why, error)


def run_live_streams(recognizer, readers: list[_Reader], window: bool = True, jsonl: str | Path | None = None,
                     mirror: bool = True, max_frames: int | None = None, show_timing: bool = True) -> list[LiveRun]:
    """Several cameras (or files) at once through one :class:`realtime.streams.MultiStreamRecognizer`: each step
    takes the newest frame of every source, reads them in one batched step, and shows them side by side (or
    writes JSON lines with a ``stream`` field). Each stream is timed by its own clock (a file by its own media
    time). Ends when any source ends (which it says), 'q' is pressed or Ctrl-C."""
    import cv2
    import numpy as np

    from realtime.overlay import draw

    fps = FpsMeter()
    stats = [ReadingStats(confidence_needed(s)) for s in recognizer.spellers]
    t_start = time.perf_counter()
    corrupt, ended_early = 0, None
    with ExitStack() as stack:
        stop = finish_on_ctrl_c(stack)
        stack.callback(recognizer.close)
        caps = [stack.enter_context(ThreadedCapture(r)) for r in readers]
        out = stack.enter_context(PartialFile(jsonl)) if jsonl else None
        if window:
            stack.callback(cv2.destroyAllWindows)
        error = None
        while not stop["flag"]:
            try:
                frames = [next_frame(c, stop) for c in caps]
            except SourceError as e:
                error = str(e)
                break
            if stop["flag"]:
                break
            if any(f is None for f in frames):
                ended = [i for i, f in enumerate(frames) if f is None]
                print(f"stream {', '.join(map(str, ended))} ended after {stats[ended[0]].frames} frames; the run stops "
                      "when any source ends", file=sys.stderr)
                break
            results = recognizer.process([f.image for f in frames],
                                         [f.media_t if f.media_t is not None else f.t for f in frames])
            for s, r in zip(stats, results):
                s.add(r)
            rate = fps.tick(time.perf_counter())
            if window:
                tiles = [draw(f.image, r, rate, mirror=mirror, show_timing=show_timing, hint=None)
                         for f, r in zip(frames, results)]
                height = min(tile.shape[0] for tile in tiles)
                tiles = [cv2.resize(tile, (int(tile.shape[1] * height / tile.shape[0]), height)) for tile in tiles]
                cv2.imshow("fingerspell", np.hstack(tiles))
                if (cv2.waitKey(1) & 0xFF) in KEY_QUIT:
                    break
            if out:
                for i, (f, r) in enumerate(zip(frames, results)):
                    rec = r.to_json()
                    rec.update(stream=i, frame=f.index, fps=round(rate, 2))
                    out.write_line(json.dumps(rec))
            if max_frames and stats[0].frames >= max_frames:
                break
        corrupt = sum(c.corrupt for c in caps)
        ended_early = "; ".join(c.ended_early for c in caps if c.ended_early) or None
    elapsed = time.perf_counter() - t_start
    steps = stats[0].frames
    print(f"{len(caps)} streams, {steps} steps in {elapsed:.1f} s ({len(caps) * steps / max(elapsed, 1e-9):.1f} "
          f"frames/s in total)", file=sys.stderr)
    runs = []
    for speller, s in zip(recognizer.spellers, stats):
        speller.finish()
        text = speller.text
        runs.append(LiveRun(text, s.frames, stop["flag"], ended_early, corrupt,
                            s.why_empty(hold_needed(speller)) if not text.strip() else None, error))
    return runs
