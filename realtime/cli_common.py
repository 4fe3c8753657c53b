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
