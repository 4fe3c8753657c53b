"""A small, real dataset to carry to the lent GPU machine, where ``../shared`` does not travel and MediaPipe is not
installed: a subset of the lis photos (64x64 crops of about 2.5 kB each) with their MediaPipe keypoint cache made
here, so that the GPU training presets (:mod:`training.gpu_short`) read real hands there without detecting any.

    python -m training.gpu_pack --out gpu-pack          # here: every 2nd photo of each signer and letter, ~17 MB
    # there (carry gpu-pack):
    PYTHONPATH=. python3 -m training.gpu_short --pack gpu-pack --preset hgan --out $OUT

The folder holds ``datasets/lis/LABEL/file`` + ``manifest.csv`` (the files copied byte for byte, so the keypoints
are the full dataset's), ``cache/keypoints/lis-KEY.npz`` and ``PACK.json`` (what is inside and the command).
:func:`use_pack` points ``FINGERSPELL_DATASETS`` at ``datasets`` and ``FINGERSPELL_CACHE`` at a working copy of
``cache`` (what the loaders write, such as hand crops, stays out of the pack), so every loader finds it.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

PACK_FILE = "PACK.json"
WORKING_TREE_LIMIT_MIB = 64  # what travels to the lent machine, the repository included


def pack_rows(manifest: Path, every: int) -> list[dict]:
    """Every ``every``-th row of each (signer, label), in manifest order: all people and letters stay."""
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    seen: dict[tuple[str, str], int] = {}
    keep = []
    for r in rows:
        key = (r["signer"], r["label"])
        if seen.get(key, 0) % every == 0:
            keep.append(r)
        seen[key] = seen.get(key, 0) + 1
    return keep


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2 ** 20


def make_pack(datasets_root: str | os.PathLike, out: str | os.PathLike, dataset: str = "lis", every: int = 2,
              max_mib: float = 24.0, progress: bool = True) -> dict:
    """Write the pack (see the module docstring) and return its ``PACK.json``; refuses one over ``max_mib``."""
    from training.io import command_line
    from training.keypoints import load_keypoints

    src, out = Path(datasets_root) / dataset, Path(out)
    if not (src / "manifest.csv").is_file():
        raise FileNotFoundError(f"no {dataset} dataset with a manifest.csv in {datasets_root}")
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    rows = pack_rows(src / "manifest.csv", every)
    dst = out / "datasets" / dataset
    for old in (dst, out / "cache"):  # a pack is made whole: nothing of an earlier one stays behind
        if old.exists():
            shutil.rmtree(old)
    for r in rows:
        (dst / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / r["path"], dst / r["path"])
    with open(dst / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "signer", "source_split"])
        w.writeheader()
        w.writerows({k: r[k] for k in w.fieldnames} for r in rows)
    kp = load_keypoints(dst, cache_dir=out / "cache" / "keypoints", progress=progress)
    info = {"dataset": dataset, "source": str(src), "every": every, "images": len(rows),
            "signers": sorted({r["signer"] for r in rows}), "labels": sorted({r["label"] for r in rows}),
            "hands_found": float(kp.detected.mean()), "command": command_line(),
            "use": "training.gpu_short (training.gpu_pack.use_pack): FINGERSPELL_DATASETS=PACK/datasets and "
                   "FINGERSPELL_CACHE=a working copy of PACK/cache"}
    info["mib"] = round(folder_mib(out), 2)
    if info["mib"] > max_mib:
        raise ValueError(f"the pack is {info['mib']:.1f} MiB, over --max-mib {max_mib:g} (the working tree that "
                         f"travels may hold {WORKING_TREE_LIMIT_MIB} MiB in all): use a larger --every")
    (out / PACK_FILE).write_text(json.dumps(info, indent=1))
    return info


def use_pack(pack: str | os.PathLike, cache: str | os.PathLike) -> dict:
    """Point the loaders at a pack (environment variables read at load time), with the pack's keypoint cache copied
    into ``cache``: what the loaders write there (hand crops, tens of MB) stays out of the pack, which must stay
    small enough to travel. Returns the pack's ``PACK.json``."""
    pack, cache = Path(pack), Path(cache)
    if not (pack / PACK_FILE).is_file():
        raise FileNotFoundError(f"{pack} is not a GPU pack (no {PACK_FILE}): make one with "
                                "'python -m training.gpu_pack --out DIR' where the datasets are, and carry it")
    (cache / "keypoints").mkdir(parents=True, exist_ok=True)
    for f in (pack / "cache" / "keypoints").glob("*.npz"):
        if not (cache / "keypoints" / f.name).exists():
            shutil.copyfile(f, cache / "keypoints" / f.name)
    os.environ["FINGERSPELL_DATASETS"] = str((pack / "datasets").resolve())
    os.environ["FINGERSPELL_CACHE"] = str(cache.resolve())
    return json.loads((pack / PACK_FILE).read_text())


def main(argv=None) -> int:
    from realtime.cli_common import HelpFormatter, datasets_root, fail

    p = argparse.ArgumentParser(prog="python -m training.gpu_pack", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--out", default="gpu-pack", help="folder to write (git-ignored by default: gpu-pack)")
    p.add_argument("--dataset", default="lis", help="dataset to take photos from (default: %(default)s)")
    p.add_argument("--every", type=int, default=2, help="keep every N-th photo of each signer and letter")
    p.add_argument("--max-mib", type=float, default=24.0, help="refuse a pack larger than this (MiB)")
    p.add_argument("--datasets", help="folder holding the datasets (default: $FINGERSPELL_DATASETS)")
    args = p.parse_args(argv)
    try:
        info = make_pack(datasets_root(args.datasets), args.out, args.dataset, args.every, args.max_mib)
    except (FileNotFoundError, ValueError) as e:
        return fail(str(e))
    print(f"wrote {args.out}: {info['images']} {info['dataset']} photos of {len(info['signers'])} signers, hands "
          f"found in {info['hands_found']:.1%}, {info['mib']:.1f} MiB; carry it to the GPU machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
