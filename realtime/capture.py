"""Frame sources read on a background thread.

Live sources (camera, stream URL) keep only the newest frame: a slow frame never leaves a
queue of stale ones behind it. Files (video, image folder) hand over every frame in order, so
a recording gives the same result however fast the machine is. Corrupt frames are skipped
and counted, and a video that ends before the frame count its container promises (a file cut off
while it was copied or recorded) says so in ``ended_early``: partial text is never a silent result.

    with open_source("0") as cap:          # camera 0, a video path, an image folder, or a URL
        while (frame := cap.read()) is not None:
            ...
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from realtime.images import IMAGE_EXTENSIONS, read_image


class SourceError(RuntimeError):
    """The source cannot be opened (no camera, missing file, unreachable stream)."""


class SourceTimeout(SourceError):
    """No frame came within the time asked for (a stalled camera or stream); the caller may wait again."""


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
LIVE_GRACE_S = 2.0  # a camera or stream may fail to deliver for this long (a USB hiccup) before it counts as lost


@dataclass
class Frame:
    index: int
    t: float  # time.perf_counter() when it was captured
    image: np.ndarray  # BGR
    decode_ms: float
    media_t: float | None = None  # seconds into a file (video position; image folders: index / nominal fps)


def _valid(img) -> bool:
    return isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.size > 0


class _Reader:
    """Produces frames synchronously; ``None`` at the end. Subclasses: camera/video/stream, image folder."""

    live = False
    corrupt = 0
    position_s: float | None = None  # media time of the last grabbed frame, for files
    ended_early: str | None = None  # why a file stopped before its end, once grab() returned None

    def grab(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class VideoReader(_Reader):
    def __init__(self, spec: str | int, live: bool, width: int | None = None, height: int | None = None,
                 max_failures: int = 30, grace_s: float = LIVE_GRACE_S):
        import cv2

        self.spec, self.live, self.max_failures, self.grace_s = spec, live, max_failures, grace_s
        self.cap = cv2.VideoCapture(spec)
        if not self.cap.isOpened():
            kind = "camera" if isinstance(spec, int) else ("stream" if live else "video")
            raise SourceError(f"cannot open {kind} {spec!r}")
        if live:
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # no stale frames in the driver's queue either
        if width:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else 0
        fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = fps if 0 < fps < 1000 else 0.0  # some containers report nonsense (NaN, 90000, negative)
        self.corrupt = 0
        self.good = 0  # frames decoded
        self._first = None
        if not live:  # a file that opens but holds no decodable frame is a bad source, not an empty result
            self._first = self._read()
            if self._first is None:
                self.cap.release()
                raise SourceError(f"no readable frames in video {spec!r}")

    def grab(self) -> np.ndarray | None:
        if self._first is not None:
            img, self._first = self._first, None
            return img
        img = self._read()
        if img is None and not self.live:
            self.ended_early = self._check_complete()
        return img

    def _check_complete(self) -> str | None:
        """Frames seen against the container's count: a cut-off file decodes its first part and then just stops."""
        seen = self.good + self.corrupt
        slack = max(1, self.frame_count // 200)  # some containers only estimate their count from the duration
        if self.frame_count <= 0 or seen >= self.frame_count - slack:
            return None
        promised = f" ({self.frame_count / self.fps:.1f} s)" if self.fps > 0 else ""
        return f"the file ended early after {seen} of {self.frame_count} frames{promised}: is it cut off?"

    def _read(self) -> np.ndarray | None:
        import cv2

        failures, since = 0, time.monotonic()
        while True:
            ok, img = self.cap.read()
            if ok and _valid(img):
                self.corrupt += failures  # failures followed by a good frame were corrupt frames
                self.good += 1
                if not self.live:
                    self.position_s = self._media_time(cv2.CAP_PROP_POS_MSEC)
                return img
            pos = int(self.cap.get(cv2.CAP_PROP_POS_FRAMES))
            if not self.live and (self.frame_count <= 0 or pos >= self.frame_count):
                return None  # end of file
            failures += 1
            if self.live:  # a camera or stream: lost only after failing for grace_s, not after one hiccup
                if time.monotonic() - since >= self.grace_s and failures >= self.max_failures:
                    raise SourceError(f"{self.spec!r} stopped delivering frames (none for {self.grace_s:g} s)")
                time.sleep(0.01)
            elif failures >= self.max_failures:
                return None  # a truncated file: its header promised more frames than it holds

    def _media_time(self, prop: int) -> float:
        """The decoded frame's time in the file, always increasing: where the container gives none, a negative or
        a repeated one (raw MJPEG, some streams saved to disk), one frame period after the last frame's."""
        t = self.cap.get(prop) / 1000.0
        if self.position_s is None:
            return t if np.isfinite(t) and t >= 0 else 0.0
        if np.isfinite(t) and t > self.position_s:
            return t
        return self.position_s + 1.0 / (self.fps or 30.0)

    def close(self) -> None:
        self.cap.release()


class ImageFolderReader(_Reader):
    """Every image under a folder (recursively, sorted by path); unreadable files are skipped and counted."""

    def __init__(self, folder: Path, fps: float = 30.0):
        self.files = sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key)
        if not self.files:
            raise SourceError(f"no images in folder {str(folder)!r}")
        if not fps > 0:
            raise SourceError(f"an image folder plays at a frame rate above 0, not {fps}")
        self._i = 0
        self._good = 0
        self.corrupt = 0
        self.fps = fps  # nominal: image k is shown at k / fps, however fast the machine is
        self._first = self._next()  # a folder of unreadable files is a bad source, not an empty result
        if self._first is None:
            raise SourceError(f"none of the {len(self.files)} images in folder {str(folder)!r} can be read")

    def grab(self) -> np.ndarray | None:
        if self._first is not None:
            img, self._first = self._first, None
            return img
        return self._next()

    def _next(self) -> np.ndarray | None:
        while self._i < len(self.files):
            img = read_image(self.files[self._i])
            self._i += 1
            if img is not None:
                self.position_s = self._good / self.fps
                self._good += 1
                return img
            self.corrupt += 1
        return None


