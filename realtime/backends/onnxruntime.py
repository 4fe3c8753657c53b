"""ONNX Runtime: the default backend, and the one loader (:func:`open_model`) of every ONNX session of the
project, with its execution providers chosen in one place (:func:`select_providers`)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from realtime.backends.base import (CPU_EP, CUDA_EP, DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE, DEVICES, TRT_EP, Backend,
                                    BackendError, BackendFallbackWarning)
from realtime.backends.tensorrt import engine_dir
from realtime.manifest import MANIFEST, Manifest, ModelError, resolve_model, verify_sha256


def select_providers(device: str = "auto", available: list[str] | None = None, tensorrt: bool = True,
                     strict: bool = False, requested: list[str] | None = None) -> tuple[list[str], str | None]:
    """The ONNX Runtime providers to ask for, best first, and a note when the device asked for is not there.
    Every ONNX Runtime session of the project gets its providers here.

    ``device``: ``cpu`` -> the CPU only; ``auto`` / ``cuda`` -> TensorRT EP (if ``tensorrt``), CUDA EP, CPU,
    those that ``available`` (default: this ONNX Runtime's) has. ``cuda`` with no GPU provider falls back to
    the CPU and says so in the note, or raises :class:`BackendError` when ``strict``. ``requested``: an explicit
    provider list, returned as given when ``available`` has every one of them, else a :class:`BackendError`.
    """
    if device not in DEVICES:
        raise BackendError(f"device must be one of {DEVICES}, got {device!r}")
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise BackendError(f"ONNX Runtime lacks {missing} (it has {available}); for CUDA install the 'gpu' extra, "
                               "onnxruntime-gpu")
        return list(requested), None
    if device == "cpu":
        return [CPU_EP], None
    gpu = [p for p in ([TRT_EP] if tensorrt else []) + [CUDA_EP] if p in available]
    note = None
    if device == "cuda" and not gpu:
        msg = (f"--device cuda asked for, but ONNX Runtime has only {available} (install the 'gpu' extra, "
               "onnxruntime-gpu, on a machine with an NVIDIA GPU)")
        if strict:
            raise BackendError(msg)
        note = msg + ": running on the CPU"
    return gpu + [CPU_EP], note


def _trt_ep_options(cache_dir: Path, precision: str, input_shapes: dict | None, max_batch: int,
                    workspace: int) -> dict:
    opts = {"trt_fp16_enable": precision == "fp16", "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir), "trt_timing_cache_enable": True,
            "trt_max_workspace_size": int(workspace)}
    if input_shapes:  # one dynamic-batch profile, so that batch 1 .. max_batch never rebuilds an engine
        def shapes(b):
            return ",".join(f"{n}:" + "x".join(str(b) if i == 0 else str(d) for i, d in enumerate(s))
                            for n, s in input_shapes.items())
        opts.update(trt_profile_min_shapes=shapes(1), trt_profile_opt_shapes=shapes(1),
                    trt_profile_max_shapes=shapes(max_batch))
    return opts


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", precision: str = "fp32", threads: int = 1,
                 tensorrt: bool = True, strict: bool = False, input_shapes: dict | None = None,
                 cache_dir: str | Path | None = None, max_batch: int = DEFAULT_MAX_BATCH,
                 workspace: int = DEFAULT_WORKSPACE, available: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError("onnxruntime is not installed: pip install -e '.[cpu]' (or '.[gpu]')") from e
        if precision not in ("fp32", "fp16"):
            raise BackendError(f"onnxruntime runs fp32 (and fp16 through the TensorRT EP), not {precision}; for INT8 "
                               "build an engine (fingerspell export --format engine --int8) and use --backend tensorrt")
        self.path = Path(path)
        providers, note = select_providers(device, available, tensorrt, strict)
        if precision == "fp16" and TRT_EP not in providers:
            raise BackendError(f"fp16 with onnxruntime needs the TensorRT execution provider; this ONNX Runtime has "
                               f"{providers}. Use --backend tensorrt or torch on a GPU, or fp32")
        cache = Path(cache_dir) if cache_dir else engine_dir(self.path.parent) / "ort-trt"
        requested = [(p, _trt_ep_options(cache, precision, input_shapes, max_batch, workspace)) if p == TRT_EP else p
                     for p in providers]
        if TRT_EP in providers:
            cache.mkdir(parents=True, exist_ok=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(self.path), opts, providers=requested)
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"{self.path}: ONNX Runtime cannot load it ({e})") from e
        self._attach(session, precision)
        if precision == "fp16" and self.detail != TRT_EP:  # the TensorRT EP failed to start: fp32 is what runs
            self.precision = "fp32"
            note = note or f"the TensorRT execution provider did not start; running fp32 on {self.detail}"
        if providers[0] != CPU_EP and self.detail == CPU_EP and note is None:
            note = f"ONNX Runtime could not start {providers[:-1]} (see its log): running on the CPU"
        self.note = note
        if note:
            warnings.warn(note, BackendFallbackWarning, stacklevel=2)

    @classmethod
    def from_session(cls, session, path: str | Path | None = None) -> "OrtBackend":
        """Wrap a session already made (``--backend auto``: the classifier's own, unchanged)."""
        self = cls.__new__(cls)
        self.path = Path(path) if path else None
        self.note = None
        self._attach(session, "fp32")
        return self

    def _attach(self, session, precision: str) -> None:
        self.session = session
        self.detail = session.get_providers()[0]
        self.device = "cpu" if self.detail == CPU_EP else "cuda"
        self.precision = precision
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.size_bytes = self.path.stat().st_size if self.path and self.path.is_file() else 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))

    def run_torch(self, inputs: dict) -> dict:
        """Torch CUDA tensors in, torch CUDA tensors out, through IO binding: no host copy (GPU providers only)."""
        import torch

        if self.device != "cuda":
            out = self.run({k: v.cpu().numpy() for k, v in inputs.items()})
            return {k: torch.from_numpy(v) for k, v in out.items()}
        binding = self.session.io_binding()
        batch = None
        keep = []  # the bound tensors must outlive the run
        for name, t in inputs.items():
            t = t.to("cuda", torch.float32).contiguous()
            keep.append(t)
            batch = t.shape[0]
            binding.bind_input(name, "cuda", t.device.index or 0, np.float32, tuple(t.shape), t.data_ptr())
        outs = {}
        for o in self.session.get_outputs():
            shape = tuple(batch if not isinstance(d, int) else d for d in o.shape)
            outs[o.name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            binding.bind_output(o.name, "cuda", outs[o.name].device.index or 0, np.float32, shape,
                                outs[o.name].data_ptr())
        torch.cuda.current_stream().synchronize()  # ONNX Runtime reads on its own stream: inputs must be complete
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return outs

    def close(self) -> None:
        self.session = None


def open_model(model: str | Path, device: str = "auto", verify: bool = True, kind: str | None = None,
               threads: int = 1):
    """Resolve, check against the manifest (kind, sha256) and load -> (folder, manifest, onnx path, session)."""
    from importlib.util import find_spec

    if find_spec("onnxruntime") is None:  # said before any file is read
        raise ModelError("onnxruntime is not installed: pip install -e '.[cpu]' (or '.[gpu]')")
    folder, manifest, path = checked_model_file(model, verify, kind)
    return folder, manifest, path, open_session(path, device, threads)


def checked_model_file(model: str | Path, verify: bool = True, kind: str | None = None):
    """Resolve and check against the manifest (kind, the file there, sha256) -> (folder, manifest, onnx path),
    without loading it (``--backend torch`` readers read the weights themselves)."""
    folder = resolve_model(model)
    manifest = Manifest.load(folder)
    if kind is not None and manifest.kind != kind:
        hint = {"j2s": "use --keypoints j2s", "image-classifier": "give it as --image-model with --classifier image",
                "sequence-reader": f"use --reader sequence --sequence-model {folder.name}"
                }.get(manifest.kind, "use --keypoints mediapipe")
        raise ModelError(f"{folder.name} is a {manifest.kind} model, not a {kind} ({hint})")
    path = folder / manifest.file
    if not path.is_file():
        raise ModelError(f"{path} is missing (named by {folder / MANIFEST})")
    if verify:
        verify_sha256(path, manifest.sha256)
    return folder, manifest, path


def open_session(path: str | Path, device: str = "auto", threads: int = 1):
    """One ONNX file (already checked against its manifest) -> an ONNX Runtime session on ``device``."""
    import onnxruntime as ort

    providers, _ = select_providers(device, tensorrt=False, strict=True)  # CUDA EP when asked or there, else CPU
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # small models: threads cost more than they save
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({e})") from e

