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
   frame (same hands, landmark distance in pixels); the letter read inside the landmark step on CUDA against the
   host path on the CPU (same letter, probabilities);
3. the live path ``--hands torch|torch-fp16 --backend torch --device cuda`` on the clip: per-stage ms and FPS, and
   ``torch --no-fuse`` (features and classifier as stages of their own) to compare;
4. N streams batched (1, 4, 16), with each torch hands engine (and ``torch --no-fuse`` at 16): total frames/s and
   per-frame latency; then a cProfile of the 16-stream step (where the host time goes);
5. each classifier on each backend there (``bench --backends``), batch 1;
6. the sequence reader's streaming step in PyTorch on CUDA against ONNX Runtime's on the CPU over a stream, then
   ``--reader sequence --hands torch --backend torch`` on the clip.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HAND_MODEL = "lite"  # every H200 report so far measured the lite hand models: the reports stay comparable
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
    return out  # run() puts TF32 back as it was


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
    cpu = OnnxHandTracker(HAND_MODEL, max_hands=1, providers=["CPUExecutionProvider"])
    want = [cpu(f) for f in frames]
    out = {}
    for engine in _engines(device):
        here = OnnxHandTracker(HAND_MODEL, max_hands=1, engine=engine, device=device)
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
    return out  # run() puts TF32 back as it was


def reader_parity(clip: Path, device: str) -> dict:
    """The letter read inside the landmark step on ``device`` (TF32 off), frame by frame through the clip, against
    the same torch hands with features and classifier on the host path (``--no-fuse``: the reader's own error),
    and against ``--hands onnx`` with the classifier on ONNX Runtime's CPU (the whole path's)."""
    import torch

    from realtime.pipeline import Recognizer

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    frames = _frames(clip)
    runs = {}
    for name, options in (("fused", {"hands": "torch", "backend": "torch", "device": device}),
                          ("no-fuse", {"hands": "torch", "backend": "torch", "device": device, "fuse": False}),
                          ("onnx-cpu", {"hands": "onnx", "device": "cpu", "backend": "onnxruntime"})):
        rec = Recognizer.build("asl-letters", redetect_after=0, hand_model=HAND_MODEL, **options)
        try:
            runs[name] = (rec.reads_in_hands_step, [rec.read(f)[1:] for f in frames])
        finally:
            rec.close()
    fused, here = runs["fused"]

    def against(name: str) -> dict:
        both = [(a, b) for a, b in zip(here, runs[name][1]) if a[0] is not None and b[0] is not None]
        return {"hand_in_both": len(both), "same_letter": sum(int(np.argmax(a[1])) == int(np.argmax(b[1]))
                                                             for a, b in both),
                "max_abs_probability": max((float(np.abs(np.asarray(a[1]) - b[1]).max()) for a, b in both),
                                           default=0.0)}

    return {"frames": len(frames), "read_in_hands_step": fused,
            "read_on_device": sum(a[0] is not None and a[0].reading is not None for a in here),
            "against_no_fuse": against("no-fuse"), "against_onnx_cpu": against("onnx-cpu"), "tf32": False}


def live_path(clip: Path, device: str) -> dict:
    """One camera: each torch hands engine with the classifier in its landmark step where it can, and ``torch``
    with features and classifier as stages of their own (``--no-fuse``), to compare."""
    from realtime.bench import run_bench
    from realtime.pipeline import Recognizer

    runs = [(engine, {"hands": engine}) for engine in _engines(device)] + [("torch --no-fuse", {"hands": "torch",
                                                                                              "fuse": False})]
    return {name: run_bench(Recognizer.build("asl-letters", backend="torch", device=device, hand_model=HAND_MODEL, **options), str(clip),
                            frames=300 if device == "cuda" else 30, progress=False) for name, options in runs}


def streams(clip: Path, device: str) -> dict:
    from realtime.pipeline import PipelineOptions
    from realtime.streams import run_streams_bench

    # timed: one pass of the clip (252 frames: hands and empty frames in its proportions), after 60 steps that
    # include the first empty run, where the full model is built and its graphs captured (once per program)
    cuda = device == "cuda"
    runs = [(f"{engine} {n}", {"hands": engine}, n) for engine in _engines(device) for n in (1, 4, 16)]
    runs.append(("torch --no-fuse 16", {"hands": "torch", "fuse": False}, 16))  # the host reading, to compare
    return {name: run_streams_bench(PipelineOptions(backend="torch", device=device, hand_model=HAND_MODEL, **options), [str(clip)], n,
                                    frames=252 if cuda else 10, warmup=60 if cuda else 2, progress=False)
            for name, options, n in runs}


