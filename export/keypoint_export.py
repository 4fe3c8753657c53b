"""A keypoint classifier (``fingerspell train keypoints``'s ``model.pt``) -> model folder: ``model.onnx`` (input
``features`` -> ``probs`` and ``embedding``) and its manifest.

    export_keypoint_model("runs/asl/model.pt", "weights/asl-letters", name="asl-letters")
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from export.onnx_export import OPSET, export_onnx
from realtime.manifest import file_fields, staged_folder, write_manifest

EMBEDDING = "embedding"  # the keypoint models' second output: penultimate activations, for personal calibration


def export_keypoint_onnx(model, in_dim: int, path: Path, labels: list[str], metadata: dict | None = None,
                         sample: np.ndarray | None = None, embedding: bool = True) -> float:
    """Write ``path`` (input ``features`` (batch, in_dim) -> output ``probs`` (batch, n) and, with ``embedding``,
    ``embedding`` (batch, hidden)) through :func:`export.onnx_export.export_onnx`; returns the parity error on
    ``sample`` (real features where the caller has them)."""
    from training.keypoint_model import WithSoftmax

    wrapped = WithSoftmax(model, embedding=embedding).eval()
    outputs = ["probs", EMBEDDING] if embedding else ["probs"]
    x = sample if sample is not None else np.random.default_rng(0).normal(size=(64, in_dim))
    x = np.asarray(x, dtype=np.float32)
    example = {"features": np.zeros((2, in_dim), np.float32)}
    summary = export_onnx(wrapped, example, path, outputs, {"labels": json.dumps(labels), **(metadata or {})},
                          parity_inputs={"sample": {"features": x}}, opset=OPSET)
    return summary["parity"]["sample"]


def keypoint_manifest(folder: Path, name: str, labels: list[str], features: dict, training: dict, metrics: dict,
                      file: str = "model.onnx", hands: dict | None = None, embedding_dim: int | None = None,
                      tuning: dict | None = None) -> dict:
    """manifest.json beside the ONNX file: what the runtime checks, and how the model was made."""
    manifest = {
        "name": name,
        "kind": "keypoint-classifier",
        **file_fields(folder / file),
        "labels": labels,
        "features": features,
        "input": {"name": "features", "shape": ["batch", features["dim"]], "dtype": "float32"},
        "output": {"name": "probs", "shape": ["batch", len(labels)], "dtype": "float32",
                   "meaning": "class probabilities (softmax), in the order of labels"},
        **({"embedding": {"name": EMBEDDING, "shape": ["batch", embedding_dim], "dtype": "float32",
                          "meaning": "penultimate activations, compared by personal calibration (--profile)"}}
           if embedding_dim else {}),
        **({"tuning": tuning} if tuning else {}),
        "hands": hands or {},
        "training": training,
        "metrics": metrics,
        "created": _dt.date.today().isoformat(),
        "opset": OPSET,
        "licence": training.get("licence", ""),
    }
    return write_manifest(folder, manifest)


def write_tuning(model, model_pt: Path, folder: Path, sample: np.ndarray) -> dict | None:
    """``tuning.npz`` beside the ONNX file (the model's weights and its exemplar bank, for personal tuning:
    :mod:`realtime.personal_tuning`) and its manifest entry; None for a run that kept no exemplar bank."""
    import torch

    from realtime.personal_tuning import TUNING_FILE, Tuning
    from training.keypoint_model import fold_batchnorm
    from training.train_keypoints import load_exemplars

    bank = load_exemplars(model_pt)
    if bank is None:
        return None
    mlp = fold_batchnorm(model)
    with torch.no_grad():
        want = torch.softmax(model(torch.from_numpy(sample)), -1).numpy()
    err = float(np.abs(mlp(sample) - want).max())
    if err > 1e-4:
        raise ValueError(f"the folded weights for tuning read {err:.2g} away from the model: not exported")
    Tuning(mlp, *bank).save(folder / TUNING_FILE)
    per_label = int(np.bincount(bank[1]).max())
    return {**file_fields(folder / TUNING_FILE), "exemplars_per_label": per_label, "parity_max_abs": err,
            "meaning": "the model's weights (BatchNorm folded) and an exemplar bank of training hands' features, "
                       "replayed when a profile tunes the model to one person (realtime/personal_tuning.py)"}


def export_keypoint_model(model_pt: str | Path, folder: str | Path, name: str | None = None,
                          extra_training: dict | None = None, held_out: dict | None = None) -> dict:
    """A ``model.pt`` from ``fingerspell train keypoints`` (with its metrics.json beside it) -> model folder.

    ``held_out``: the model's accuracy on people it never saw, as the README reports it (``fingerspell models``
    shows it); without it, the run's own test split (all its images, no hand found counting as wrong) if it had one.

    The files go into ``folder`` only when the whole export succeeded (:func:`realtime.manifest.staged_folder`).
    """
    with staged_folder(folder) as stage:
        return _export_keypoint_model(model_pt, stage, name or Path(folder).name, extra_training, held_out)


def _export_keypoint_model(model_pt: str | Path, folder: str | Path, name: str | None = None,
                           extra_training: dict | None = None, held_out: dict | None = None) -> dict:
    """The export itself, into ``folder`` (the staging folder of the public function)."""
    from realtime.hands import TRAINING_VIEWS, StaticSettings
    from training.train_keypoints import load_trained

    model_pt, folder = Path(model_pt), Path(folder)
    model, labels, spec = load_trained(model_pt)
    metrics_path = model_pt.parent / "metrics.json"
    summary = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    name = name or folder.name
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(64, spec.dim)).astype(np.float32)  # BatchNorm-normalised model: any scale works
    err = export_keypoint_onnx(model, spec.dim, folder / "model.onnx", labels,
                               {"name": name, "features": spec.to_dict()}, sample)
    cfg = summary.get("config", {})
    learned_views = cfg.get("training_views", TRAINING_VIEWS)
    training = {
        "data": [Path(d).name for d in cfg.get("data", [])],
        "data_sha256": summary.get("data_sha256"),
        "datasets_env": "FINGERSPELL_DATASETS (the datasets are not in the repository; see README)",
        "split": summary.get("split"),
        "counts": summary.get("counts"),
        "train_groups": summary.get("train_data"),
        "command": summary.get("command"),
        "config": cfg,
        "best_epoch": summary.get("best_epoch"),
        **(extra_training or {}),
    }
    metrics = {"val_accuracy": summary.get("val_accuracy"), "onnx_parity_max_abs": err}
    if "test" in summary:
        t = summary["test"]
        metrics["test"] = {k: t[k] for k in ("images", "detected", "detection_rate", "accuracy", "accuracy_detected",
                                             "macro_f1")}
    if held_out is None and "test" in summary:
        signers = cfg.get("test_signers") or []
        held_out = {"accuracy": summary["test"]["accuracy"], "images": summary["test"]["images"],
                    "people": (f"the held-out signer(s) {', '.join(s.split('/')[-1] for s in signers)}" if signers
                               else summary.get("split")), "how": "cached MediaPipe keypoints of the photos -> features -> "
                    "classifier (no hand found counts as wrong)", "source": summary.get("command")}
    if held_out is not None:
        metrics["held_out"] = held_out
    tuning = write_tuning(model, model_pt, folder, sample)
    if tuning is not None:
        metrics["tuning_parity_max_abs"] = tuning.pop("parity_max_abs")
    return keypoint_manifest(folder, name, labels, spec.to_dict(), training, metrics, tuning=tuning,
                             hands={"extraction": StaticSettings().to_dict(), "training_views": learned_views,
                                    "training_views_why": "the model learned only from hands the first "
                                    f"{learned_views} views of the extraction found; all of them read new photos"},
                             embedding_dim=model.hidden[1])


