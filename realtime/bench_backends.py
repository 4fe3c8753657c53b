"""``fingerspell bench --backends all``: each stage on each backend, side by side.

For every letter model (the classifier stage) and every backend variant that can run here, it times batch-1
calls on real inputs (median and p95 milliseconds, FPS of back-to-back calls), gives the size of what the
backend loads, and the top-1 accuracy of that backend on the model's held-out set
(:func:`export.real_inputs.eval_set`), so that what FP16 or INT8 costs in accuracy shows next to what it
saves in time. INT8 engines are calibrated on the training data with the evaluation images left out
(:func:`export.real_inputs.calibration_inputs`), so their accuracy is measured on samples calibration never
saw. Variants that cannot run here are listed with the reason. With ``--source`` the hands stage is timed
too, for MediaPipe's own graph and its ONNX port (``--hands onnx``), with the fraction of frames where a
hand was found in place of an accuracy.

Profiles: ``default`` (every variant: ONNX Runtime CPU / CUDA / TensorRT EP, native TensorRT FP32 / FP16 /
INT8, PyTorch CPU / CUDA / CUDA graphs) and ``edge`` (what an edge GPU such as a Jetson would run: batch 1,
FP16 only).
"""
from __future__ import annotations

import csv
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from realtime.backends import BACKENDS, BackendError, make_backend, select_providers

PROFILES = ("default", "edge")
BACKEND_NAMES = tuple(b for b in BACKENDS if b != "auto")  # "auto" is onnxruntime under another name
ACCURACY_BATCH = 32  # the default engine profile's largest batch; a backend with a smaller max_batch gets smaller ones


@dataclass
class Variant:
    backend: str
    device: str
    precision: str = "fp32"
    cuda_graphs: bool = False

    @property
    def label(self) -> str:
        parts = [self.backend, self.device if self.backend != "tensorrt" else "", self.precision]
        return "-".join(p for p in parts if p) + ("-graphs" if self.cuda_graphs else "")


def variants(backends: list[str], profile: str = "default") -> list[Variant]:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "edge":
        table = [Variant("onnxruntime", "cuda", "fp16"), Variant("tensorrt", "cuda", "fp16"),
                 Variant("torch", "cuda", "fp16", cuda_graphs=True)]
    else:
        table = [Variant("onnxruntime", "cpu"), Variant("onnxruntime", "cuda"), Variant("onnxruntime", "cuda", "fp16"),
                 Variant("tensorrt", "cuda"), Variant("tensorrt", "cuda", "fp16"), Variant("tensorrt", "cuda", "int8"),
                 Variant("torch", "cpu"), Variant("torch", "cuda"), Variant("torch", "cuda", cuda_graphs=True),
                 Variant("torch", "cuda", "fp16", cuda_graphs=True)]
    return [v for v in table if v.backend in backends]


def unavailable(v: Variant) -> str | None:
    """Why this variant cannot run on this machine (every reason), or None."""
    if v.backend == "onnxruntime":
        if v.device != "cuda":
            return None
        try:
            providers, _ = select_providers("cuda", strict=True)
        except BackendError:
            import onnxruntime as ort

            return f"no GPU provider in this ONNX Runtime (it has {ort.get_available_providers()})"
        if v.precision == "fp16" and "TensorrtExecutionProvider" not in providers:
            return "fp16 in ONNX Runtime needs the TensorRT execution provider, which this ONNX Runtime lacks"
        return None
    reasons = []
    if v.backend == "tensorrt":
        try:
            from realtime.backends import import_tensorrt

            import_tensorrt()
        except BackendError as e:
            reasons.append(str(e).split(" (")[0])
    try:
        import torch

        if v.device == "cuda" and not torch.cuda.is_available():
            reasons.append("no CUDA GPU visible to PyTorch")
    except ImportError:
        reasons.append("PyTorch is not installed")
    return "; ".join(reasons) or None


def build_int8_engine(model: str) -> None:
    """An INT8 engine calibrated on the model's training datasets, with the held-out signers and the images of the
    evaluation set left out: the accuracy measured next is on samples the calibration never saw."""
    from export.real_inputs import training_datasets
    from export.tensorrt_engine import export_engine

    export_engine(model, int8=True, calib=training_datasets(model))


