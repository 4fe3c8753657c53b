"""Export targets, one function each (as ultralytics' exporter has): ONNX and TensorRT engines.

    export_onnx(module, ...)                         # any PyTorch module -> one checked .onnx file
    export_model_onnx("asl-letters", "out/asl")      # a model folder re-exported from its rebuilt PyTorch module
    export_engine("asl-letters", half=True)          # -> TensorRT engine cached beside the model
    check_onnx_file(path)                            # what every exported file must satisfy

Every ONNX file written here is one file with no external data, opset 17 or later, a dynamic batch
dimension on every input and output, named outputs, and the labels in its metadata; its parity with
PyTorch (largest absolute difference on real inputs where the datasets are present, and on random
inputs always) is printed, and an export that differs by more than ``tolerance`` is refused.
Checkpoints (``model.pt``) go through :mod:`export.onnx_export`, which writes the same kind of file.
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from export.onnx_export import max_relative_error
from export.tensorrt_engine import export_engine  # noqa: F401  (the engine target lives there)
from realtime.manifest import MANIFEST, Manifest, ModelError, sha256_file

MIN_OPSET = 17
FORMATS = ("onnx", "engine")


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


def _simplify(path: Path) -> str:
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
        # the TorchScript exporter on purpose, as export/onnx_export.py: its dynamic_axes give the plain 'batch'
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
    simplified = _simplify(path) if simplify else None
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


def random_inputs(manifest: Manifest, n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    shape = [int(d) for d in manifest.raw["input"]["shape"][1:]]
    return {manifest.input_name: np.random.default_rng(seed).normal(size=[n] + shape).astype(np.float32)}


def real_inputs(model: str | Path, n: int = 256, seed: int = 0) -> tuple[dict[str, np.ndarray] | None, str]:
    """Up to ``n`` of the model's held-out real inputs, or (None, why not)."""
    from export.real_inputs import NoData, eval_set

    try:
        es = eval_set(model)
    except NoData as e:
        return None, str(e)
    rows = np.sort(np.random.default_rng(seed).choice(len(es), min(n, len(es)), replace=False))
    return es.batch(rows), es.description


def export_model_onnx(model: str | Path, out: str | Path, opset: int = MIN_OPSET, simplify: bool = False,
                      name: str | None = None, verify: bool = True) -> dict:
    """A model folder (shipped name or path) -> ``out``/model.onnx + manifest.json, re-exported from the PyTorch
    module rebuilt from its manifest and weights (:mod:`realtime.torch_from_onnx`); e.g. for another opset."""
    import onnx

    from realtime.torch_from_onnx import rebuild

    r = rebuild(model, verify=verify)
    src_folder = r.path.parent
    out = Path(out)
    if out.resolve() == src_folder.resolve():
        raise ModelError(f"--out {out} is the model's own folder; export to another one")
    m = r.manifest
    meta = {p.key: p.value for p in onnx.load(str(r.path), load_external_data=False).metadata_props
            if p.key != "simplified"}
    meta["labels"] = json.dumps(m.labels)
    meta["name"] = name or out.name
    sets = {"random": random_inputs(m)}
    real, why = real_inputs(src_folder)
    if real is not None:
        sets = {"real": real, **sets}
    else:
        print(f"parity on real inputs skipped: {why}")
    summary = export_onnx(r.module, sets["random"], out / "model.onnx", r.output_names, meta, sets, opset, simplify)
    manifest = json.loads((src_folder / MANIFEST).read_text())
    path = out / "model.onnx"
    manifest.update(name=meta["name"], file="model.onnx", sha256=sha256_file(path), bytes=path.stat().st_size,
                    opset=summary["opset"], created=_dt.date.today().isoformat())
    manifest.setdefault("metrics", {})["onnx_parity_max_abs"] = max(summary["parity"].values())
    manifest["exported_from"] = {"model": m.name, "sha256": m.sha256, "via": "PyTorch module rebuilt from the ONNX "
                                 "weights (realtime/torch_from_onnx.py)", "simplified": summary["simplified"]}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for extra in ("LICENSE.md", "PROVENANCE.md"):
        if (src_folder / extra).is_file():
            shutil.copy(src_folder / extra, out / extra)
    print(f"wrote {path} ({summary['bytes']} bytes, opset {summary['opset']}) and {out / MANIFEST}")
    return summary


