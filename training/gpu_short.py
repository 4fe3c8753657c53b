"""One GPU training preset in one lent-GPU command (issue 16), on a carried pack of real hands (:mod:`training.gpu_pack`):
train, then write to ``--out`` only what is small enough to come back (each file at most 16 MiB).

    python -m training.gpu_pack --out gpu-pack                                   # here, once (the data)
    # there, carry gpu-pack, one preset a command (each stops itself after 6.5 minutes of training):
    PYTHONPATH=. python3 -m training.gpu_short --pack gpu-pack --preset hgan --out $OUT
    # back here, the metrics with the full datasets:
    fingerspell hgan-metrics --hgan RETURNED/hgan          # or gan-metrics --gan RETURNED/reacgan

Presets (:data:`PRESETS`): ``reacgan`` / ``spade`` (configs ``lis-*-gpu-short``: their EMA generator in fp16, as
``fingerspell gan-export`` writes it), ``hgan`` (``lis-hgan-gpu-short``: a checkpoint holding only the EMA
synthetic->real generator in fp16, which ``hgan-metrics`` and ``translate`` read), ``classifier``
(EfficientNetV2-t at 64x64 on the pack, tested on GIULIA, exported to ONNX). Each also writes its last sample
grid and ``gpu-short-PRESET.json``: the card, steps done, seconds per step, peak GPU memory and the files.

``--device cpu --steps 2`` runs the same code here as a dry run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_MIB = 16  # what the lent machine sends back, per file
EXPORT_MARGIN_S = 45  # kept free at the end of the budget for exporting and copying the results


@dataclass(frozen=True)
class ShortPreset:
    name: str
    kind: str  # gan | hgan | classifier
    config: str | None  # the training config (gan and hgan)
    help: str


PRESETS = {p.name: p for p in (
    ShortPreset("reacgan", "gan", "lis-reacgan-gpu-short", "ReACGAN, 64x64, 3,000 steps"),
    ShortPreset("spade", "gan", "lis-spade-gpu-short", "SPADE from pose maps, 64x64, 3,000 steps"),
    ShortPreset("hgan", "hgan", "lis-hgan-gpu-short", "msH-GAN6, 64x64, 4,000 steps"),
    ShortPreset("classifier", "classifier", None, "EfficientNetV2-t at 64x64, 12 epochs, tested on GIULIA"),
)}
CLASSIFIER_ARGS = ["--data", "lis", "--arch", "efficientnet_v2_t", "--size", "64", "--epochs", "12",
                   "--batch-size", "64", "--lr", "1e-3", "--cosine"]


def _card(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def _timed_train(trainer, deadline: float) -> dict:
    """Train (resuming where the checkpoint is) until the config's steps or ``deadline`` (a perf_counter time: the
    command's budget less what loading the data took), and say how many steps this command ran, in how many
    seconds (sample grids and checkpoints included)."""
    left = (deadline - time.perf_counter()) / 60
    if left < 0.5:
        raise RuntimeError(f"preparing the data left {max(left, 0):.1f} minutes of the budget: nothing trained")
    c = trainer.config
    c.max_minutes = min(c.max_minutes or left, left)
    start, t0 = trainer.step, time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    done = trainer.step - start
    return {"step": trainer.step, "steps_this_run": done, "train_seconds": round(seconds, 1),
            "s_per_step": round(seconds / done, 4) if done else None}


def _train_gan(preset: ShortPreset, work: Path, out: Path, device: str, steps: int | None, deadline: float) -> dict:
    from training.gan.config import load_config
    from training.gan.sampling import export_generator
    from training.gan.trainer import GANTrainer

    config = load_config(preset.config, {"device": device, "steps": steps})
    trainer = GANTrainer(config, work)
    timing = _timed_train(trainer, deadline)
    export_generator(work, out, command=f"python -m training.gpu_short --preset {preset.name}")
    return {**timing, "steps": config.steps, "history": trainer.history}


def _train_hgan(preset: ShortPreset, work: Path, out: Path, device: str, steps: int | None,
                deadline: float) -> dict:
    import torch

    from training.hgan.config import load_config
    from training.hgan.trainer import HGANTrainer
    from training.io import atomic_torch_save

    config = load_config(preset.config, {"device": device, "steps": steps})
    trainer = HGANTrainer(config, work)
    timing = _timed_train(trainer, deadline)
    ck = torch.load(work / "checkpoint.pt", map_location="cpu", weights_only=False)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["G_ema"].items()}
    # load_hgan reads a run folder's checkpoint.pt: the EMA generator alone is all that translation needs
    out.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"kind": "hgan", "config": ck["config"], "step": ck["step"], "G_ema": state},
                      out / "checkpoint.pt")
    return {**timing, "steps": config.steps, "history": trainer.history}


def _train_classifier(preset: ShortPreset, work: Path, out: Path, device: str, steps: int | None,
                      deadline: float) -> dict:
    from realtime.cli import main as fingerspell

    args = list(CLASSIFIER_ARGS)
    if steps is not None:  # a dry run: one epoch
        args[args.index("--epochs") + 1] = "1"
    rc = fingerspell(["train", "classifier", *args, "--device", device, "--out", str(work), "--export", str(out)])
    if rc:
        raise RuntimeError(f"the classifier run failed (exit code {rc})")
    report = json.loads((work / "report.json").read_text()) if (work / "report.json").exists() else {}
    return {"test_accuracy": report.get("accuracy"), "test_accuracy_hand_found": report.get("accuracy_detected"),
            "test_images": report.get("images"), "train_seconds": report.get("train_seconds"),
            "test_signers": "GIULIA (the pack's share of her photos)"}


def run_short(pack: str, preset: str, out: str, device: str = "cuda", steps: int | None = None,
              work: str | None = None, budget_minutes: float = 8.0) -> dict:
    """Train ``preset`` on ``pack`` and write the small results to ``out``/``preset``, all within
    ``budget_minutes`` of wall time (training stops early to keep it); returns the summary."""
    import torch

    from training.gpu_pack import use_pack

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("no CUDA GPU visible to PyTorch: run it on the lent GPU, or --device cpu for a dry run")
    p = PRESETS[preset]
    work_dir = Path(work or f"runs/gpu-short/{preset}")
    pack_info = use_pack(pack, work_dir.parent / "cache")
    dest = Path(out) / preset
    t0 = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer = {"gan": _train_gan, "hgan": _train_hgan, "classifier": _train_classifier}[p.kind]
    deadline = t0 + 60 * budget_minutes - EXPORT_MARGIN_S
    result = trainer(p, work_dir, dest, device, steps, deadline)
    seconds = time.perf_counter() - t0
    grids = sorted((work_dir / "samples").glob("step*.png"))
    if grids:
        shutil.copy(grids[-1], dest / "samples.png")
    history = result.pop("history", None) or []
    summary = {"preset": preset, "config": p.config, "card": _card(device), "device": device,
               "pack": {k: pack_info.get(k) for k in ("dataset", "images", "every", "signers")},
               "seconds": round(seconds, 1), **result,
               "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2 ** 20) if device.startswith("cuda")
               else None,
               "losses_last": history[-1] if history else None}
    dest.mkdir(parents=True, exist_ok=True)
    if history:
        (dest / "history.json").write_text(json.dumps(history))
    too_big = [f"{f.name} ({f.stat().st_size / 2 ** 20:.1f} MiB)" for f in dest.iterdir()
               if f.stat().st_size > MAX_FILE_MIB * 2 ** 20]
    summary["files"] = sorted(f.name for f in dest.iterdir()) + [f"gpu-short-{preset}.json"]
    summary["too_big_to_come_back"] = too_big
    (Path(out) / f"gpu-short-{preset}.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> int:
    from realtime.cli_common import HelpFormatter, fail

    ap = argparse.ArgumentParser(prog="python -m training.gpu_short", description=__doc__.split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--pack", default="gpu-pack", help="the carried pack (python -m training.gpu_pack)")
    ap.add_argument("--preset", required=True, choices=tuple(PRESETS),
                    help="; ".join(f"{p.name}: {p.help}" for p in PRESETS.values()))
    ap.add_argument("--out", required=True, help="where the small results go ($OUT on the lent machine)")
    ap.add_argument("--device", default="cuda", help="cuda on the lent machine; cpu for a dry run")
    ap.add_argument("--steps", type=int, help="dry run: this many steps (one epoch for the classifier)")
    ap.add_argument("--work", help="folder for the full run (default: runs/gpu-short/PRESET; resumable)")
    ap.add_argument("--budget-minutes", type=float, default=8.0,
                    help="wall time for the whole command: training stops early to keep it (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        s = run_short(args.pack, args.preset, args.out, args.device, args.steps, args.work, args.budget_minutes)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    print(json.dumps({k: v for k, v in s.items() if k != "losses_last"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
