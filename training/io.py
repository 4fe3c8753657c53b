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


class CheckpointError(ValueError):
    """A checkpoint in the output folder cannot be read (cut off, another kind of file, not a checkpoint)."""


def load_checkpoint(path: Path, needs: tuple[str, ...] = (), map_location="cpu") -> dict:
    """torch.load of a run's checkpoint, with a message that names the file and the way out when it is damaged
    (a copy cut off, a disk that filled) or is another run's kind of checkpoint (``needs``: keys it must hold)."""
    import torch

    path = Path(path)
    try:
        ck = torch.load(path, weights_only=False, map_location=map_location)
    except Exception as e:  # torch raises many types (OSError, RuntimeError, UnpicklingError, EOFError, ...)
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}: {e}); it is damaged: delete it to start "
                              "again, or give --no-resume / another output folder") from e
    missing = [k for k in needs if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this kind of run (it lacks {', '.join(missing)}); "
                              "use another output folder")
    return ck


def atomic_write_text(path: Path, text: str) -> None:
    """A text file (metrics, history) written beside ``path`` and moved into place: never half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
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


# --- run configs (YAML -> dataclass) and the RNG state a resumed run restores ---------------------------------------
def config_from_dict(cls, d: dict, what: str):
    """``cls(**d)`` for a config dataclass, refusing keys it does not have (a typo must not pass silently)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}; known keys: {sorted(known)}")
    return cls(**d)


def config_to_dict(config) -> dict:
    import dataclasses

    d = dataclasses.asdict(config)
    if "betas" in d:
        d["betas"] = list(config.betas)
    return d


def read_config_yaml(name_or_path: str, config_dir: Path, what: str, overrides: dict | None = None) -> dict:
    """A YAML file, or the name of a shipped config in ``config_dir``, as a dict with ``overrides`` (None values
    skipped) applied and ``name`` defaulting to the file's stem."""
    import yaml

    path = Path(name_or_path)
    if not path.exists():
        path = Path(config_dir) / f"{name_or_path}.yaml"
    if not path.exists():
        names = sorted(q.stem for q in Path(config_dir).glob("*.yaml"))
        raise FileNotFoundError(f"no {what} config {name_or_path!r}: give a YAML file or one of {names}")
    with open(path) as f:
        d = yaml.safe_load(f) or {}
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping of config keys")
    d.update({k: v for k, v in (overrides or {}).items() if v is not None})
    d.setdefault("name", path.stem)
    return d


def rng_state(sampler) -> dict:
    """Every random stream a training step draws from (torch, CUDA, numpy, Python, the batch sampler)."""
    import random

    import torch

    return {"torch": torch.get_rng_state(), "sampler": sampler.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(), "python": random.getstate()}


def restore_rng(state: dict, sampler) -> None:
    import random

    import torch

    torch.set_rng_state(state["torch"].cpu())
    sampler.set_state(state["sampler"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
