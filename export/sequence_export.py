"""A sequence reader (``fingerspell train sequence``'s ``model.pt``) -> model folder for ``--reader sequence``:
``model.onnx`` takes the last ``window`` frames (batch, window, features) and gives the letter log-probabilities
of the newest one (batch, classes), which is all a stream needs; the model is causal, and ``valid`` marks where
the stream began, so that is exactly what the whole sequence would give for that frame.

``step.onnx`` (:func:`write_stream_step`) gives the same output from the newest frame alone and a carried state (each
layer's last inputs that its dilated convolution still needs): per frame it costs one column of each layer instead of
the whole window, and it is checked against ``model.onnx`` frame by frame on a stream."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from export.onnx_export import OPSET, export_onnx
from realtime.manifest import ModelError, file_fields, staged_folder, write_manifest
from realtime.sequence_step import state_size, step_module, window_layers


def export_sequence_model(run: str | Path, folder: str | Path, name: str | None = None,
                          command: str | None = None) -> dict:
    """A sequence model's run (``model.pt`` and ``metrics.json``) -> model folder for ``--reader sequence``. The
    files go into ``folder`` only when the whole export succeeded (:func:`realtime.manifest.staged_folder`)."""
    with staged_folder(folder) as stage:
        return _export_sequence_model(run, stage, name or Path(folder).name, command)


def _export_sequence_model(run: str | Path, folder: str | Path, name: str | None = None,
                           command: str | None = None) -> dict:
    import torch

    from training.sequence_model import SPEC, load_trained_sequence

    run, folder = Path(run), Path(folder)
    model = load_trained_sequence(run / "model.pt")
    config, in_dim = model.config, model.inp.in_features

    class LastFrame(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, frames, valid):
            return self.m(frames, valid)[:, -1]

    window = model.receptive_field
    rng = np.random.default_rng(0)
    sample = rng.normal(0, 0.5, (16, window, in_dim)).astype(np.float32)
    sample[..., -1] = 1.0  # the hand-found flag
    valid = (np.arange(window)[None, :] >= rng.integers(0, window, (16, 1))).astype(np.float32)  # streams' starts
    valid[:4] = 1.0
    name = name or folder.name
    summary = export_onnx(LastFrame(model).eval(), {"frames": sample[:2], "valid": valid[:2]}, folder / "model.onnx",
                          ["log_probs"], {"labels": json.dumps(config.classes), "name": name, "kind": "sequence-reader"},
                          parity_inputs={"random": {"frames": sample, "valid": valid}}, opset=OPSET)
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = {
        "name": name, "kind": "sequence-reader", **file_fields(folder / "model.onnx"), "labels": config.classes,
        "features": SPEC.to_dict(), "window": window, "blank": 0,
        "input": {"name": "frames", "shape": ["batch", window, in_dim], "dtype": "float32",
                  "meaning": "per frame: the features, their change per 1/30 s, a hand-found flag (0: all zeros)"},
        "stream_mask": {"name": "valid", "shape": ["batch", window], "dtype": "float32",
                        "meaning": "1 for the frames of the stream, 0 for the window's places before its first frame"},
        "output": {"name": "log_probs", "shape": ["batch", len(config.classes)], "dtype": "float32",
                   "meaning": "log-probabilities of blank, the letters and space for the newest frame (CTC)"},
        "training": {"config": asdict(config), "train": metrics["train"], "val": metrics["val"],
                     "data": metrics.get("train_manifests") or [metrics["train_manifest"]],  # older runs: one set
                     "pretrained_on": metrics.get("pretrained_on"),
                     "synthetic_only": metrics.get("synthetic_only", True),
                     "command": command or "fingerspell train sequence --train ... --val ... --export ..."},
        "metrics": {"best": metrics["best"], "onnx_parity_max_abs": summary["parity"]["random"],
                    "note": "character error rate on the validation sequences of held-out signers (stitched: "
                            "synthetic; held photos: real hands held still)"},
        "created": _dt.date.today().isoformat(), "opset": OPSET,
    }
    write_manifest(folder, manifest)
    return write_stream_step(folder, command=command)


def export_sequence_folder(model: str | Path, out: str | Path, name: str | None = None,
                           command: str | None = None) -> dict:
    """A sequence reader's folder (shipped name or path) -> ``out`` with its streaming step: ``model.onnx`` as it
    is, ``step.onnx`` made from it (:func:`write_stream_step`). ``out`` may be the folder itself: the model does not
    change, its step is added or made again. Nothing lands in ``out`` unless all of it succeeded."""
    import shutil

    from realtime.backends.onnxruntime import checked_model_file
    from realtime.manifest import MANIFEST, copy_companions

    src, m, path = checked_model_file(model, kind="sequence-reader")  # a letter model here is told so, not exported
    manifest = json.loads((src / MANIFEST).read_text())
    manifest.pop("stream_step", None)
    manifest["name"] = name or Path(out).name
    with staged_folder(out) as stage:
        shutil.copy(path, stage / m.file)
        copy_companions(src, stage)
        write_manifest(stage, manifest)
        return write_stream_step(stage, command=command)


STEP_FILE = "step.onnx"
STEP_TOLERANCE = 1e-4  # largest |step - window| log-probability over a stream, else the export is refused


def stream_parity(folder: Path, state_shape: list[int], frames: int = 160, seed: int = 0) -> float:
    """Largest |step - window| log-probability over a random stream (two streams, the second after a reset) read
    frame by frame as :class:`realtime.sequence_reader.SequenceReader` reads it, both through ONNX Runtime."""
    import onnxruntime as ort

    manifest = json.loads((folder / "manifest.json").read_text())
    window, in_dim = manifest["window"], manifest["input"]["shape"][2]
    win = ort.InferenceSession(str(folder / manifest["file"]), providers=["CPUExecutionProvider"])
    step = ort.InferenceSession(str(folder / STEP_FILE), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for length in (frames, window // 2):  # a stream longer than the window, and one that never fills it
        x = rng.normal(0, 0.5, (length, in_dim)).astype(np.float32)
        x[:, -1] = rng.random(length) > 0.2  # the hand-found flag
        buf, valid = np.zeros((1, window, in_dim), np.float32), np.zeros((1, window), np.float32)
        state = np.zeros([1, *state_shape], np.float32)
        for i in range(length):
            buf = np.roll(buf, -1, 1)
            buf[0, -1] = x[i]
            valid[0, -min(i + 1, window):] = 1.0
            want = win.run(None, {"frames": buf, "valid": valid})[0]
            got, state = step.run(None, {"frame": x[i:i + 1], "state": state})
            worst = max(worst, float(np.abs(got - want).max()))
    return worst


def write_stream_step(folder: str | Path, command: str | None = None) -> dict:
    """``step.onnx`` beside a sequence reader's ``model.onnx`` (the same weights, read from it), checked against it
    on streams (:func:`stream_parity`), and recorded in the manifest (``stream_step``); returns the manifest."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    layers = window_layers(folder / manifest["file"])
    size, in_dim = state_size(layers), layers["inp_w"].shape[0]
    channels = layers["inp_w"].shape[1]
    if size + 1 != manifest["window"]:
        raise ModelError(f"{folder}: the layers reach back {size + 1} frames, the manifest's window is "
                         f"{manifest['window']}")
    rng = np.random.default_rng(0)
    sample = {"frame": rng.normal(0, 0.5, (8, in_dim)).astype(np.float32),
              "state": rng.normal(0, 0.5, (8, channels, size)).astype(np.float32)}
    step = export_onnx(step_module(layers), {k: v[:2] for k, v in sample.items()}, folder / STEP_FILE,
                       ["log_probs", "next_state"], {"labels": json.dumps(manifest["labels"]),
                                                     "name": manifest["name"], "kind": "sequence-reader-step"},
                       parity_inputs={"random": sample}, opset=OPSET)
    manifest["stream_step"] = {
        **file_fields(folder / STEP_FILE),
        "frame": {"name": "frame", "shape": ["batch", in_dim], "dtype": "float32",
                  "meaning": "the newest frame's input, as one row of model.onnx's frames"},
        "state": {"name": "state", "shape": ["batch", channels, size], "dtype": "float32",
                  "meaning": "each block's last inputs its dilated convolution still needs; zeros at a stream's start"},
        "outputs": {"log_probs": "as model.onnx's", "next_state": "the state for the next frame"},
        "onnx_parity_max_abs": step["parity"]["random"],
        "command": command or f"fingerspell export --model {manifest['name']} --out {folder}",
    }
    err = stream_parity(folder, [channels, size])
    if not err <= STEP_TOLERANCE:  # the manifest is not written: the reader never loads a step that failed
        (folder / STEP_FILE).unlink()
        raise ModelError(f"{STEP_FILE} differs from {manifest['file']} by {err:.2e} on a stream: not written")
    manifest["stream_step"]["stream_parity_max_abs"] = err
    print(f"{manifest['name']}: {STEP_FILE}, the streaming step, {err:.1e} from {manifest['file']} over a stream")
    return write_manifest(folder, manifest)