def host_profile(clip: Path, device: str) -> dict:
    """Where a step's time goes, 16 streams and one (cProfile over 30 steps, torch hands on ``device``): the 30
    functions that spent the most time themselves, so the next change to the GPU path starts from a measurement."""
    import cProfile
    import pstats

    n = 30 if device == "cuda" else 3  # the CPU: a dry run
    frames = _frames(clip, 60 + n)
    warm, timed = frames[:60], frames[60:60 + n]  # every batch size's graph captured before a profile

    def top_by_own_time(streams: int) -> list[dict]:
        prof = _profile_steps(cProfile.Profile(), streams, warm, timed, device)
        stats = pstats.Stats(prof).stats  # {(file, line, name): (primitive calls, calls, tottime, cumtime, callers)}
        top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:30]
        return [{"function": f"{Path(k[0]).name}:{k[1]}({k[2]})", "calls": v[1],
                 "own_ms_per_step": round(v[2] / n * 1e3, 3), "cumulative_ms_per_step": round(v[3] / n * 1e3, 3)}
                for k, v in top]

    return {"steps": n, "streams": 16, "top_by_own_time": top_by_own_time(16),
            "one_stream_top_by_own_time": top_by_own_time(1),
            "cuda_calls": _cuda_calls(warm, timed, device) if device == "cuda" else None}


def _profile_steps(profiler, streams: int, warm: list[np.ndarray], frames: list[np.ndarray], device: str):
    """``streams`` streams of the clip through ``--hands torch --backend torch``: the ``warm`` steps, then the
    ``frames`` steps inside ``profiler`` (a context manager: cProfile's or torch's), which it returns."""
    from realtime.pipeline import PipelineOptions
    from realtime.streams import MultiStreamRecognizer

    rec = MultiStreamRecognizer(streams, PipelineOptions(hands="torch", backend="torch", device=device, hand_model=HAND_MODEL))
    try:
        for f in warm:
            rec.process([f] * streams)
        with profiler:
            for f in frames:
                rec.process([f] * streams)
    finally:
        rec.close()
    return profiler


def _cuda_calls(warm: list[np.ndarray], frames: list[np.ndarray], device: str) -> dict:
    """torch.profiler over a 16-stream step: how many kernel launches, copies, synchronisations and graph replays a
    step makes, and the runtime calls and ops that cost the host the most (per step)."""
    from torch.profiler import ProfilerActivity, profile

    prof = _profile_steps(profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]), 16, warm, frames, device)
    n = len(frames)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)

    def device_us(e) -> float:  # named self_cuda_time_total before torch 2.4
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)

    return {"steps": n, "per_step": [{"name": e.key, "calls": round(e.count / n, 1),
                                      "self_cpu_ms": round(e.self_cpu_time_total / n / 1e3, 3),
                                      "device_ms": round(device_us(e) / n / 1e3, 3)} for e in rows[:40]]}


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
    rec = Recognizer.build(reader="sequence", hands="torch", backend="torch", device=device, hand_model=HAND_MODEL)
    return {"step_max_abs_logp_vs_onnxruntime_cpu": worst, "reader": here.describe(),
            "live": run_bench(rec, str(clip), frames=300 if device == "cuda" else 30, progress=False)}


# host_profile last: the CUDA profiler around graph replays is the one step that could hang rather than raise
STEPS = (("net_parity", net_parity), ("net_speed", net_speed), ("pipeline_parity", pipeline_parity),
         ("reader_parity", reader_parity), ("live_path", live_path), ("streams", streams), ("classifiers", classifiers),
         ("sequence_reader", sequence_reader), ("host_profile", host_profile))


