"""Step rates of the GPU training configs, for the lent GPU machine: does each GPU preset fit one lent-GPU command
(10 minutes)? The datasets do not travel there, so the steps run on stand-in data of the right shapes (random
crops, hands rendered from random poses); a step costs the same whatever the pixels show.

On the lent machine (``run`` tool; nothing to carry)::

    PYTHONPATH=. python3 -m training.gpu_training_check --out $OUT

Here, a dry run of the same code on the CPU (a few steps each)::

    python -m training.gpu_training_check --device cpu --steps 3 --out /tmp/gpu-training

Writes ``OUT/gpu-training-<card>.json``: per config, seconds per step (median of the timed steps after warm-up),
peak GPU memory, and the minutes its ``steps`` would take.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np

CONFIGS = (("hgan", "lis-hgan-gpu"), ("hgan", "lis-hgan-cpu"), ("gan", "lis-reacgan-gpu"), ("gan", "lis-spade-gpu"))


def _hgan_trainer(name: str, device: str, folder: Path):
    from training.hgan.config import load_config
    from training.hgan.data import SyntheticHands
    from training.hgan.networks import HandCNNFeatures
    from training.hgan.render import RenderSettings, render_hands
    from training.hgan.trainer import HGANTrainer
    from training.image_classifier import SmallCNN

    config = load_config(name, {"device": device, "checkpoint_every": 10 ** 9, "sample_every": 10 ** 9})
    rng = np.random.default_rng(0)
    n, s = 256, config.size
    lm = np.concatenate([rng.uniform(40, 160, (n, 21, 2)), rng.normal(0, 5, (n, 21, 1))], 2).astype(np.float32)
    r = render_hands(lm, 0, RenderSettings(size=s))
    syn = SyntheticHands(r["images"], r["masks"], r["keypoints"], lm, np.array(["A"] * n))
    real = SimpleNamespace(images=rng.integers(0, 255, (n, s, s, 3), dtype=np.uint8), dataset="stand-in",
                           data_sha256="0" * 64)
    features = HandCNNFeatures(SmallCNN(3, 16).body)  # the shape of the real perceptual net; weights do not matter
    return HGANTrainer(config, folder, real=real, synthetic=syn, features=features, progress=False)


def _gan_trainer(name: str, device: str, folder: Path):
    from training.gan.config import load_config
    from training.gan.trainer import GANTrainer
    from training.hand_crops import HandCrops

    config = load_config(name, {"device": device, "checkpoint_every": 10 ** 9, "sample_every": 10 ** 9})
    rng = np.random.default_rng(0)
    n, s = 512, config.size
    labels = np.array([chr(ord("A") + i % 22) for i in range(n)])
    crops = HandCrops(rng.integers(0, 255, (n, s, s, 3), dtype=np.uint8),
                      rng.uniform(0.2, 0.8, (n, 21, 2)).astype(np.float32), np.ones(n, bool), labels,
                      np.array(["s"] * n), np.array([""] * n), "stand-in", "0" * 64)
    return GANTrainer(config, folder, data=crops, progress=False)


def step_rate(kind: str, name: str, device: str, steps: int, warmup: int = 3) -> dict:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        trainer = (_hgan_trainer if kind == "hgan" else _gan_trainer)(name, device, Path(tmp))
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(warmup + steps):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.train_step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        sec = float(np.median(times))
        total = trainer.config.steps
        return {"config": name, "steps": total, "batch_size": trainer.config.batch_size, "size": trainer.config.size,
                "s_per_step": round(sec, 5), "minutes_for_all_steps": round(sec * total / 60, 1),
                "fits_one_10_min_command": sec * total < 540,
                "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2 ** 20) if device == "cuda" else None}


def run(out: str | Path, device: str = "cuda", steps: int = 30) -> Path:
    import torch

    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    card = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else f"{device}-dry-run"
    report = {"card": card, "torch": torch.__version__, "timed_steps": steps, "configs": {}}
    for kind, name in CONFIGS:
        try:
            result = step_rate(kind, name, device, steps)
            print(f"{name}: {result['s_per_step'] * 1000:.1f} ms a step, {result['minutes_for_all_steps']} min for "
                  f"{result['steps']} steps", flush=True)
        except Exception as e:  # record it and go on: one device run must bring back every config it can
            result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
            print(f"{name}: failed ({result['error']})", flush=True)
        report["configs"][name] = result
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in card.lower()).strip("-")
    path = out / f"gpu-training-{slug}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.gpu_training_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="where to write gpu-training-<card>.json (the device's $OUT)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a dry run here")
    p.add_argument("--steps", type=int, default=30, help="timed steps per config, after 3 warm-up steps")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA GPU visible to PyTorch: run this on the lent GPU, or give --device cpu for a dry run",
                  file=sys.stderr)
            return 2
    run(args.out, args.device, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
