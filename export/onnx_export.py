"""The one ONNX writer of the project: any PyTorch module -> one checked ``.onnx`` file, used by every model kind
(:mod:`export.keypoint_export`, :mod:`export.j2s_export`, :mod:`export.image_export`, and the re-export of a model
folder in :mod:`export.formats`).

Every file written here is one file with no external data, opset 17 or later, a dynamic batch dimension on every
input and output, named outputs, and the labels in its metadata; its parity with PyTorch is printed for every set
of inputs given (real ones where the caller has them), and an export that differs by more than ``tolerance`` is
refused. The manifest beside it is written by :func:`realtime.manifest.write_manifest`.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from realtime.manifest import ModelError

MIN_OPSET = 17
OPSET = MIN_OPSET  # what every model kind exports at


def max_relative_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Largest |got - want| over the outputs, each relative to its own scale max(1, max |want|): probabilities are at
    most 1 (so this is their absolute error), while embeddings and keypoints in pixels reach tens."""
    return float(max(np.abs(g.astype(np.float64) - w.astype(np.float64)).max() / max(1.0, float(np.abs(w).max()))
                     for g, w in zip(got, want)))


def check_onnx_file(path: str | Path, labels: list[str] | None = None) -> dict:
    """One self-contained file, opset >= 17, dynamic batch on every input and output, labels in metadata.

    Returns a summary (opset, inputs, outputs, labels, bytes); raises ModelError naming what is wrong."""
    import onnx

    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ModelError(f"{path}: initializers stored as external data ({external[:3]}...): must be one file")
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ModelError(f"{path}: opset {opset}, need {MIN_OPSET} or later")
    inits = {t.name for t in proto.graph.initializer}

    def io(values):
        out = {}
        for v in values:
            dims = v.type.tensor_type.shape.dim
            out[v.name] = [d.dim_param or d.dim_value for d in dims]
        return out

    inputs = io(v for v in proto.graph.input if v.name not in inits)
    outputs = io(proto.graph.output)
    for name, shape in {**inputs, **outputs}.items():
        if not shape or not isinstance(shape[0], str):
            raise ModelError(f"{path}: tensor {name!r} has shape {shape}: the batch dimension must be dynamic")
    unnamed = [n for n in outputs if not n or n.isdigit() or n.startswith("onnx::")]
    if unnamed:
        raise ModelError(f"{path}: outputs without a proper name: {unnamed}")
    meta = {p.key: p.value for p in proto.metadata_props}
    if "labels" not in meta:
        raise ModelError(f"{path}: no 'labels' in the metadata")
    found = json.loads(meta["labels"])
    if labels is not None and found != list(labels):
        raise ModelError(f"{path}: labels in the metadata {found} differ from {labels}")
    onnx.checker.check_model(str(path))
    return {"path": str(path), "opset": opset, "inputs": inputs, "outputs": outputs, "labels": found,
            "bytes": path.stat().st_size, "external_data": False}


def parity(path: Path, module, inputs: dict[str, np.ndarray], output_names: list[str]) -> float:
    """Largest |onnxruntime - torch| over every output on ``inputs`` (relative to outputs larger than 1)."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(output_names, inputs)
    with torch.no_grad():
        want = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()))
    want = [t.numpy() for t in (want if isinstance(want, (tuple, list)) else (want,))]
    return max_relative_error(got, want)


def simplify_onnx(path: Path) -> str:
    """onnxsim, kept only where it helps (fewer nodes) and the result checks; returns what happened."""
    try:
        import onnxsim
    except ImportError as e:
        raise ModelError("--simplify needs onnxsim: pip install -e '.[simplify]'") from e
    import onnx

    proto = onnx.load(str(path))
    simple, ok = onnxsim.simplify(proto, skip_fuse_bn=True)  # keep BatchNorm weights named: torch can rebuild it
    before, after = len(proto.graph.node), len(simple.graph.node)
    if not ok or after >= before:
        return f"onnxsim {onnxsim.__version__}: no gain ({before} -> {after} nodes{'' if ok else ', check failed'}); kept as exported"
    keep = [p for p in simple.metadata_props if not p.key.startswith("onnxsim.")]
    del simple.metadata_props[:]
    simple.metadata_props.extend(keep)
    note = f"onnxsim {onnxsim.__version__}: {before} -> {after} nodes"
    entry = simple.metadata_props.add()
    entry.key, entry.value = "simplified", note
    onnx.checker.check_model(simple)
    onnx.save(simple, str(path))
    return note


def export_onnx(module, example: dict[str, np.ndarray], path: str | Path, output_names: list[str],
                metadata: dict, parity_inputs: dict[str, dict[str, np.ndarray]] | None = None,
                opset: int = MIN_OPSET, simplify: bool = False, tolerance: float = 1e-4) -> dict:
    """PyTorch ``module`` -> ``path``: dynamic batch on every input and output, named outputs, ``metadata``
    (must hold ``labels``) in the file, no external data. ``parity_inputs``: named sets of inputs (e.g.
    ``{"real": ..., "random": ...}``) on which ONNX Runtime and PyTorch are compared; each result is printed.
    Returns :func:`check_onnx_file`'s summary plus ``parity`` (set name -> max abs difference)."""
    import onnx
    import torch

    if opset < MIN_OPSET:
        raise ModelError(f"opset {opset} asked for; exports use {MIN_OPSET} or later")
    if "labels" not in metadata:
        raise ModelError("export metadata must hold the labels")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    names = list(example)
    dummy = tuple(torch.from_numpy(np.ascontiguousarray(v[:2] if len(v) >= 2 else v)) for v in example.values())
    axes = {n: {0: "batch"} for n in names + list(output_names)}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter on purpose: its dynamic_axes give the plain 'batch'
        # dimension the runtime and TensorRT profiles expect; newer torch warns that it is the legacy path
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, dummy, str(path), input_names=names, output_names=list(output_names),
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    proto = onnx.load(str(path))
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))  # small models: one file (external data only past 2 GB, refused by the check)
    simplified = simplify_onnx(path) if simplify else None
    if simplified:
        print(simplified)
    labels = json.loads(metadata["labels"]) if isinstance(metadata["labels"], str) else metadata["labels"]
    summary = check_onnx_file(path, labels)
    summary["parity"] = {}
    for what, inputs in (parity_inputs or {"example": example}).items():
        err = parity(path, module, inputs, list(output_names))
        n = len(next(iter(inputs.values())))
        print(f"ONNX parity on {n} {what} inputs: max |onnxruntime - torch| = {err:.2e}")
        summary["parity"][what] = err
        if not err <= tolerance:
            raise ModelError(f"ONNX export {path} differs from PyTorch by {err:.2e} on {what} inputs "
                             f"(tolerance {tolerance:.0e})")
    summary["simplified"] = simplified
    return summary
