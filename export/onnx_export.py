"""PyTorch -> ONNX, one file with no external data, checked against PyTorch, plus its manifest.

    export_keypoint_model("runs/asl/model.pt", "weights/asl-letters", name="asl-letters")
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from realtime.manifest import MANIFEST, sha256_file

OPSET = 17


def max_relative_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Largest |got - want| over the outputs, each relative to its own scale max(1, max |want|): probabilities are at
    most 1 (so this is their absolute error), while embeddings and keypoints in pixels reach tens."""
    return float(max(np.abs(g.astype(np.float64) - w.astype(np.float64)).max() / max(1.0, float(np.abs(w).max()))
                     for g, w in zip(got, want)))


EMBEDDING = "embedding"  # the keypoint models' second output: penultimate activations, for personal calibration


def export_onnx(model, in_dim: int, path: Path, labels: list[str], metadata: dict | None = None,
                sample: np.ndarray | None = None, embedding: bool = True) -> float:
    """Write ``path`` (input ``features`` (batch, in_dim) -> output ``probs`` (batch, n) and, with ``embedding``,
    ``embedding`` (batch, hidden)); returns the parity error.

    The parity check runs ONNX Runtime and PyTorch on ``sample`` (real features where the
    caller has them) and prints the largest absolute difference of every output.
    """
    import onnx
    import torch

    from training.keypoint_model import WithSoftmax

    wrapped = WithSoftmax(model, embedding=embedding).eval()
    outputs = ["probs", EMBEDDING] if embedding else ["probs"]
    dummy = torch.zeros(2, in_dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapped, (dummy,), str(path), input_names=["features"], output_names=outputs,
                      dynamic_axes={n: {0: "batch"} for n in ["features"] + outputs}, opset_version=OPSET,
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
    got = sess.run(outputs, {"features": x})
    with torch.no_grad():
        want = wrapped(torch.from_numpy(x))
    want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
    err = max_relative_error(got, want)
    print(f"ONNX parity on {len(x)} inputs: max |onnxruntime - torch| = {err:.2e} (relative where an output exceeds 1)")
    if err > 1e-4:
        raise RuntimeError(f"ONNX export of {path} differs from PyTorch by {err:.2e}")
    return err


def write_manifest(folder: Path, name: str, labels: list[str], features: dict, training: dict, metrics: dict,
                   file: str = "model.onnx", hands: dict | None = None, embedding_dim: int | None = None) -> dict:
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
        **({"embedding": {"name": EMBEDDING, "shape": ["batch", embedding_dim], "dtype": "float32",
                          "meaning": "penultimate activations, compared by personal calibration (--profile)"}}
           if embedding_dim else {}),
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
                          extra_training: dict | None = None, held_out: dict | None = None) -> dict:
    """A ``model.pt`` from ``fingerspell train keypoints`` (with its metrics.json beside it) -> model folder.

    ``held_out``: the model's accuracy on people it never saw, as the README reports it (``fingerspell models``
    shows it); without it, the run's own test split (all its images, no hand found counting as wrong) if it had one.
    """
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
    if held_out is None and "test" in summary:
        signers = cfg.get("test_signers") or []
        held_out = {"accuracy": summary["test"]["accuracy"], "images": summary["test"]["images"],
                    "people": (f"the held-out signer(s) {', '.join(s.split('/')[-1] for s in signers)}" if signers
                               else summary.get("split")), "how": "cached MediaPipe keypoints of the photos -> features -> "
                    "classifier (no hand found counts as wrong)", "source": summary.get("command")}
    if held_out is not None:
        metrics["held_out"] = held_out
    return write_manifest(folder, name, labels, spec.to_dict(), training, metrics,
                          hands={"extraction": StaticSettings().to_dict()}, embedding_dim=model.hidden[1])