def export_checkpoint_onnx(checkpoint: str | Path, out: str | Path, name: str | None = None,
                           data: str | Path | None = None) -> dict:
    """A ``model.pt`` (keypoint classifier or J2S) -> model folder, through :mod:`export.onnx_export`, then checked."""
    import torch

    from export.onnx_export import export_j2s_model, export_keypoint_model

    try:
        ck = torch.load(checkpoint, weights_only=False, map_location="cpu")
        is_j2s = "backbone" in ck.get("config", {})
    except Exception as e:  # torch raises several types for a file that is not a checkpoint
        raise ModelError(f"{checkpoint} is not a model.pt checkpoint ({type(e).__name__}: {e})") from e
    if is_j2s:
        manifest = export_j2s_model(checkpoint, out, name=name, data_dir=data)
    else:
        manifest = export_keypoint_model(checkpoint, out, name=name)
    summary = check_onnx_file(Path(out) / manifest["file"], manifest["labels"])
    real, why = real_inputs(out)  # the exporters above compare on random (keypoints) or training crops (J2S)
    if real is None:
        print(f"parity on held-out real inputs skipped: {why}")
    else:
        if is_j2s:
            from training.j2s_model import J2SExport
            from training.train_j2s import load_j2s

            module = J2SExport(load_j2s(checkpoint)[0]).eval()
        else:
            from training.keypoint_model import WithSoftmax
            from training.train_keypoints import load_trained

            module = WithSoftmax(load_trained(checkpoint)[0]).eval()
        err = parity(Path(summary["path"]), module, real, list(summary["outputs"]))
        print(f"ONNX parity on {len(next(iter(real.values())))} real inputs: max |onnxruntime - torch| = {err:.2e}")
        if not err <= 1e-4:
            raise ModelError(f"ONNX export {summary['path']} differs from PyTorch by {err:.2e} on real inputs")
        summary["parity"] = {"real": err}
    print(f"wrote {summary['path']} ({summary['bytes']} bytes, opset {summary['opset']}, one file, dynamic batch)")
    return summary


def run_export(args) -> dict | Path:
    """``fingerspell export``: checks the combination of options, then runs the target. Raises ModelError
    (BackendError, a subclass) or ValueError with the message the user should see."""
    fmt = getattr(args, "format", None) or "onnx"
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if bool(args.checkpoint) == bool(getattr(args, "model", None)):
        raise ValueError("give exactly one of --checkpoint (a model.pt to export) and --model (a shipped model name "
                         "or a model folder)")
    if fmt == "onnx":
        if args.half or args.int8 or args.calib:
            raise ValueError("--half, --int8 and --calib apply to --format engine")
        if not args.out:
            raise ValueError("--format onnx needs --out FOLDER (model.onnx + manifest.json are written there)")
        if args.checkpoint:
            if args.opset != MIN_OPSET or args.simplify:
                raise ValueError(f"--opset and --simplify apply to --model; a checkpoint exports at opset {MIN_OPSET}"
                                 " (re-export the folder written with --model FOLDER to change them)")
            return export_checkpoint_onnx(args.checkpoint, args.out, name=args.name, data=args.data)
        return export_model_onnx(args.model, args.out, opset=args.opset, simplify=args.simplify, name=args.name)
    if args.int8 and not args.calib:
        raise ValueError("--int8 needs --calib DIR [DIR ...]: real samples (a dataset folder, .npy or .npz)")
    if args.half and args.int8:
        raise ValueError("choose one of --half and --int8 (an INT8 engine keeps FP16 for the layers INT8 cannot run)")
    model = args.model
    if args.checkpoint:
        if not args.out:
            raise ValueError("with --checkpoint, --format engine needs --out FOLDER for the ONNX model it builds from")
        export_checkpoint_onnx(args.checkpoint, args.out, name=args.name, data=args.data)
        model = args.out
    return export_engine(model, half=args.half, int8=args.int8, calib=args.calib,
                         workspace=int(args.workspace * (1 << 30)), max_batch=args.max_batch, opt_batch=args.opt_batch)
