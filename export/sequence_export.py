"""A sequence reader (``fingerspell train sequence``'s ``model.pt``) -> model folder for ``--reader sequence``:
``model.onnx`` takes the last ``window`` frames (batch, window, features) and gives the letter log-probabilities
of the newest one (batch, classes), which is all a stream needs; the model is causal, and ``valid`` marks where
the stream began, so that is exactly what the whole sequence would give for that frame."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from export.onnx_export import OPSET, export_onnx
from realtime.manifest import file_fields, staged_folder, write_manifest


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
    return write_manifest(folder, manifest)