# --- J2S: image crop in, keypoints and probabilities out -------------------------------------------------------
def export_j2s_onnx(model, path: Path, labels: list[str], metadata: dict, sample: np.ndarray) -> float:
    """Write ``path``: input ``image`` (batch, 3, S, S) -> ``keypoints`` (batch, 21, 2), ``probs`` (batch, n).

    Returns the largest absolute difference between ONNX Runtime and PyTorch on ``sample`` (both outputs).
    """
    import onnx
    import torch

    from training.j2s_model import J2SExport

    wrapped = J2SExport(model).eval()
    size = model.config.input_size
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapped, (torch.zeros(2, 3, size, size),), str(path), input_names=["image"],
                      output_names=["keypoints", "probs"],
                      dynamic_axes={"image": {0: "batch"}, "keypoints": {0: "batch"}, "probs": {0: "batch"}},
                      opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(path))
    for k, v in {"labels": json.dumps(labels), **metadata}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))

    import onnxruntime as ort

    x = np.asarray(sample, dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got_kp, got_p = sess.run(["keypoints", "probs"], {"image": x})
    with torch.no_grad():
        want_kp, want_p = (t.numpy() for t in wrapped(torch.from_numpy(x)))
    err = float(max(np.abs(got_kp - want_kp).max(), np.abs(got_p - want_p).max()))
    print(f"ONNX parity on {len(x)} crops: max |onnxruntime - torch| = {err:.2e} (keypoints and probabilities)")
    if err > 1e-4:
        raise RuntimeError(f"ONNX export of {path} differs from PyTorch by {err:.2e}")
    return err


def measure_crop(data_dir: str | Path, exclude_signers: list[str], n: int = 300, seed: int = 0) -> dict:
    """How the dataset's crops frame the hand relative to the palm detector's ROI.

    Each training image *is* a crop; the runtime builds its crop from the ROI. The median of
    (image side / ROI side) and of the offset (image centre - ROI centre) / ROI side over ``n``
    training images make the runtime crop frame the hand as training did.
    """
    from realtime.hands.mediapipe import StaticPalmDetector
    from realtime.images import ImageFolder, read_image

    ds = ImageFolder(data_dir)
    pool = [s for s in ds.samples if s.signer not in set(exclude_signers)]
    rng = np.random.default_rng(seed)
    pick = [pool[i] for i in rng.choice(len(pool), min(n, len(pool)), replace=False)]
    detector = StaticPalmDetector()
    scales, offsets = [], []
    for s in pick:
        img = read_image(s.path)
        boxes = detector(img) if img is not None else []
        if boxes:
            b, (h, w) = boxes[0], img.shape[:2]
            side = max(h, w)
            scales.append(side / b.side)
            offsets.append(((w / 2 - b.center[0]) / b.side, (h / 2 - b.center[1]) / b.side))
    detector.close()
    if not scales:
        raise RuntimeError(f"the palm detector found no hand in {len(pick)} images of {data_dir}")
    off = np.median(np.asarray(offsets), axis=0)
    return {"scale": float(np.median(scales)), "offset": [float(off[0]), float(off[1])], "measured_on": ds.name,
            "images": len(pick), "palms_found": len(scales),
            "meaning": "crop side = ROI side * scale; crop centre = ROI centre + offset * ROI side"}


def export_j2s_model(model_pt: str | Path, folder: str | Path, name: str | None = None,
                     data_dir: str | Path | None = None, extra_training: dict | None = None) -> dict:
    """A ``model.pt`` from ``fingerspell train j2s`` (metrics.json beside it) -> model folder for ``--keypoints j2s``.

    ``data_dir`` (default: the dataset the model was trained on) supplies real crops for the parity
    check and the crop framing (:func:`measure_crop`).
    """
    from training.j2s_data import load_crops, normalise
    from training.train_j2s import load_j2s

    model_pt, folder = Path(model_pt), Path(folder)
    model, labels = load_j2s(model_pt)
    summary = json.loads((model_pt.parent / "metrics.json").read_text())
    cfg = summary["config"]
    data_dir = Path(data_dir or cfg["data"])
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset {data_dir} not found: J2S export measures its crop framing on the training "
                                "data (give its folder)")
    name = name or folder.name
    crops = load_crops(data_dir, labels, size=model.config.input_size, progress=False)
    rows = np.random.default_rng(0).choice(len(crops), 32, replace=False)
    err = export_j2s_onnx(model, folder / "model.onnx", labels, {"name": name, "kind": "j2s"},
                          normalise(crops.images[rows]))
    crop = measure_crop(data_dir, cfg["test_signers"] if cfg["split"] == "signer" else [])
    onnx_path = folder / "model.onnx"
    size = model.config.input_size
    test = summary.get("test") or {}
    metrics = {"onnx_parity_max_abs": err}
    if test:
        c, k = test["classification"], test["keypoints_256px"]
        metrics["test"] = {"images": c["images"], "accuracy": c["accuracy"], "macro_f1": c["macro_f1"],
                           "epe_median_256px": k["epe_median"], "epe_mean_256px": k["epe_mean"], "auc": k["auc"],
                           "note": "on the dataset's own crops; 'fingerspell eval --keypoints j2s' measures the "
                                   "whole path (palm detector -> crop -> J2S)"}
    manifest = {
        "name": name, "kind": "j2s", "file": "model.onnx", "sha256": sha256_file(onnx_path),
        "bytes": onnx_path.stat().st_size, "labels": labels,
        "input": {"name": "image", "shape": ["batch", 3, size, size], "dtype": "float32"},
        "output": {"name": "probs", "shape": ["batch", len(labels)], "dtype": "float32",
                   "meaning": "class probabilities (softmax), in the order of labels"},
        "outputs": {"keypoints": "(batch, 21, 2): x, y of MediaPipe's 21 hand joints as fractions of the crop",
                    "probs": "(batch, classes)"},
        "normalisation": summary["normalisation"], "crop": crop, "model": summary["model"],
        "training": {"data": [data_dir.name], "data_sha256": summary.get("data_sha256"),
                     "datasets_env": "FINGERSPELL_DATASETS (the datasets are not in the repository; see README)",
                     "split": summary.get("split"), "counts": summary.get("counts"), "command": summary.get("command"),
                     "config": cfg, **(extra_training or {})},
        "metrics": metrics, "created": _dt.date.today().isoformat(), "opset": OPSET,
        "licence": "weights: Apache-2.0; trained on the lis dataset (no licence stated by its source)",
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