@dataclass
class Row:
    stage: str
    model: str
    backend: str
    device: str = ""
    precision: str = ""
    batch: int = 1
    median_ms: float | None = None
    p95_ms: float | None = None
    fps: float | None = None
    size_mb: float | None = None
    accuracy: float | None = None
    eval_n: int | None = None
    eval_set: str = ""
    detail: str = ""  # provider, engine file, ... or why it was skipped
    status: str = "ok"


def time_calls(fn, inputs: list, frames: int, warmup: int = 10) -> dict:
    """Call ``fn`` on ``inputs`` (cycled) ``warmup + frames`` times; milliseconds of the last ``frames`` calls."""
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    ms = np.empty(frames)
    for i in range(frames):
        x = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        fn(x)
        ms[i] = (time.perf_counter() - t0) * 1000
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "fps": float(1000.0 / ms.mean())}


def accuracy(backend, es, name: str = "probs") -> float:
    """Top-1 accuracy of ``backend`` (its output ``name``) on an :class:`export.real_inputs.EvalSet`, in batches the
    backend takes (a TensorRT engine says its profile's largest batch in ``max_batch``)."""
    step = max(1, min(ACCURACY_BATCH, getattr(backend, "max_batch", ACCURACY_BATCH)))
    hits = 0
    for start in range(0, len(es), step):
        rows = np.arange(start, min(start + step, len(es)))
        probs = backend.run(es.batch(rows))[name]
        hits += int((probs.argmax(1) == es.labels[rows]).sum())
    return hits / len(es)


def _calibration_note(model) -> str:
    return (f"no INT8 engine cached and no calibration data: fingerspell export --model {model} --format engine "
            "--int8 --calib DATASET_DIR (the training data; held-out signers are left out)")


def bench_classifier(model: str, v: Variant, es, why_no_data: str, frames: int, threads: int = 1) -> Row:
    from realtime.manifest import Manifest, ModelError, resolve_model

    folder = resolve_model(model)
    m = Manifest.load(folder)
    stage = "classifier (j2s crop)" if m.kind == "j2s" else "classifier (keypoints)"
    row = Row(stage, m.name, v.label, v.device, v.precision)
    reason = unavailable(v)
    if reason:
        row.status, row.detail = "skipped", reason
        return row
    from export.real_inputs import NoData

    def make():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make_backend(v.backend, folder, v.device, v.precision, threads=threads, cuda_graphs=v.cuda_graphs)

    try:
        try:
            backend = make()
        except BackendError as e:
            if not (v.precision == "int8" and "no int8 engine" in str(e)):
                raise
            build_int8_engine(folder)  # calibrated on the training data, where the datasets are here
            backend = make()
    except NoData as e:
        row.status, row.detail = "skipped", f"{_calibration_note(m.name)}; {e}"
        return row
    except ModelError as e:  # a backend that cannot run here (BackendError), or a model file it refuses
        row.status, row.detail = "skipped", str(e)
        return row
    try:
        row.device, row.detail = backend.device, backend.detail
        row.size_mb = backend.size_bytes / 1e6
        if es is not None:
            singles = [es.batch([i]) for i in np.random.default_rng(0).choice(len(es), min(frames, len(es)),
                                                                            replace=False)]
        else:
            shape = [int(d) for d in m.raw["input"]["shape"][1:]]
            rng = np.random.default_rng(0)
            singles = [{m.input_name: rng.normal(size=[1] + shape).astype(np.float32)} for _ in range(16)]
        row.__dict__.update(time_calls(backend.run, singles, frames))
        if es is not None:
            row.accuracy, row.eval_n, row.eval_set = accuracy(backend, es, m.output_name), len(es), es.description
        else:
            row.eval_set = f"no accuracy: {why_no_data}"
    finally:
        backend.close()
    return row


