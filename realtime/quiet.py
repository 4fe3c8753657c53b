"""Keep the libraries' own logs off the terminal unless --verbose.

TFLite and MediaPipe (absl ``W0000`` lines), FFmpeg (``[mov,mp4...] partial file``, dozens per cut-off
video) and OpenCV (camera probing) write straight to file descriptor 2 from C++, often from their
own threads, so Python's logging cannot reach them. While quiet, fd 2 goes to /dev/null and
Python's ``sys.stderr`` moves to a copy of the real one: the project's own messages, warnings and
tracebacks still show.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

# Read by the libraries when they start; they also reach subprocesses. OpenCV's FFmpeg level -8 is AV_LOG_QUIET.
QUIET_ENV = {"OPENCV_LOG_LEVEL": "OFF", "OPENCV_FFMPEG_LOGLEVEL": "-8", "GLOG_minloglevel": "2",
             "TF_CPP_MIN_LOG_LEVEL": "3"}


def _stderr_is_fd2() -> bool:
    """Only a real process stderr is redirected: under a test runner's capture, sys.stderr is something else."""
    try:
        return sys.stderr is sys.__stderr__ and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def quiet_native_logs(verbose: bool = False):
    """Silence what the native libraries print while the block runs; Python's stderr keeps working."""
    if verbose or not _stderr_is_fd2():
        yield
        return
    saved_env = {k: os.environ.get(k) for k in QUIET_ENV}
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    sys.stderr.flush()
    real = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    sys.stderr = open(real, "w", buffering=1, encoding=sys.__stderr__.encoding, errors="backslashreplace",
                      closefd=False)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = sys.__stderr__
        os.dup2(real, 2)
        os.close(real)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