def natural_key(path: Path) -> list:
    """Sort key that puts frame2 before frame10 (numbers compared as numbers): how people number frames."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def make_reader(source: str | int, width: int | None = None, height: int | None = None,
                folder_fps: float = 30.0) -> _Reader:
    """Camera index ('0'), video file, image folder or stream URL -> a reader; SourceError if it cannot open.
    A URL that names a video file (``http://host/clip.mp4``) is read as a file: every frame, in order."""
    s = str(source).strip()
    if not s:
        raise SourceError("empty source: give a camera index, a video file, an image folder or a URL")
    if s.isdigit():
        return VideoReader(int(s), live=True, width=width, height=height)
    if "://" in s:
        is_file = urlsplit(s).path.lower().endswith(VIDEO_EXTENSIONS)
        return VideoReader(s, live=not is_file)
    p = Path(s).expanduser()
    if p.is_dir():
        return ImageFolderReader(p, folder_fps)
    if p.is_file():
        return VideoReader(str(p), live=False)
    raise SourceError(f"source {s!r} is not a camera index, an existing file or folder, or a URL")


class ThreadedCapture:
    """Reads frames on a thread. Live: newest frame only (older ones dropped and counted). Files: every frame."""

    def __init__(self, reader: _Reader):
        self.reader = reader
        self.live = reader.live
        self.dropped = 0
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._done = False
        self._error: Exception | None = None
        self._stop = False
        self._closed = False
        self._release_in_thread = False
        self._index = 0
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    @property
    def corrupt(self) -> int:
        return self.reader.corrupt

    @property
    def ended_early(self) -> str | None:
        return self.reader.ended_early

    def _run(self) -> None:
        try:
            while not self._stop:
                t0 = time.perf_counter()
                img = self.reader.grab()
                if img is None:
                    break
                frame = Frame(self._index, time.perf_counter(), img, (time.perf_counter() - t0) * 1000,
                              self.reader.position_s)
                self._index += 1
                with self._cond:
                    if not self.live:
                        while self._frame is not None and not self._stop:
                            self._cond.wait(0.1)  # files: wait until the consumer took the last one
                    elif self._frame is not None:
                        self.dropped += 1
                    self._frame = frame
                    self._cond.notify_all()
        except BaseException as e:  # surfaced to the consumer by read(), never mistaken for the end
            self._error = e
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
                release = self._release_in_thread
            if release:  # close() gave up waiting while grab() was blocked: release here, after it returned
                self.reader.close()

    def read(self, timeout: float = 5.0) -> Frame | None:
        """The next (live: newest) frame; None when the source has ended or was closed."""
        if self._closed:
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frame is None and not self._done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SourceTimeout(f"no frame from the source for {timeout:g} s")
                self._cond.wait(left)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
        if frame is None and self._error is not None:
            raise self._error
        return frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = self._stop = True
        with self._cond:
            self._frame = None
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        with self._cond:
            # still inside grab() (releasing under it is undefined in OpenCV): the thread releases the reader when it
            # returns. Decided on _done, which the thread sets under this lock as it reads the flag, never on
            # is_alive(): a thread past that point but not yet exited would release nothing.
            if not self._done:
                self._release_in_thread = True
                return
        self.reader.close()

    def __enter__(self) -> "ThreadedCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(source: str | int, width: int | None = None, height: int | None = None,
                folder_fps: float = 30.0) -> ThreadedCapture:
    return ThreadedCapture(make_reader(source, width, height, folder_fps))
