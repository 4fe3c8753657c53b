"""A J2S model (``fingerspell train j2s``'s ``model.pt``) -> model folder for ``--keypoints j2s``: ``model.onnx``
(input ``image`` -> ``keypoints`` and ``probs``), the crop framing measured on the training data, and the manifest.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from export.onnx_export import OPSET, export_onnx
from realtime.manifest import file_fields, staged_folder, write_manifest


def export_j2s_onnx(model, path: Path, labels: list[str], metadata: dict, sample: np.ndarray) -> float:
    """Write ``path``: input ``image`` (batch, 3, S, S) -> ``keypoints`` (batch, 21, 2), ``probs`` (batch, n), through
    :func:`export.onnx_export.export_onnx`. Returns the parity error on ``sample`` (both outputs)."""
    from training.j2s_model import J2SExport

    wrapped = J2SExport(model).eval()
    size = model.config.input_size
    example = {"image": np.zeros((2, 3, size, size), np.float32)}
    summary = export_onnx(wrapped, example, path, ["keypoints", "probs"], {"labels": json.dumps(labels), **metadata},
                          parity_inputs={"crops": {"image": np.asarray(sample, dtype=np.float32)}}, opset=OPSET)
    return summary["parity"]["crops"]


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

    The files go into ``folder`` only when the whole export succeeded (:func:`realtime.manifest.staged_folder`).
    """
    with staged_folder(folder) as stage:
        return _export_j2s_model(model_pt, stage, name or Path(folder).name, data_dir, extra_training)


def _export_j2s_model(model_pt: str | Path, folder: str | Path, name: str | None = None,
                      data_dir: str | Path | None = None, extra_training: dict | None = None) -> dict:
    """The export itself, into ``folder`` (the staging folder of the public function)."""
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
        "name": name, "kind": "j2s", **file_fields(onnx_path), "labels": labels,
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
    return write_manifest(folder, manifest)
