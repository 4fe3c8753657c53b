"""Export a trained image classifier (``fingerspell train classifier``'s ``best.pt``) as a shipped model folder:
``model.onnx`` (input ``image`` (batch, 3, S, S) RGB in -1..1, outputs ``probs`` and ``embedding``, the pooled
penultimate activations that personal calibration compares) and a manifest of kind ``image-classifier`` that the
runtime (``realtime.crop_classifier``) checks before use. :func:`add_embedding_output` gives a file exported
before the ``embedding`` output existed that output, with its weights untouched.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from export.onnx_export import MIN_OPSET, export_onnx
from realtime.manifest import file_fields, staged_folder, verify_sha256, write_manifest
from realtime.crops import CROP_SCALE


EMBEDDING = "embedding"


def _probs_and_embedding(model):
    """The classifier with a softmax on top (the file outputs probabilities, as every shipped model does), and its
    pooled penultimate activations as a second output."""
    import torch

    class ProbsAndEmbedding(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            h = self.net.features(image)
            return torch.softmax(self.net.head(h), dim=1), h

    return ProbsAndEmbedding(model).eval()


def _embedding_field(dim) -> dict:
    return {"name": EMBEDDING, "shape": ["batch", dim], "dtype": "float32",
            "meaning": "pooled penultimate activations (the classifier layer's input), for personal calibration"}


def add_embedding_output(src: str | Path, out: str | Path, command: str | None = None) -> dict:
    """A shipped image-classifier folder whose ONNX file has only ``probs`` -> ``out`` with the same graph and
    weights plus the output ``embedding`` (the input of the last Gemm, which feeds the softmax); the manifest is
    copied with the new file's sha256, the ``embedding`` field and how it was made. Checked: the probabilities of
    the new file equal the old file's exactly. The files go into ``out`` only when all of it succeeded."""
    with staged_folder(out) as stage:
        return _add_embedding_output(src, stage, command)


def _add_embedding_output(src: str | Path, out: str | Path, command: str | None = None) -> dict:
    """The edit itself, into ``out`` (the staging folder of the public function)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from realtime.manifest import Manifest

    src, out = Path(src), Path(out)
    m = Manifest.load(src)
    if m.raw.get("kind") != "image-classifier":
        raise ValueError(f"{src}: not an image classifier (kind {m.raw.get('kind')!r})")
    if "embedding" in m.raw:
        raise ValueError(f"{src}: already has an {EMBEDDING!r} output")
    verify_sha256(src / m.file, m.sha256, "export it again from its training run")
    model = onnx.load(str(src / m.file))
    if any(o.name == EMBEDDING for o in model.graph.output):
        raise ValueError(f"{src / m.file}: the file already has an {EMBEDDING!r} output its manifest does not name")
    producers = {o: n for n in model.graph.node for o in n.output}
    softmax = producers.get(m.output_name)
    gemm = producers.get(softmax.input[0]) if softmax is not None and softmax.op_type == "Softmax" else None
    if gemm is None or gemm.op_type != "Gemm":
        raise ValueError(f"{src}: expected {m.output_name!r} = Softmax(Gemm(features)); cannot find the features")
    w = next((t for t in model.graph.initializer if t.name == gemm.input[1]), None)
    if w is None:
        raise ValueError(f"{src}: the last Gemm's weight {gemm.input[1]!r} is not a constant of the file")
    trans_b = next((a.i for a in gemm.attribute if a.name == "transB"), 0)  # ONNX's default: not transposed
    dim = int(w.dims[1] if trans_b else w.dims[0])
    model.graph.node.append(helper.make_node("Identity", [gemm.input[0]], [EMBEDDING], name="embedding_output"))
    model.graph.output.append(helper.make_tensor_value_info(EMBEDDING, onnx.TensorProto.FLOAT, ["batch", dim]))
    onnx.checker.check_model(model)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    onnx.save(model, str(onnx_path))
    x = np.random.default_rng(0).uniform(-1, 1, (8,) + tuple(int(d) for d in m.raw["input"]["shape"][1:]))
    x = {m.input_name: x.astype(np.float32)}
    before = ort.InferenceSession(str(src / m.raw.get("file", "model.onnx")), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    p0, (p1, emb) = before.run([m.output_name], x)[0], after.run([m.output_name, EMBEDDING], x)
    if not np.array_equal(p0, p1) or emb.shape != (8, dim):
        raise RuntimeError(f"{onnx_path}: the probabilities changed or the embedding is not (batch, {dim})")
    raw = dict(m.raw)
    raw.update(file_fields(onnx_path))
    raw["embedding"] = _embedding_field(dim)
    raw["post_export"] = {"what": f"output {EMBEDDING!r} added to the file exported from training (same weights)",
                          "from_sha256": m.sha256, "command": command, "date": _dt.date.today().isoformat()}
    return write_manifest(out, raw)


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

    The files go into ``folder`` only when the whole export succeeded (:func:`realtime.manifest.staged_folder`).
    """
    with staged_folder(folder) as stage:
        return _export_image_classifier(run, stage, name or Path(folder).name, real_images, metrics)


def _export_image_classifier(run: str | Path, folder: str | Path, name: str | None = None,
                             real_images: np.ndarray | None = None, metrics: dict | None = None) -> dict:
    """The export itself, into ``folder`` (the staging folder of the public function)."""
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
    summary = export_onnx(_probs_and_embedding(clf.model), example, folder / "model.onnx", ["probs", EMBEDDING],
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
        "embedding": _embedding_field(int(clf.model.feature_dim)),
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
