"""Writing training outputs safely, and recording how they were made: shared by every trainer and cache."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import numpy as np


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, then move it into place: a killed run never leaves half a
    checkpoint where the next run would resume from."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_savez(path: Path, **arrays) -> None:
    """np.savez, written beside ``path`` and moved into place (the keypoint and crop caches)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def command_line() -> str:
    """The command that is running, as a user would type it (no virtual-environment paths): recorded in manifests."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("fingerspell", "cli.py"):
        argv[0] = "fingerspell"
    return " ".join(shlex.quote(a) for a in argv)
