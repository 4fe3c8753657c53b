"""Export a trained image classifier (``fingerspell train classifier``'s ``best.pt``) as a shipped model folder:
``model.onnx`` (input ``image`` (batch, 3, S, S) RGB in -1..1, output ``probs``) and a manifest of kind
``image-classifier`` that the runtime (``realtime.crop_classifier``) checks before use.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from export.onnx_export import MIN_OPSET, export_onnx
from realtime.manifest import file_fields, write_manifest
from realtime.crops import CROP_SCALE


def _with_softmax(model):
    """The classifier with a softmax on top: the file outputs probabilities, as every shipped model does."""
    import torch

    return torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()


def generated_summary(folder) -> dict | None:
    """What a classifier's generated training images were and how they were made, from the folder's
    ``generated.json`` (written by ``fingerspell generate`` and ``fingerspell translate``)."""
    if not folder:
        return None
    info_path = Path(folder) / "generated.json"
    if not info_path.is_file():
        return {"folder": str(folder)}
    info = json.loads(info_path.read_text())
    keep = ("model", "step", "per_class", "images", "seed", "pose_datasets", "exclude_signers", "command",
            "generator_command")
    return {"folder": str(folder), "generator": info.get("config", {}).get("name"),
            "generator_held_out": info.get("config", {}).get("exclude_signers"),
            **{k: info[k] for k in keep if k in info}}


def export_image_classifier(run: str | Path, folder: str | Path, name: str | None = None,
                            real_images: np.ndarray | None = None, metrics: dict | None = None) -> dict:
    """``run`` (a classifier folder with best.pt) -> ``folder``/model.onnx + manifest.json.

    ``real_images`` (N, S, S, 3) uint8 RGB crops: the parity check's real inputs (random ones are always used).
    """
    from training.image_classifier import ImageClassifier, to_input

    clf = ImageClassifier.load(run)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or folder.name
    s = clf.size
    rng = np.random.default_rng(0)
    example = {"image": rng.uniform(-1, 1, (4, 3, s, s)).astype(np.float32)}
    parity_sets = {"random": example}
    if real_images is not None and len(real_images):
        pick = rng.choice(len(real_images), min(64, len(real_images)), replace=False)
        parity_sets["real"] = {"image": to_input(real_images[np.sort(pick)]).numpy()}
    config = clf.info.get("config", {})
    extra = config.get("extra", {})
    summary = export_onnx(_with_softmax(clf.model), example, folder / "model.onnx", ["probs"],
                          {"labels": clf.labels, "name": name, "kind": "image-classifier", "size": s},
                          parity_inputs=parity_sets, opset=MIN_OPSET, tolerance=1e-3)
    onnx_path = folder / "model.onnx"
    manifest = {
        "name": name,
        "kind": "image-classifier",
        **file_fields(onnx_path),
        "labels": clf.labels,
        "arch": clf.info.get("arch"),
        "input": {"name": "image", "shape": ["batch", 3, s, s], "dtype": "float32",
                  "normalisation": "RGB, x / 127.5 - 1 (range -1..1)"},
        "crop": {"framing": extra.get("crop", "hand"), "scale": CROP_SCALE, "size": s,
                 "meaning": "hand: a square around the 21 landmarks' box, enlarged by scale (realtime.crops); "
                            "whole: the whole photo squashed to a square"},
        "output": {"name": "probs", "shape": ["batch", len(clf.labels)], "dtype": "float32",
                   "meaning": "class probabilities (softmax), in the order of labels"},
        "training": {
            "data": (list(extra["data"]) if isinstance(extra.get("data"), (list, tuple))
                     else [extra["data"]] if extra.get("data") else []),
            **({"alphabet": extra["alphabet"]} if extra.get("alphabet") else {}),
            **({"sampling": extra["sampling"]} if extra.get("sampling") else {}),
            "data_sha256": extra.get("data_sha256"),
            "datasets_env": "FINGERSPELL_DATASETS (the datasets are not in the repository; see README)",
            "config": {**{k: v for k, v in config.items() if k != "extra"},
                       "test_signers": extra.get("test_signers", []),
                       **({"test_datasets": extra["test_datasets"]} if "test_datasets" in extra else {})},
            "strategy": clf.info.get("strategy"),
            "generated": generated_summary(extra.get("generated")),
            "best_epoch": clf.info.get("epoch"),
            "command": extra.get("command"),
        },
        "metrics": {"val_accuracy": clf.info.get("val_acc"), "onnx_parity_max_abs": summary["parity"],
                    **(metrics or {})},
        "created": _dt.date.today().isoformat(),
        "opset": MIN_OPSET,
    }
    return write_manifest(folder, manifest)