def bench_hands(source: str, hands: str, device: str, frames: int, size=(640, 480), hand_model: str = "lite") -> Row:
    from realtime.bench import letterbox
    from realtime.capture import ImageFolderReader, make_reader
    from realtime.hands import make_hands_stage

    label = {"onnx": "onnxruntime"}.get(hands, hands) + f"-{device}"
    row = Row(f"hands ({hand_model})", "mediapipe-hands", label, device, "fp16" if hands.endswith("fp16") else "fp32")
    if hands != "mediapipe" and device == "cuda":
        from realtime.backends import torch_device

        try:
            if hands.startswith("torch"):
                torch_device("cuda")
            else:
                select_providers("cuda", strict=True, tensorrt=False)
        except BackendError as e:
            row.status, row.detail = "skipped", str(e)
            return row
    if hands == "mediapipe" and device == "cuda":
        row.status, row.detail = "skipped", "MediaPipe's Python graph runs on the CPU"
        return row
    try:
        from realtime.pipeline import PipelineOptions

        # the live path's palm schedule, so that this row times what live and bench run
        stage = make_hands_stage(hands, model=hand_model, device=device, search_every=PipelineOptions.search_every)
    except Exception as e:  # the ONNX hand models may be missing or refused
        row.status, row.detail = "skipped", f"{type(e).__name__}: {e}"
        return row
    reader = make_reader(source)
    folder = isinstance(reader, ImageFolderReader)
    imgs = []
    while len(imgs) < min(frames, 200) and (img := reader.grab()) is not None:
        imgs.append(letterbox(img, size) if folder else img)
    reader.close()
    if not imgs:
        row.status, row.detail = "skipped", f"no readable frames in {source}"
        return row
    found = [bool(stage(f)) for f in imgs]
    row.__dict__.update(time_calls(stage, imgs, frames, warmup=5))
    close = getattr(stage, "close", None)
    if close:
        close()
    row.detail = ",".join(getattr(stage, "providers", []) or []) or ("MediaPipe graph" if hands == "mediapipe" else "")
    if getattr(stage, "preprocessing", None):  # the ONNX port: crops on the host, or on the GPU (realtime.torch_crops)
        row.detail += f"; crops: {stage.preprocessing}"
    row.accuracy, row.eval_n = float(np.mean(found)), len(found)
    row.eval_set = f"hand found in {len(found)} frames of {source} (letterboxed to {size[0]}x{size[1]})"
    row.size_mb = _hand_model_bytes(hands, hand_model) / 1e6 or None
    return row


def _hand_model_bytes(hands: str, model: str) -> int:
    if hands == "onnx":
        from realtime.manifest import weights_dir

        folder = weights_dir() / "mediapipe-hands"
        files = [folder / f"palm_detection_{model}.onnx", folder / f"hand_landmark_{model}.onnx"]
    else:
        try:
            import mediapipe

            base = Path(mediapipe.__file__).parent / "modules"
        except Exception:  # pragma: no cover
            return 0
        files = [base / "palm_detection" / f"palm_detection_{model}.tflite",
                 base / "hand_landmark" / f"hand_landmark_{model}.tflite"]
    return sum(f.stat().st_size for f in files if f.is_file())


def machine() -> dict:
    from realtime.bench import machine_description

    info = machine_description()
    try:
        import os

        info["loadavg_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine skews the times
    except (OSError, AttributeError):  # pragma: no cover
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"], info["gpu"] = None, None
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    return info


def machine_name(info: dict) -> str:
    gpu = info.get("gpu")
    return f"{info['cpu']} ({info['cores']} cores)" + (f" + {gpu}" if gpu else ", no GPU")


def run_backend_bench(backends: str | list[str] = "all", models: list[str] | None = None, profile: str = "default",
                      frames: int = 200, source: str | None = None, hands_model: str = "lite",
                      json_out: str | Path | None = None, csv_out: str | Path | None = None,
                      progress: bool = True, threads: int = 1) -> dict:
    from export.real_inputs import NoData, eval_set
    from realtime.manifest import available_models

    names = list(BACKEND_NAMES) if backends in ("all", ["all"]) else (
        backends.split(",") if isinstance(backends, str) else list(backends))
    bad = [b for b in names if b not in BACKEND_NAMES]
    if bad:
        raise ValueError(f"unknown backend(s) {bad}; choose from {BACKEND_NAMES} or 'all'")
    try:
        import torch

        torch.set_num_threads(threads)  # as ONNX Runtime's sessions here: one thread per model call
    except ImportError:
        pass
    info = machine()
    report = {"machine": info, "machine_name": machine_name(info), "profile": profile, "frames": frames,
              "threads": threads, "source": source, "rows": []}
    if progress:  # each row as soon as it is measured: a long run shows its figures, a crash keeps the ones so far
        print(format_header(report), flush=True)

    def measure(what: str, stage: str, model: str, label: str, bench, *args, **kwargs) -> None:
        if progress:
            print(f"bench: {what} ...", file=sys.stderr, flush=True)
        try:
            row = bench(*args, **kwargs)
        except Exception as e:  # one variant that fails must not lose the others: its row says why
            row = Row(stage, model, label, status="failed", detail=f"{type(e).__name__}: {e}")
        report["rows"].append(asdict(row))
        if progress:
            print(format_row(row), flush=True)

    for model in models or available_models():
        try:
            es, why = eval_set(model), ""
        except NoData as e:
            es, why = None, str(e)
        for v in variants(names, profile):
            measure(f"{model} {v.label}", "classifier", model, v.label, bench_classifier, model, v, es, why, frames,
                    threads)
    if source:
        from realtime.hands import HAND_PIPELINES

        for hands, device in [(h, d) for h in HAND_PIPELINES for d in ("cpu", "cuda") if (h, d) != ("mediapipe", "cuda")]:
            if profile == "edge" and device == "cpu":
                continue
            label = {"onnx": "onnxruntime"}.get(hands, hands) + f"-{device}"
            measure(f"hands {hands} {device}", f"hands ({hands_model})", "mediapipe-hands", label,
                    bench_hands, source, hands, device, frames, hand_model=hands_model)
    if progress:
        print(format_footer(report))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=1) + "\n")
    if csv_out:
        write_csv(report, csv_out)
    return report