def run(folder: str | Path, out: str | Path, device: str = "cuda", only: list[str] | None = None) -> Path:
    """``only``: the names of the steps to run (default: all of :data:`STEPS`)."""
    import torch

    unknown = set(only or ()) - {name for name, _ in STEPS}
    if unknown:
        raise ValueError(f"unknown steps {sorted(unknown)}; the steps are {[name for name, _ in STEPS]}")

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
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32  # the parity steps turn it off
    for name, step in STEPS:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            result, status = step(clip, device), "ok"
        except Exception as e:  # record it and go on: one device run must bring back every step it can
            result, status = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}, "failed"
        finally:  # each step starts from PyTorch's settings, as the live path runs
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        report["steps"][name] = {"status": status, "seconds": round(time.perf_counter() - t0, 1), "result": result}
        # the next step starts with this one's CUDA graphs and buffers freed: the hand models hold their graphs in
        # reference cycles (tracker, backend, step), which only the cyclic collector frees
        gc.collect()
        if device == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        print(f"{name}: {status} in {report['steps'][name]['seconds']} s", flush=True)
        # after each step, replaced whole: a run cut short by the command's time limit still brings back every
        # step it finished, and a kill during the write leaves the last complete file
        part = path.with_suffix(".json.part")
        part.write_text(json.dumps(report, indent=1, default=str) + "\n")
        os.replace(part, path)
    print(f"wrote {path}")
    return path


BEGIN, END = "<!-- GPU-REPORT: python -m realtime.gpu_report table JSON --doc PAGE -->", "<!-- /GPU-REPORT -->"


def write_between_markers(page: str | Path, text: str) -> None:
    """Put ``text`` between the page's GPU-REPORT markers (appended with them where the page has none)."""
    page = Path(page)
    old = page.read_text() if page.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1]
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + BEGIN + "\n" + text + "\n" + END + "\n"
    page.write_text(new)


TARGETS = {"hands_features_classifier_ms": 1.5, "fps_one_stream": 300, "frames_per_s_16_streams": 3000}  # issue 16


def _ms(x) -> str:
    return "-" if x is None else f"{x:.3f}" if x < 1 else f"{x:.2f}"


