"""Export targets, one function each and one table of them, :data:`FORMATS` (as ultralytics' exporter has), that
``fingerspell export --format`` reads: ONNX and TensorRT engines.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from export.onnx_export import MIN_OPSET, check_onnx_file, export_onnx, parity
from export.tensorrt_engine import export_engine
from realtime.manifest import (MANIFEST, Manifest, ModelError, copy_companions, file_fields, resolve_model,
                               staged_folder, write_manifest)

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
    with staged_folder(out) as stage:  # into out only when all of it succeeded
        summary = export_onnx(r.module, sets["random"], stage / "model.onnx", r.output_names, meta, sets, opset,
                              simplify)
        manifest = json.loads((src_folder / MANIFEST).read_text())
        manifest.update(name=meta["name"], **file_fields(stage / "model.onnx"), opset=summary["opset"],
                        created=_dt.date.today().isoformat())
        manifest.setdefault("metrics", {})["onnx_parity_max_abs"] = max(summary["parity"].values())
        manifest["exported_from"] = {"model": m.name, "sha256": m.sha256, "via": "PyTorch module rebuilt from the "
                                     "ONNX weights (realtime/torch_from_onnx.py)", "simplified": summary["simplified"]}
        write_manifest(stage, manifest)
        # personal tuning's weights and the letter distance (--reject-far-hands): the same network, the same files
        companions = [(manifest.get(k) or {}).get("file") for k in ("tuning", "distance")]
        copy_companions(src_folder, stage, tuple(f for f in companions if f))
    print(f"wrote {out / 'model.onnx'} ({summary['bytes']} bytes, opset {summary['opset']}) and {out / MANIFEST}")
    return summary


def export_checkpoint_onnx(checkpoint: str | Path, out: str | Path, name: str | None = None,
                           data: str | Path | None = None) -> dict:
    """A ``model.pt`` (keypoint classifier or J2S) -> model folder, through :mod:`export.onnx_export`, then checked."""
    import torch

    from export.j2s_export import export_j2s_model
    from export.keypoint_export import export_keypoint_model

    try:
        ck = torch.load(checkpoint, weights_only=False, map_location="cpu")
    except Exception as e:  # torch raises several types for a file that is not a checkpoint
        raise ModelError(f"{checkpoint} is not a model.pt checkpoint ({type(e).__name__}: {e})") from e
    config = ck.get("config") if isinstance(ck, dict) else None
    is_j2s = isinstance(config, dict) and "backbone" in config
    if not is_j2s and not (isinstance(config, dict) and "in_dim" in config and "state_dict" in ck):
        raise ModelError(f"{checkpoint} is not the model.pt of a keypoint or J2S training run; a training run's "
                         "checkpoint.pt is not a model, and image classifiers and sequence readers are exported by "
                         "their own training command's --export")
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


def _onnx_target(args) -> dict:
    if args.half or args.int8 or args.calib:
        raise ValueError("--half, --int8 and --calib apply to --format engine")
    if not args.out:
        raise ValueError("--format onnx needs --out FOLDER (model.onnx + manifest.json are written there)")
    if getattr(args, "add_embedding", False) and args.checkpoint:
        raise ValueError("--add-embedding applies to --model (a folder exported before the output existed); a "
                         "checkpoint's export already has it")
    if args.checkpoint:
        if args.opset != MIN_OPSET or args.simplify:
            raise ValueError(f"--opset and --simplify apply to --model; a checkpoint exports at opset {MIN_OPSET}"
                             " (re-export the folder written with --model FOLDER to change them)")
        return export_checkpoint_onnx(args.checkpoint, args.out, name=args.name, data=args.data)
    if getattr(args, "add_embedding", False):
        from export.image_export import add_embedding_output
        from training.io import command_line

        if args.opset != MIN_OPSET or args.simplify or args.name:
            raise ValueError("--add-embedding copies the file as it is: --opset, --simplify and --name do not apply")
        return add_embedding_output(resolve_model(args.model), args.out, command_line())
    if Manifest.load(resolve_model(args.model)).kind == "sequence-reader":
        from export.sequence_export import export_sequence_folder
        from training.io import command_line

        if args.opset != MIN_OPSET or args.simplify:
            raise ValueError("a sequence reader is copied as it is, with its streaming step made beside it: --opset "
                             "and --simplify do not apply")
        return export_sequence_folder(args.model, args.out, name=args.name, command=command_line())
    return export_model_onnx(args.model, args.out, opset=args.opset, simplify=args.simplify, name=args.name)


def _engine_target(args) -> Path:
    if getattr(args, "add_embedding", False):
        raise ValueError("--add-embedding applies to --format onnx")
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


@dataclass(frozen=True)
class ExportFormat:
    """One row of :data:`FORMATS`: a ``--format`` of ``fingerspell export``."""

    name: str
    writes: str  # what lands on disk
    backends: tuple[str, ...]  # the --backend values that run it (realtime.backends.BACKENDS)
    help: str
    target: Callable  # (parsed arguments) -> summary or path


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("onnx", "OUT/model.onnx + OUT/manifest.json", ("auto", "onnxruntime", "torch"),
                 "one checked ONNX file and its manifest", _onnx_target),
    ExportFormat("engine", "MODEL/model.PRECISION.KEY.engine (+ .json)", ("tensorrt",),
                 "a TensorRT engine for this GPU, cached beside the model", _engine_target),
)}


def check_out(out: str | None) -> None:
    """Refuse, before the work, an --out the export would fail on at its end (a file) or scatter its files into
    (a folder of other files); a folder that holds an export (its manifest) is one to replace."""
    folder = Path(out) if out else None
    if folder is None or not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder (the model and {MANIFEST} are written into it)")
    if not (folder / MANIFEST).is_file() and any(folder.iterdir()):
        raise ValueError(f"--out {out} holds other files and no exported model ({MANIFEST}): give a new or empty "
                         "folder, or the folder of an export to replace")


def run_export(args) -> dict | Path:
    """``fingerspell export``: checks the combination of options, then runs the format's target. Raises ModelError
    (BackendError, a subclass) or ValueError with the message the user should see."""
    fmt = getattr(args, "format", None) or "onnx"
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {tuple(FORMATS)}, got {fmt!r}")
    if bool(args.checkpoint) == bool(getattr(args, "model", None)):
        raise ValueError("give exactly one of --checkpoint (a model.pt to export) and --model (a shipped model name "
                         "or a model folder)")
    check_out(args.out)
    return FORMATS[fmt].target(args)
