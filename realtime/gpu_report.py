"""One prepared run of every GPU check, for the lent GPU machine (15 minutes of device time in all, no datasets,
no mediapipe, CPU-only ONNX Runtime there: only PyTorch reaches the GPU).

Here, with the datasets::

    python -m realtime.gpu_report prepare gpu-check        # a clip spelled from real photos (git-ignored folder)

On the lent machine (``run`` tool, ``carry: ["gpu-check"]``)::

    PYTHONPATH=. python3 -m realtime.gpu_report run gpu-check --out $OUT

``run`` does each step on its own (a step that fails is recorded with its error and the next one runs) and writes
``$OUT/bench-gpu-<card>.json`` (copy it to docs/):

1. parity of the four torch hand nets on CUDA (TF32 off; fp32 and fp16) with ONNX Runtime on the CPU, on frames of
   the clip; then each lite net's speed alone (eager, CUDA graphs, fp16 graphs; batch 1 and 16);
2. the whole ``--hands torch`` (and ``torch-fp16``) pipeline on CUDA against ``--hands onnx`` on the CPU, frame by
   frame (same hands, landmark distance in pixels);
3. the live path ``--hands torch|torch-fp16 --backend torch --device cuda`` on the clip: per-stage ms and FPS;
4. N streams batched (1, 4, 16), with each torch hands engine: total frames/s and per-frame latency;
5. each classifier on each backend there (``bench --backends``), batch 1;
6. the sequence reader's streaming step in PyTorch on CUDA against ONNX Runtime's on the CPU over a stream, then
   ``--reader sequence --hands torch --backend torch`` on the clip.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

CLIP = "clip.mp4"
WORD = "LAVYBW"  # letters massey's hand1 shows clearly, held as a user would


def prepare(folder: str | Path, datasets: str | None = None, fps: int = 30) -> Path:
    """``folder``/clip.mp4: massey hand1 photos spelling :data:`WORD`, each held 1 s, 0.4 s of empty frame between."""
    import cv2

    from realtime.bench import letterbox
    from realtime.cli_common import datasets_root
    from realtime.images import ImageFolder, read_image

    root = Path(datasets_root(datasets)) / "massey"
    photos = {s.label: s.path for s in ImageFolder(root).samples if s.signer == "hand1"}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(folder / CLIP), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v video here")
    blank = np.zeros((480, 640, 3), np.uint8)
    for letter in WORD:
        frame = letterbox(read_image(photos[letter]), (640, 480))
        for _ in range(fps):
            writer.write(frame)
        for _ in range(int(0.4 * fps)):
            writer.write(blank)
    writer.release()
    (folder / "README.md").write_text(f"{CLIP}: massey hand1 spelling {WORD}, made by python -m realtime.gpu_report "
                                      "prepare; carried to the lent GPU (../shared does not travel).\n")
    return folder / CLIP


def _frames(clip: Path, limit: int = 200) -> list[np.ndarray]:
    from realtime.capture import make_reader

    reader, out = make_reader(str(clip)), []
    while len(out) < limit and (img := reader.grab()) is not None:
        out.append(img)
    reader.close()
    return out


def net_parity(clip: Path, device: str) -> dict:
    import cv2
    import onnxruntime as ort
    import torch

    from realtime.hands.onnx import hand_model_file
    from realtime.hands.torch_nets import hand_net

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # parity: TF32 would cost 0.1
    frames = _frames(clip, 60)[::10]
    out = {}
    for name in ("palm_detection_lite", "palm_detection_full", "hand_landmark_lite", "hand_landmark_full"):
        path, _ = hand_model_file(name)
        size = 192 if name.startswith("palm") else 224
        x = np.stack([cv2.resize(f, (size, size))[..., ::-1] for f in frames]).astype(np.float32) / 255.0
        want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})
        net = hand_net(path).to(device).eval()
        with torch.no_grad():
            got = [g.cpu().numpy() for g in net(torch.from_numpy(x).to(device))]
        out[name] = {"max_abs": [float(np.abs(g - w).max()) for g, w in zip(got, want)], "outputs": net.output_names}
        if device == "cuda":  # the same net in fp16 (weights and activations), against the fp32 reference
            with torch.no_grad():
                half = [g.float().cpu().numpy() for g in net.half()(torch.from_numpy(x).to(device).half())]
            out[name]["fp16_max_abs"] = [float(np.abs(g - w).max()) for g, w in zip(half, want)]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    return out


def net_speed(clip: Path, device: str) -> dict:
    """Each lite hand net alone, batch 1 and 16, input already on the device: eager fp32, CUDA graphs fp32 and fp16
    (median and p95 ms of 200 synchronised calls; on the CPU a few eager calls, as a dry run)."""
    import torch

    from realtime.backends.pytorch import TorchBackend
    from realtime.hands.onnx import hand_model_file
    from realtime.hands.torch_nets import hand_net

    cuda = device == "cuda"
    variants = (("fp32", False), ("fp32", True), ("fp16", True)) if cuda else (("fp32", False),)
    out = {}
    for name in ("palm_detection_lite", "hand_landmark_lite"):
        path, _ = hand_model_file(name)
        size = 192 if name.startswith("palm") else 224
        for precision, graphs in variants:
            net = hand_net(path)
            backend = TorchBackend(net, [net.input_name], net.output_names, device, precision, graphs)
            for batch in (1, 16) if cuda else (1,):
                x = {net.input_name: torch.rand(batch, size, size, 3, device=backend.device)}
                times = []
                for i in range(220 if cuda else 5):
                    if cuda:
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    backend.run_torch(x)
                    if cuda:
                        torch.cuda.synchronize()
                    if i >= (20 if cuda else 1):
                        times.append((time.perf_counter() - t0) * 1e3)
                key = f"{name} {precision} {'graphs' if graphs else 'eager'} batch {batch}"
                out[key] = {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}
            backend.close()
    return out


def _engines(device: str) -> tuple[str, ...]:
    return ("torch", "torch-fp16") if device == "cuda" else ("torch",)  # fp16 needs CUDA


def pipeline_parity(clip: Path, device: str) -> dict:
    """Each torch hands engine (TF32 off) against ONNX Runtime on the CPU, tracking through the clip frame by frame."""
    import torch

    from realtime.hands.onnx import OnnxHandTracker

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    frames = _frames(clip)
    cpu = OnnxHandTracker("lite", max_hands=1, providers=["CPUExecutionProvider"])
    want = [cpu(f) for f in frames]
    out = {}
    for engine in _engines(device):
        here = OnnxHandTracker("lite", max_hands=1, engine=engine, device=device)
        same, dists = 0, []
        for f, a in zip(frames, want):
            b = here(f)
            same += len(a) == len(b)
            if a and b:
                dists.append(float(np.abs(a[0].landmarks[:, :2] - b[0].landmarks[:, :2]).max()))
        out[engine] = {"frames": len(frames), "same_number_of_hands": same, "both_found": len(dists),
                       "worst_landmark_px": max(dists, default=0.0),
                       "median_landmark_px": float(np.median(dists)) if dists else 0.0,
                       "preprocessing": here.preprocessing, "tf32": False}
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    return out


def live_path(clip: Path, device: str) -> dict:
    from realtime.bench import run_bench
    from realtime.pipeline import Recognizer

    return {engine: run_bench(Recognizer.build("asl-letters", hands=engine, backend="torch", device=device), str(clip),
                              frames=300 if device == "cuda" else 30, progress=False) for engine in _engines(device)}


def streams(clip: Path, device: str) -> dict:
    from realtime.pipeline import PipelineOptions
    from realtime.streams import run_streams_bench

    return {f"{engine} {n}": run_streams_bench(PipelineOptions(hands=engine, backend="torch", device=device),
                                               [str(clip)], n, frames=100 if device == "cuda" else 10, progress=False)
            for engine in _engines(device) for n in (1, 4, 16)}


def classifiers(clip: Path, device: str) -> dict:
    from realtime.bench_backends import run_backend_bench

    return run_backend_bench("torch,onnxruntime", frames=200, progress=False)


def sequence_reader(clip: Path, device: str) -> dict:
    from realtime.bench import run_bench
    from realtime.pipeline import Recognizer
    from realtime.sequence_reader import SequenceReader

    here, cpu = SequenceReader("asl-sequence", device=device, backend="torch"), SequenceReader("asl-sequence")
    rng = np.random.default_rng(0)
    worst = 0.0
    for i in range(200):
        x = rng.normal(0, 0.5, here.dim).astype(np.float32) if i % 17 else None
        worst = max(worst, float(np.abs(here.posteriors(here.row(x, i / 30)) - cpu.posteriors(cpu.row(x, i / 30))).max()))
    rec = Recognizer.build(reader="sequence", hands="torch", backend="torch", device=device)
    return {"step_max_abs_logp_vs_onnxruntime_cpu": worst, "reader": here.describe(),
            "live": run_bench(rec, str(clip), frames=300 if device == "cuda" else 30, progress=False)}


STEPS = (("net_parity", net_parity), ("net_speed", net_speed), ("pipeline_parity", pipeline_parity), ("live_path", live_path),
         ("streams", streams), ("classifiers", classifiers), ("sequence_reader", sequence_reader))


def run(folder: str | Path, out: str | Path, device: str = "cuda") -> Path:
    import torch

    folder, out = Path(folder), Path(out)
    clip = folder / CLIP
    if not clip.is_file():
        raise FileNotFoundError(f"{clip} is missing: make it with python -m realtime.gpu_report prepare {folder}")
    card = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else f"{device}-dry-run"
    report = {"card": card, "torch": torch.__version__, "cuda": torch.version.cuda, "numpy": np.__version__,
              "python": platform.python_version(), "clip": f"{CLIP} ({WORD}, massey hand1)", "steps": {}}
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in card.lower()).strip("-")
    path = out / f"bench-gpu-{slug}.json"
    for name, step in STEPS:
        t0 = time.perf_counter()
        try:
            result, status = step(clip, device), "ok"
        except Exception as e:  # record it and go on: one device run must bring back every step it can
            result, status = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}, "failed"
        report["steps"][name] = {"status": status, "seconds": round(time.perf_counter() - t0, 1), "result": result}
        print(f"{name}: {status} in {report['steps'][name]['seconds']} s", flush=True)
        path.write_text(json.dumps(report, indent=1, default=str) + "\n")  # after each step: a run cut short
        # by the command's time limit still brings back every step it finished
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realtime.gpu_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    pr = sub.add_parser("prepare", help="write the clip the GPU run needs (here, with the datasets)")
    pr.add_argument("folder", help="a git-ignored folder to carry to the GPU machine, e.g. gpu-check")
    pr.add_argument("--datasets", help="folder holding the datasets (default: $FINGERSPELL_DATASETS)")
    ru = sub.add_parser("run", help="every GPU check and benchmark, on the lent machine")
    ru.add_argument("folder", help="the prepared folder")
    ru.add_argument("--out", required=True, help="where to write bench-gpu-<card>.json (the device's $OUT)")
    ru.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: a dry run of every step here, to find what breaks before device time is spent")
    args = p.parse_args(argv)
    if args.what == "prepare":
        print(prepare(args.folder, args.datasets))
    else:
        run(args.folder, args.out, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