def tables(path: str | Path) -> str:
    """Markdown tables of one ``bench-gpu-<card>.json``: what ``table`` prints and the docs page holds."""
    r = json.loads(Path(path).read_text())
    steps = r["steps"]
    ok = {k: v["result"] for k, v in steps.items() if v["status"] == "ok"}
    out = [f"Card: **{r['card']}**, torch {r['torch']} (CUDA {r['cuda']}), numpy {r['numpy']}, Python {r['python']}; "
           f"clip: {r['clip']}, 640x480. Written by `python -m realtime.gpu_report run` on the lent machine; these "
           f"tables by `python -m realtime.gpu_report table {Path(path).name}`.", ""]
    failed = [f"{k} ({v['result'].get('error', '?')})" for k, v in steps.items() if v["status"] != "ok"]
    if failed:
        out += ["Steps that failed: " + "; ".join(failed), ""]
    if "live_path" in ok:
        out += ["**The live path** (`bench --source clip.mp4 --hands ENGINE --backend torch --device cuda`, "
                "asl-letters, lite hand models, batch 1, 300 frames; median ms per frame):", "",
                "| hands engine | capture (decode) | hands | features | classifier | smoothing | overlay | hands + features "
                f"+ classifier (target {TARGETS['hands_features_classifier_ms']}) | end to end | FPS (target "
                f"{TARGETS['fps_one_stream']}) |", "|---|" + "---:|" * 9]
        for engine, b in ok["live_path"].items():
            st = {k: v["median_ms"] for k, v in b["stages"].items()}
            core = st["hands"] + st["features"] + st["classifier"]
            out.append(f"| `{engine}` | " + " | ".join(_ms(st.get(k)) for k in ("capture", "hands", "features",
                       "classifier", "smoothing", "overlay")) + f" | {_ms(core)} | {_ms(b['end_to_end']['median_ms'])} "
                       f"| {b['fps']:.0f} |")
        out.append("")
    if "streams" in ok:
        first = next(iter(ok["streams"].values()))
        out += [f"**Many streams, one GPU** (`bench --streams N`: the clip as every stream, {first['steps']} steps "
                "timed; a step is one palm batch, one landmark batch, one classifier batch, and the full model's "
                "look at the streams due for it; decoding not timed; stages: median ms a step):", "",
                f"| hands engine | streams | frames/s in total (target at 16: {TARGETS['frames_per_s_16_streams']}) | "
                "step median ms | mean | p95 | max | hands | features | classifier |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key, b in ok["streams"].items():
            engine, lat, st = key.rsplit(" ", 1)[0], b["latency_ms"], b["stages_ms"]
            out.append(f"| `{engine}` | {b['streams']} | {b['frames_per_s']:.0f} | {_ms(lat['median'])} | "
                       f"{_ms(lat.get('mean'))} | {_ms(lat['p95'])} | {_ms(lat.get('max'))} | {_ms(st['hands'])} | "
                       f"{_ms(st['features'])} | {_ms(st['classifier'])} |")
        out.append("")
        slow = ok["streams"].get("torch 16", {}).get("slowest_steps")
        if slow:
            out += _slowest_steps(slow)
    if "host_profile" in ok:
        prof = ok["host_profile"]
        out += [f"**Where a 16-stream step's time goes** (cProfile over {prof['steps']} steps; the 12 functions that "
                "spent the most time themselves):", "", "| function | calls | own ms a step | with callees ms a step |",
                "|---|---:|---:|---:|"]
        out += [f"| `{f['function']}` | {f['calls']} | {_ms(f['own_ms_per_step'])} | {_ms(f['cumulative_ms_per_step'])} |"
                for f in prof["top_by_own_time"][:12]]
        out.append("")
    if "net_speed" in ok:
        out += ["**Each hand net alone** (input already on the GPU, synchronised; median / p95 ms of 200 calls):", "",
                "| net | precision | run as | batch 1 | batch 16 |", "|---|---|---|---:|---:|"]
        rows: dict = {}
        for key, v in ok["net_speed"].items():
            name, precision, how, _, batch = key.split()
            rows.setdefault((name, precision, how), {})[batch] = f"{_ms(v['median_ms'])} / {_ms(v['p95_ms'])}"
        for (name, precision, how), b in rows.items():
            out.append(f"| {name} | {precision} | {how} | {b.get('1', '-')} | {b.get('16', '-')} |")
        out.append("")
    if "net_parity" in ok:
        out += ["**Parity of the torch nets with ONNX Runtime (CPU)** on 6 frames of the clip (largest absolute "
                "difference per output; TF32 off):", "", "| net | output | fp32 | fp16 |", "|---|---|---:|---:|"]
        for name, v in ok["net_parity"].items():
            for i, o in enumerate(v["outputs"]):
                half = v.get("fp16_max_abs")
                out.append(f"| {name} | {o} | {v['max_abs'][i]:.1e} | {'-' if half is None else f'{half[i]:.1e}'} |")
        out.append("")
    if "pipeline_parity" in ok:
        out += ["**The whole tracking pipeline against `--hands onnx` on the CPU**, frame by frame (each crop comes "
                "from the last frame's landmarks, so differences feed back):", "",
                "| hands engine | frames | same number of hands | hands in both | landmarks apart, median px | worst px |",
                "|---|---:|---:|---:|---:|---:|"]
        for engine, v in ok["pipeline_parity"].items():
            out.append(f"| `{engine}` | {v['frames']} | {v['same_number_of_hands']} | {v['both_found']} | "
                       f"{v['median_landmark_px']:.2f} | {v['worst_landmark_px']:.2f} |")
        out.append("")
    if "reader_parity" in ok:
        v = ok["reader_parity"]
        a, b = v["against_no_fuse"], v["against_onnx_cpu"]
        out += [f"**The letter read in the landmark step** (`--hands torch --backend torch`, features and classifier "
                f"in the same CUDA graph; TF32 off), frame by frame over {v['frames']} frames, {v['read_on_device']} "
                f"read on the device. Against the same hands read on the host path (`--no-fuse`): the same letter in "
                f"{a['same_letter']} of {a['hand_in_both']}, probabilities at most {a['max_abs_probability']:.1e} "
                f"apart. Against `--hands onnx` with the classifier on ONNX Runtime's CPU (landmarks differ too): "
                f"{b['same_letter']} of {b['hand_in_both']}, at most {b['max_abs_probability']:.1e}.", ""]
    if "classifiers" in ok:
        out += ["**Each classifier on each backend there** (`bench --backends torch,onnxruntime`, batch 1, median ms; "
                "that machine's ONNX Runtime is CPU-only):", "", "| model | backend | median ms | status |",
                "|---|---|---:|---|"]
        for row in ok["classifiers"]["rows"]:
            why = "" if row["status"] == "ok" else f"{row['status']}: {(row.get('detail') or '')[:70]}"
            out.append(f"| {row['model']} | {row['backend']} | {_ms(row.get('median_ms'))} | {why or 'ok'} |")
        out.append("")
    if "sequence_reader" in ok:
        q = ok["sequence_reader"]
        live = q["live"]
        out += [f"**The sequence reader**: its streaming step in PyTorch on the GPU against ONNX Runtime on the CPU "
                f"over 200 frames: largest log-probability difference {q['step_max_abs_logp_vs_onnxruntime_cpu']:.1e}. "
                f"Live (`--reader sequence --hands torch --backend torch`): {live['fps']:.0f} FPS, end to end "
                f"{_ms(live['end_to_end']['median_ms'])} ms median, of which the reader "
                f"{_ms(live['stages']['classifier']['median_ms'])} ms.", ""]
    return "\n".join(out)


def _slowest_steps(slow: list) -> list[str]:
    """The 16-stream run's slowest steps, with what each did where the run recorded it (reports before 2026-11-30
    kept only each step's ms and its place in the clip)."""
    if not isinstance(slow[0], dict):
        return ["Its slowest steps (ms at step; steps count from the first warm-up step, the clip has 252 frames "
                "and loops): " + ", ".join(f"{ms:.1f} at {step}" for ms, step in slow) + ".", ""]
    out = ["Its slowest steps (steps count from the first warm-up step), with what each did (palm images, landmark crops, images of the `--redetect-after` "
           "full model, CUDA graphs captured, Python garbage collections, and the step's stages in ms):", "",
           "| ms | step | palm images | landmark crops | full model images | graph captures | gc (full) | hands | "
           "features | classifier |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in slow:
        st = r.get("stages_ms", {})
        out.append(f"| {r['ms']:.1f} | {r['step']} | {r['palm_images']} | {r['landmark_crops']} | "
                   f"{r['full_model_images']} | {r.get('cuda_graph_captures', r.get('cuda_graphs', '-'))} | "
                   f"{r.get('gc_collections', '-')} ({r.get('gc_full_collections', '-')}) | {_ms(st.get('hands'))} | "
                   f"{_ms(st.get('features'))} | {_ms(st.get('classifier'))} |")
    return out + [""]


def compare(paths: list[str | Path]) -> str:
    """One row per report (e.g. the runs of one session, as the GPU path changed): the headline figures, and the
    overlay stage, whose code never changes, as a yardstick of how fast that run's host CPU was."""
    out = ["| run | card | hands + features + classifier ms (target 1.5) | FPS (target 300) | overlay ms (host "
           "yardstick) | 16 streams frames/s (target 3,000) | 16 streams step median ms | steps timed |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for path in paths:
        r = json.loads(Path(path).read_text())
        ok = {k: v["result"] for k, v in r["steps"].items() if v["status"] == "ok"}
        live = ok.get("live_path", {}).get("torch")
        st = {k: v["median_ms"] for k, v in live["stages"].items()} if live else {}
        many = ok.get("streams", {}).get("torch 16")
        core = st["hands"] + st["features"] + st["classifier"] if st else None
        fps = f"{live['fps']:.0f}" if live else "-"
        total, median, steps = (f"{many['frames_per_s']:.0f}", _ms(many["latency_ms"]["median"]), many["steps"]) \
            if many else ("-", "-", "-")
        out.append(f"| {Path(path).stem} | {r['card']} | {_ms(core)} | {fps} | {_ms(st.get('overlay'))} | {total} | "
                   f"{median} | {steps} |")
    return "\n".join(out)


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
    ru.add_argument("--steps", help="only these steps, comma-separated (default: all): "
                                    + ", ".join(name for name, _ in STEPS))
    ta = sub.add_parser("table", help="markdown tables of a bench-gpu-<card>.json (here, after the run)")
    ta.add_argument("json", help="the report the run wrote, e.g. docs/bench-gpu-nvidia-h200.json")
    ta.add_argument("--doc", help="also write them into this markdown page, between its GPU-REPORT markers")
    co = sub.add_parser("compare", help="the headline figures of several reports, one row each")
    co.add_argument("json", nargs="+", help="reports, e.g. docs/bench-gpu-runs/*.json")
    args = p.parse_args(argv)
    if args.what == "prepare":
        print(prepare(args.folder, args.datasets))
    elif args.what == "compare":
        print(compare(args.json))
    elif args.what == "table":
        text = tables(args.json)
        print(text)
        if args.doc:
            write_between_markers(args.doc, text)
    else:
        run(args.folder, args.out, args.device, args.steps.split(",") if args.steps else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
