"""What every ``fingerspell`` command shares: exit codes, one-line errors, argument types, the datasets folder and
the help layout. The CLI and the training commands registered beside their code (training/commands.py,
training/classifier_commands.py, training/gan/commands.py) import it from here, never from each other."""
from __future__ import annotations

import argparse
import os
import sys

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it
ENV_DATASETS = "FINGERSPELL_DATASETS"
# what a run can fail with that is the user's to fix (bad data, settings, a diverged run, no GPU)
RUN_ERRORS = (ValueError, FloatingPointError, RuntimeError, OSError)


def fail(msg: str) -> int:
    print(f"fingerspell: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


# the modules of the train extra (pyproject.toml) a runtime-only install ([cpu] or [gpu]) lacks, as a user knows them
TRAIN_EXTRA = {"torch": "PyTorch", "torchvision": "torchvision", "onnx": "the onnx package",
               "torchmetrics": "torchmetrics", "prdc": "prdc", "yaml": "PyYAML"}


def missing_train_extra(e: ModuleNotFoundError) -> str | None:
    """What to install when a command fails for want of the train extra (export, bench --backends, training), or
    None when the missing module is another one (a bug, not the user's install)."""
    name = TRAIN_EXTRA.get((e.name or "").split(".")[0])
    return f"needs {name}: pip install -e '.[train]'" if name else None


def int_range(lo: int, hi: int | None = None):
    """argparse type: an integer in [lo, hi], with a clear message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi if hi is not None else 'inf'}")
        return value
    return parse


def float_range(lo: float, hi: float | None = None, above: bool = False):
    """argparse type: a finite number in [lo, hi] (``above``: strictly more than lo), with a clear message
    otherwise (nan, inf and negative seconds or rates would run and quietly give nonsense)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < lo or (above and value == lo) or (hi is not None and value > hi):
            low = f"more than {lo:g}" if above else f"at least {lo:g}"
            raise argparse.ArgumentTypeError(f"{text} must be a finite number, {low}"
                                             + (f" and at most {hi:g}" if hi is not None else ""))
        return value
    return parse


def window_problem() -> str | None:
    """Why no OpenCV window can open here, or None. Without a display variable that is known at once; with one
    that points nowhere (an ssh session's stale DISPLAY) Qt aborts the whole process instead of raising, so a
    child process tries first."""
    import subprocess

    if sys.platform in ("win32", "darwin"):
        return None
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not display:
        return "no display to open a window on"
    probe = ("import cv2, numpy as np; cv2.namedWindow('fingerspell'); cv2.imshow('fingerspell', np.zeros((8, 8, 3), "
             "np.uint8)); cv2.waitKey(1); cv2.destroyAllWindows()")
    try:
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"opening a window on display {display} did not finish in 30 s"
    if r.returncode != 0:
        said = [line for line in r.stderr.splitlines() if line.strip()]
        return f"cannot open a window on display {display}" + (f" ({said[-1].strip()})" if said else "")
    return None


def writable(path: str | None) -> str | None:
    """Fail before the work, not after it, when an output file cannot be written."""
    if path:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise SystemExit(fail(f"cannot write {path}: folder {parent} does not exist"))
        if os.path.isdir(path):
            raise SystemExit(fail(f"cannot write {path}: it is a folder; give a file path"))
        if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise SystemExit(fail(f"cannot write {path}: no permission to write there"))
    return path


def datasets_root(value: str | None) -> str:
    root = value or os.environ.get(ENV_DATASETS)
    if root and not os.path.isdir(root):
        raise SystemExit(fail(f"datasets folder {root} does not exist (seen from {os.getcwd()})"))
    if not root:
        raise SystemExit(fail(f"datasets folder not found: give --datasets DIR or set {ENV_DATASETS}"))
    return root


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true",
                   help="also show the libraries' own logs (TFLite/MediaPipe, FFmpeg, OpenCV), hidden by default")


def comma_list(text: str | None) -> list[str] | None:
    """A comma-separated list option (``--labels A,B``) -> its items, or None when not given."""
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one and the help does not already state it."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--datasets and --cache-dir, as every command that reads the datasets takes them."""
    p.add_argument("--datasets", help="folder holding the datasets (default: $FINGERSPELL_DATASETS)")
    p.add_argument("--cache-dir", help="keypoint and crop cache folder (default: ~/.cache/fingerspell)")
