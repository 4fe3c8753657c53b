"""PyTorch -> ONNX, one file with no external data, checked against PyTorch, plus its manifest.

    export_keypoint_model("runs/asl/model.pt", "weights/asl-letters", name="asl-letters")
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from realtime.classifier import MANIFEST, sha256_file

OPSET = 17


def export_onnx(model, in_dim: int, path: Path, labels: list[str], metadata: dict | None = None,
                sample: np.ndarray | None = None) -> float:
    """Write ``path`` (input ``features`` (batch, in_dim) -> output ``probs`` (batch, n)); returns the parity error.

    The parity check runs ONNX Runtime and PyTorch on ``sample`` (real features where the
    caller has them) and prints the largest absolute difference of the probabilities.
    """
    import onnx
    import torch

    from training.keypoint_model import WithSoftmax

    wrapped = WithSoftmax(model).eval()
    dummy = torch.zeros(2, in_dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapped, (dummy,), str(path), input_names=["features"], output_names=["probs"],
                      dynamic_axes={"features": {0: "batch"}, "probs": {0: "batch"}}, opset_version=OPSET,
                      dynamo=False)
    proto = onnx.load(str(path))
    for k, v in {"labels": json.dumps(labels), **(metadata or {})}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))

    import onnxruntime as ort

    x = sample if sample is not None else np.random.default_rng(0).normal(size=(64, in_dim))
    x = np.asarray(x, dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["probs"], {"features": x})[0]
    with torch.no_grad():
        want = wrapped(torch.from_numpy(x)).numpy()
    err = float(np.abs(got - want).max())
    print(f"ONNX parity on {len(x)} inputs: max |onnxruntime - torch| = {err:.2e}")
    if err > 1e-4:
        raise RuntimeError(f"ONNX export of {path} differs from PyTorch by {err:.2e}")
    return err


def write_manifest(folder: Path, name: str, labels: list[str], features: dict, training: dict, metrics: dict,
                   file: str = "model.onnx", hands: dict | None = None) -> dict:
    """manifest.json beside the ONNX file: what the runtime checks, and how the model was made."""
    onnx_path = folder / file
    manifest = {
        "name": name,
        "kind": "keypoint-classifier",
        "file": file,
        "sha256": sha256_file(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "labels": labels,
        "features": features,
        "input": {"name": "features", "shape": ["batch", features["dim"]], "dtype": "float32"},
        "output": {"name": "probs", "shape": ["batch", len(labels)], "dtype": "float32",
                   "meaning": "class probabilities (softmax), in the order of labels"},
        "hands": hands or {},
        "training": training,
        "metrics": metrics,
        "created": _dt.date.today().isoformat(),
        "opset": OPSET,
        "licence": training.get("licence", ""),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def export_keypoint_model(model_pt: str | Path, folder: str | Path, name: str | None = None,
                          extra_training: dict | None = None) -> dict:
    """A ``model.pt`` from ``fingerspell train keypoints`` (with its metrics.json beside it) -> model folder."""
    from realtime.hands import StaticSettings
    from training.train_keypoints import load_trained

    model_pt, folder = Path(model_pt), Path(folder)
    model, labels, spec = load_trained(model_pt)
    metrics_path = model_pt.parent / "metrics.json"
    summary = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    name = name or folder.name
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(64, spec.dim)).astype(np.float32)  # BatchNorm-normalised model: any scale works
    err = export_onnx(model, spec.dim, folder / "model.onnx", labels,
                      {"name": name, "features": spec.to_dict()}, sample)
    cfg = summary.get("config", {})
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
    return write_manifest(folder, name, labels, spec.to_dict(), training, metrics,
                          hands={"extraction": StaticSettings().to_dict()})
