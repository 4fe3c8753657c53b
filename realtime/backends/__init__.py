"""Inference backends for the classifier stage: one small interface (:mod:`.base`), one module per engine
(:mod:`.onnxruntime`, :mod:`.pytorch`, :mod:`.tensorrt`), and one table, :data:`BACKENDS`, that ``--backend``,
the benchmarks and the demo read. Adding a backend is one new module plus one row of the table.

    backend = make_backend("torch", folder, manifest, device="cpu")
    out = backend.run({"features": x})          # dict of float32 numpy arrays, named as the ONNX outputs
    backend.name, backend.device, backend.detail  # what runs, where, and why it was chosen
    backend.close()

``--backend``:

- ``auto`` (the default): ONNX Runtime exactly as before this module existed: the CUDA execution provider
  when ``onnxruntime-gpu`` has it, else the CPU (``--device cuda`` without it is an error). The TensorRT
  execution provider is not tried: it builds engines when a session starts.
- ``onnxruntime``: ONNX Runtime with the best provider available, TensorRT EP, then CUDA EP, then CPU
  (``--device cpu`` forces the CPU). A GPU provider asked for but missing falls back to the CPU with a
  :class:`BackendFallbackWarning` that says so; ``detail`` names the provider that runs.
- ``tensorrt``: a native TensorRT engine (TensorRT 10 Python API, imported lazily), built from the ONNX
  file on first use for fp32 / fp16 and cached beside the model (:func:`engine_cache_key`); INT8 engines
  are built by ``fingerspell export --format engine --int8 --calib DIR``. Device memory is torch CUDA
  tensors, host staging buffers are pinned, one CUDA stream, one synchronisation per call.
- ``torch``: the PyTorch module rebuilt from the manifest and the ONNX weights
  (:mod:`realtime.torch_from_onnx`), on the CPU or CUDA, optionally replayed as a CUDA graph.

On a GPU the host round trips are kept to what the inputs need: device buffers are allocated once per
input shape and reused, host copies go through pinned memory asynchronously, and ``run_torch`` takes
inputs that already live on the GPU (torch CUDA tensors) and returns device tensors, with no host copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from realtime.backends.base import (CPU_EP, CUDA_EP, DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE, DEVICES, ENGINE_CACHE_ENV,
                                    PRECISIONS, TRT_EP, Backend, BackendError, BackendFallbackWarning)
from realtime.backends.onnxruntime import OrtBackend, checked_model_file, open_model, open_session, select_providers
from realtime.backends.pytorch import TorchBackend, torch_device
from realtime.backends.tensorrt import (TensorRTBackend, build_cached_engine, build_engine, engine_cache_key, engine_dir,
                                        engine_path, find_engine, gpu_name, import_tensorrt)
from realtime.manifest import Manifest, resolve_model, verify_sha256

__all__ = ["BACKENDS", "CPU_EP", "CUDA_EP", "DEFAULT_MAX_BATCH", "DEFAULT_WORKSPACE", "DEVICES", "ENGINE_CACHE_ENV",
           "PRECISIONS", "TRT_EP", "Backend", "BackendError", "BackendFallbackWarning", "BackendSpec", "OrtBackend", "checked_model_file",
           "TensorRTBackend", "TorchBackend", "build_cached_engine", "build_engine", "engine_cache_key", "engine_dir",
           "engine_path", "find_engine", "gpu_name", "import_tensorrt", "make_backend", "open_model", "open_session",
           "select_providers", "torch_device"]


@dataclass(frozen=True)
class BackendSpec:
    """One row of :data:`BACKENDS`: what ``--backend NAME`` opens, and what it can do."""

    name: str
    open: object  # (folder, manifest, device, precision, threads, verify, cuda_graphs) -> Backend
    devices: tuple[str, ...]  # where it can run
    precisions: tuple[str, ...]  # what it can run
    help: str


def _open_onnxruntime(folder, manifest, device, precision, threads, verify, cuda_graphs):
    shape = manifest.raw.get("input", {}).get("shape")
    shapes = {manifest.input_name: shape} if shape and all(isinstance(d, int) for d in shape[1:]) else None
    return OrtBackend(folder / manifest.file, device, precision, threads, input_shapes=shapes)


def _open_torch(folder, manifest, device, precision, threads, verify, cuda_graphs):
    dev = torch_device(device)
    return TorchBackend.from_model(folder, dev, precision, (dev == "cuda") if cuda_graphs is None else cuda_graphs,
                                   verify=False)


def _open_tensorrt(folder, manifest, device, precision, threads, verify, cuda_graphs):
    if device == "cpu":
        raise BackendError("--backend tensorrt runs on a CUDA GPU, not --device cpu")
    return TensorRTBackend.for_model(folder, precision, verify=verify)


def _open_auto(folder, manifest, device, precision, threads, verify, cuda_graphs):
    if precision != "fp32":
        raise BackendError(f"--backend auto runs fp32; for {precision} choose --backend tensorrt "
                           + ("or torch" if precision == "fp16" else "(an INT8 engine)"))
    return OrtBackend.from_session(open_model(folder, device, verify, threads=threads)[3], folder / manifest.file)


BACKENDS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("auto", _open_auto, ("auto", "cpu", "cuda"), ("fp32",),
                "ONNX Runtime, CUDA EP when installed, else the CPU"),
    BackendSpec("onnxruntime", _open_onnxruntime, ("auto", "cpu", "cuda"), ("fp32", "fp16"),
                "ONNX Runtime with the best provider there: TensorRT EP, CUDA EP, CPU"),
    BackendSpec("tensorrt", _open_tensorrt, ("auto", "cuda"), ("fp32", "fp16", "int8"),
                "a native TensorRT engine, built on first use and cached"),
    BackendSpec("torch", _open_torch, ("auto", "cpu", "cuda"), ("fp32", "fp16"),
                "the PyTorch module rebuilt from the ONNX weights; CUDA graphs on a GPU"),
)}


def make_backend(backend: str, model: str | Path, device: str = "auto", precision: str = "fp32", *,
                 session=None, threads: int = 1, verify: bool = True, cuda_graphs: bool | None = None) -> Backend:
    """The backend ``backend`` (a row of :data:`BACKENDS`) for ``model`` (a name or folder; its file is checked
    against the manifest).

    ``session``: the classifier's own ONNX Runtime session, reused by ``auto``, whose behaviour is the
    one from before backends existed. ``cuda_graphs`` (torch on CUDA): default on, for batch-1 latency.
    """
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {tuple(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    folder = resolve_model(model)
    manifest = Manifest.load(folder)
    if backend == "auto" and session is not None:
        if precision != "fp32":
            return _open_auto(folder, manifest, device, precision, threads, verify, cuda_graphs)  # says why not
        return OrtBackend.from_session(session, folder / manifest.file)
    if verify and backend not in ("tensorrt", "auto"):  # those check the file themselves
        verify_sha256(folder / manifest.file, manifest.sha256)
    return BACKENDS[backend].open(folder, manifest, device, precision, threads, verify, cuda_graphs)