COLUMNS = ("machine", "stage", "model", "backend", "device", "precision", "batch", "median_ms", "p95_ms", "fps",
           "size_mb", "accuracy", "eval_n", "status", "detail", "eval_set")


def write_csv(report: dict, path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for r in report["rows"]:
            out = {k: r.get(k) for k in COLUMNS}
            out["machine"] = report["machine_name"]
            for k in ("median_ms", "p95_ms"):
                out[k] = f"{r[k]:.4f}" if r[k] is not None else ""
            out["fps"] = f"{r['fps']:.1f}" if r["fps"] is not None else ""
            out["size_mb"] = f"{r['size_mb']:.3f}" if r["size_mb"] is not None else ""
            out["accuracy"] = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else ""
            w.writerow(out)


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_row(r: Row | dict) -> str:
    r = asdict(r) if isinstance(r, Row) else r
    if r["status"] != "ok":
        return f"{r['stage']:<24}{r['model']:<17}{r['backend']:<24} {r['status']}: {r['detail']}"
    acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.2%}"
    return (f"{r['stage']:<24}{r['model']:<17}{r['backend']:<24}{r['device']:<6}{r['batch']:>3}"
            f"{_fmt(r['median_ms'], '.3f'):>11}{_fmt(r['p95_ms'], '.3f'):>10}{_fmt(r['fps'], '.0f'):>9}"
            f"{_fmt(r['size_mb'], '.2f'):>9}{acc:>10}  {r['detail']}")


def format_header(report: dict) -> str:
    m = report["machine"]
    return "\n".join([
        f"machine: {report['machine_name']}; onnxruntime {m['onnxruntime']} {m['providers']}, "
        f"torch {m.get('torch') or '-'}, tensorrt {m.get('tensorrt') or '-'}; profile {report['profile']}, "
        f"{report['frames']} timed batch-1 calls per row, {report['threads']} CPU thread(s) per model call, "
        f"load average {m.get('loadavg_1min', '?')} at the start",
        f"{'stage':<24}{'model':<17}{'backend':<24}{'dev':<6}{'bs':>3}{'median ms':>11}{'p95 ms':>10}"
        f"{'FPS':>9}{'size MB':>9}{'accuracy':>10}  detail"])


def format_footer(report: dict) -> str:
    sets = {}
    for r in report["rows"]:
        if r["eval_set"] and r["status"] == "ok":
            sets.setdefault(r["model"], r["eval_set"])
    lines = ["", "accuracy on:"] + [f"  {k}: {v}" for k, v in sets.items()]
    if any(r["precision"] == "int8" and r["status"] == "ok" for r in report["rows"]):
        lines.append("INT8 engines are calibrated on the training data with these evaluation images left out")
    failed = sum(r["status"] == "failed" for r in report["rows"])
    if failed:
        lines.append(f"{failed} row(s) failed: each says why")
    return "\n".join(lines)


def format_table(report: dict) -> str:
    """The whole report at once (header, a line per row, footer)."""
    return "\n".join([format_header(report)] + [format_row(r) for r in report["rows"]] + [format_footer(report)])
