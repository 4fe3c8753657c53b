"""Inference backends for the classifier stage: one small interface, three engines.

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

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from realtime.manifest import MANIFEST, Manifest, ModelError, resolve_model, verify_sha256

BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "int8")
TRT_EP, CUDA_EP, CPU_EP = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
DEFAULT_MAX_BATCH = 32  # dynamic-shape profile of engines built at run time: batch 1 (optimal) .. 32
DEFAULT_WORKSPACE = 1 << 30  # bytes of TensorRT builder workspace
ENGINE_CACHE_ENV = "FINGERSPELL_ENGINES"


class BackendError(ModelError):
    """A backend that cannot run here, or was asked for something it cannot do."""


class BackendFallbackWarning(UserWarning):
    """The backend runs, but not where it was asked to (e.g. CUDA asked for, CPU used)."""


class Backend:
    """``run(inputs) -> outputs``, both dicts of numpy arrays keyed by the ONNX tensor names."""

    name = "?"
    device = "cpu"
    precision = "fp32"
    detail = ""  # e.g. the ONNX Runtime provider that runs, or the engine file
    input_names: list[str] = []
    output_names: list[str] = []
    size_bytes: int = 0  # what the backend loads: ONNX file, engine file, or the module's tensors

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision}; {self.detail})"

    def _check_inputs(self, inputs: dict) -> None:
        if set(inputs) != set(self.input_names):
            raise BackendError(f"{self.name}: inputs {sorted(inputs)} given, the model takes {self.input_names}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- ONNX Runtime ---------------------------------------------------------------------------------------------
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


# --- PyTorch -----------------------------------------------------------------------------------------------------
def _torch_device(device: str) -> str:
    try:
        import torch
    except ImportError as e:
        raise BackendError("the torch backend needs PyTorch: pip install -e '.[train]'") from e
    if device not in DEVICES:
        raise BackendError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendError("--device cuda asked for, but this PyTorch sees no CUDA GPU "
                           f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})")
    return "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"


class TorchBackend(Backend):
    """A torch module; on CUDA optionally captured once per input shape and replayed as a CUDA graph."""

    name = "torch"

    def __init__(self, module, input_names: list[str], output_names: list[str], device: str = "auto",
                 precision: str = "fp32", cuda_graphs: bool = False, threads: int | None = None):
        import torch

        self.device = _torch_device(device)
        if precision == "int8":
            raise BackendError("the torch backend runs fp32 or fp16, not int8 (use --backend tensorrt)")
        if precision == "fp16" and self.device != "cuda":
            raise BackendError("fp16 with the torch backend needs a CUDA GPU")
        if cuda_graphs and self.device != "cuda":
            raise BackendError("CUDA graphs need a CUDA GPU")
        self._threads_before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)  # process-wide: the benchmark sets 1, as ONNX Runtime's sessions use;
            # close() puts the previous value back
        self.precision, self.cuda_graphs = precision, cuda_graphs
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.module = module.to(self.device, self.dtype).eval()
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.size_bytes = sum(t.numel() * t.element_size() for t in self.module.state_dict().values())
        self.detail = ("CUDA graphs" if cuda_graphs else "eager") + (f", {torch.get_num_threads()} threads"
                                                                      if self.device == "cpu" else "")
        self._graphs: dict = {}
        self._pinned: dict = {}

    @classmethod
    def from_model(cls, model: str | Path, device: str = "auto", precision: str = "fp32", cuda_graphs: bool = False,
                   threads: int | None = None, verify: bool = True) -> "TorchBackend":
        from realtime.torch_from_onnx import rebuild

        r = rebuild(model, verify=verify)
        return cls(r.module, r.input_names, r.output_names, device, precision, cuda_graphs, threads)

    def _forward(self, tensors: list):
        out = self.module(*tensors)
        return out if isinstance(out, (tuple, list)) else (out,)

    def _graph(self, shapes: tuple):
        """(static inputs, graph, static outputs) for these input shapes, captured on first use."""
        import torch

        if shapes not in self._graphs:
            static_in = [torch.zeros(s, dtype=self.dtype, device=self.device) for s in shapes]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.no_grad():  # warm-up outside the capture, as the PyTorch docs ask
                for _ in range(3):
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.no_grad():
                static_out = self._forward(static_in)
            self._graphs[shapes] = (static_in, graph, static_out)
        return self._graphs[shapes]

    def run_torch(self, inputs: dict) -> dict:
        """Tensors (on this device) in, tensors on this device out: no host copy."""
        import torch

        self._check_inputs(inputs)
        xs = [inputs[n].to(self.device, self.dtype, non_blocking=True) for n in self.input_names]
        if self.cuda_graphs:
            static_in, graph, static_out = self._graph(tuple(tuple(x.shape) for x in xs))
            for s, x in zip(static_in, xs):
                s.copy_(x)
            graph.replay()
            outs = [o.clone() for o in static_out]  # the next replay overwrites the static outputs
        else:
            with torch.inference_mode():
                outs = self._forward(xs)
        return dict(zip(self.output_names, outs))

    def _to_device(self, name: str, x: np.ndarray):
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.device == "cpu":
            return t
        key = (name, t.shape)
        if key not in self._pinned:
            self._pinned[key] = torch.empty(t.shape, dtype=torch.float32, pin_memory=True)
        pinned = self._pinned[key]
        pinned.copy_(t)
        return pinned.to(self.device, non_blocking=True)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_inputs(inputs)
        out = self.run_torch({n: self._to_device(n, inputs[n]) for n in self.input_names})
        return {k: v.float().cpu().numpy() for k, v in out.items()}  # .cpu() synchronises the stream

    def close(self) -> None:
        self._graphs.clear()
        self._pinned.clear()
        self.module = None
        import torch

        torch.set_num_threads(self._threads_before)


# --- TensorRT engines: cache key and location --------------------------------------------------------------------
def engine_cache_key(model_sha256: str, gpu_name: str, tensorrt_version: str, precision: str = "fp32",
                     profile: tuple[int, int, int] = (1, 1, DEFAULT_MAX_BATCH)) -> str:
    """16 hex digits naming an engine: an engine is only valid for the model, GPU and TensorRT that built it,
    and only does what its precision and batch profile (min, opt, max) say."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", model_sha256 or ""):
        raise ValueError(f"model_sha256 must be 64 lowercase hex digits, got {model_sha256!r}")
    lo, opt, hi = (int(v) for v in profile)
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got {profile}")
    payload = {"model_sha256": model_sha256, "gpu": gpu_name.strip(), "tensorrt": tensorrt_version.strip(),
               "precision": precision, "profile": [lo, opt, hi]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def engine_dir(model_folder: Path) -> Path:
    """Beside the model when that folder is writable, else ``$FINGERSPELL_ENGINES`` or
    ``~/.cache/fingerspell/engines/<model folder name>`` (an installed package's weights are read-only)."""
    model_folder = Path(model_folder)
    if os.environ.get(ENGINE_CACHE_ENV):
        return Path(os.environ[ENGINE_CACHE_ENV]) / model_folder.name
    if os.access(model_folder, os.W_OK):
        return model_folder
    return Path.home() / ".cache" / "fingerspell" / "engines" / model_folder.name


def engine_path(model_folder: Path, model_file: str, key: str, precision: str) -> Path:
    return engine_dir(model_folder) / f"{Path(model_file).stem}.{precision}.{key}.engine"


def gpu_name(index: int = 0) -> str:
    import torch

    if not torch.cuda.is_available():
        raise BackendError("no CUDA GPU visible to PyTorch: TensorRT engines need one")
    return torch.cuda.get_device_name(index)


def import_tensorrt():
    """``import tensorrt`` with a message that says what to do when it is not there."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendError("TensorRT is not installed (pip install tensorrt, on Linux or Windows with an NVIDIA GPU "
                           "and driver); use --backend onnxruntime or torch") from e
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendError(f"TensorRT {trt.__version__} found; this code follows the TensorRT 10 API")
    return trt


def find_engine(model_folder: Path, manifest: Manifest, precision: str, gpu: str, trt_version: str,
                profile: tuple[int, int, int] | None = None) -> Path | None:
    """A cached engine for this model file (its sha256), GPU, TensorRT version and precision.

    With ``profile`` only that exact key; without, the default profile first, then any cached profile
    (read from the ``.json`` written beside each engine)."""
    folder = engine_dir(model_folder)
    wanted = [profile] if profile else [(1, 1, DEFAULT_MAX_BATCH)]
    for p in wanted:
        path = engine_path(model_folder, manifest.file, engine_cache_key(manifest.sha256, gpu, trt_version,
                                                                          precision, p), precision)
        if path.is_file():
            return path
    if profile is None and folder.is_dir():
        for side in sorted(folder.glob(f"{Path(manifest.file).stem}.{precision}.*.json")):
            try:
                info = json.loads(side.read_text())
            except (OSError, ValueError):
                continue
            if (info.get("model_sha256"), info.get("gpu"), info.get("tensorrt")) == (manifest.sha256, gpu, trt_version):
                engine = side.with_suffix(".engine")
                if engine.is_file():
                    return engine
    return None


# --- TensorRT -----------------------------------------------------------------------------------------------------
class TensorRTBackend(Backend):
    """A serialized TensorRT engine, run with the TensorRT 10 name-based tensor API on one CUDA stream.

    Per call: inputs are copied into pinned host buffers, then asynchronously to device buffers (torch CUDA
    tensors, allocated once per shape), ``set_input_shape`` / ``set_tensor_address`` bind them,
    ``execute_async_v3`` enqueues the engine, outputs come back asynchronously into pinned buffers, and the
    stream is synchronised once.
    """

    name = "tensorrt"

    def __init__(self, engine_file: str | Path, precision: str = "fp32"):
        trt = import_tensorrt()
        try:
            import torch
        except ImportError as e:
            raise BackendError("the TensorRT backend keeps its buffers in torch CUDA tensors: install PyTorch") from e
        if not torch.cuda.is_available():
            raise BackendError("the TensorRT backend needs a CUDA GPU; none is visible to PyTorch")
        self._trt, self._torch = trt, torch
        self.path = Path(engine_file)
        self.device, self.precision, self.detail = "cuda", precision, self.path.name
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise BackendError(f"cannot read engine {self.path}: {e}") from e
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise BackendError(f"{self.path}: TensorRT {trt.__version__} cannot deserialize it (corrupt, or built by "
                               "another TensorRT version or for another GPU); delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.size_bytes = len(data)
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                  trt.DataType.INT32: torch.int32, trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool}
        if hasattr(trt.DataType, "INT64"):
            dtypes[trt.DataType.INT64] = torch.int64
        self.input_names, self.output_names, self._dtype = [], [], {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            kind = self.engine.get_tensor_dtype(name)
            if kind not in dtypes:
                raise BackendError(f"{self.path.name}: tensor {name!r} has TensorRT type {kind}, not supported here")
            self._dtype[name] = dtypes[kind]
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.input_names if is_input else self.output_names).append(name)
        # the batch range of optimisation profile 0, which the context runs: an engine cached by
        # 'fingerspell export --max-batch N' takes fewer rows than the default 32; callers that batch read max_batch
        self.min_batch, self.max_batch = self._batch_range()
        self._device_buf: dict = {}
        self._host_buf: dict = {}

    def _batch_range(self) -> tuple[int, int]:
        """(smallest, largest) batch every input accepts under optimisation profile 0."""
        lo, hi = 1, 1 << 30
        for name in self.input_names:
            shapes = self.engine.get_tensor_profile_shape(name, 0)  # [min, opt, max] dims (TensorRT 10)
            if len(shapes) == 3 and len(shapes[0]):
                first, last = int(shapes[0][0]), int(shapes[2][0])
            else:  # an input without a dynamic profile: its fixed batch
                first = last = int(self.engine.get_tensor_shape(name)[0])
            lo, hi = max(lo, first), min(hi, last)
        return lo, hi

    def _buffer(self, store: dict, name: str, shape: tuple, pinned: bool):
        key = (name, shape)
        if key not in store:
            t = self._torch
            store[key] = (t.empty(shape, dtype=self._dtype[name], pin_memory=True) if pinned
                          else t.empty(shape, dtype=self._dtype[name], device="cuda"))
        return store[key]

    def _check_shape(self, name: str, shape: tuple) -> None:
        """Refuse a shape outside the engine's profile before anything is enqueued (TensorRT would fail the call)."""
        shapes = self.engine.get_tensor_profile_shape(name, 0)  # [min, opt, max] dims (TensorRT 10)
        if len(shapes) == 3 and len(shapes[0]):
            lo, hi = tuple(int(d) for d in shapes[0]), tuple(int(d) for d in shapes[2])
        else:  # an input without a dynamic profile
            lo = hi = tuple(int(d) for d in self.engine.get_tensor_shape(name))
        if len(shape) != len(lo) or any(not a <= s <= b for s, a, b in zip(shape, lo, hi)):
            raise BackendError(f"{self.path.name}: input {name!r} of shape {tuple(shape)} is outside the engine's "
                               f"profile {lo} .. {hi}: run batches of {self.min_batch} to {self.max_batch}, or "
                               "rebuild it larger (fingerspell export --format engine --max-batch N)")

    def _enqueue(self, device_inputs: dict) -> dict:
        for name in self.input_names:
            x = device_inputs[name]
            self.context.set_input_shape(name, tuple(x.shape))
            self.context.set_tensor_address(name, x.data_ptr())
        outs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            outs[name] = self._buffer(self._device_buf, name, shape, pinned=False)
            self.context.set_tensor_address(name, outs[name].data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise BackendError(f"{self.path.name}: TensorRT failed to enqueue the engine")
        return outs

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        self._check_inputs(inputs)
        device_in = {}
        with torch.cuda.stream(self.stream):
            for name in self.input_names:
                x = np.ascontiguousarray(inputs[name])
                shape = tuple(x.shape)
                self._check_shape(name, shape)
                host = self._buffer(self._host_buf, name, shape, pinned=True)
                host.copy_(torch.from_numpy(x).to(host.dtype))
                dev = self._buffer(self._device_buf, name, shape, pinned=False)
                dev.copy_(host, non_blocking=True)
                device_in[name] = dev
            outs = self._enqueue(device_in)
            host_out = {}
            for name, dev in outs.items():
                host_out[name] = self._buffer(self._host_buf, name, tuple(dev.shape), pinned=True)
                host_out[name].copy_(dev, non_blocking=True)
        self.stream.synchronize()
        return {name: h.float().numpy().copy() for name, h in host_out.items()}  # buffers are reused next call

    def run_torch(self, inputs: dict) -> dict:
        """Torch CUDA tensors in, device tensors out (valid until the next call): no host copy."""
        torch = self._torch
        self._check_inputs(inputs)
        xs = {}
        for name in self.input_names:
            x = inputs[name].to("cuda", self._dtype[name]).contiguous()
            self._check_shape(name, tuple(x.shape))
            x.record_stream(self.stream)  # the allocator must not reuse it before the engine has read it
            xs[name] = x
        self.stream.wait_stream(torch.cuda.current_stream())
        outs = self._enqueue(xs)
        torch.cuda.current_stream().wait_stream(self.stream)
        return outs

    def close(self) -> None:
        self._device_buf.clear()
        self._host_buf.clear()
        self.context = self.engine = self._runtime = None

    @classmethod
    def for_model(cls, model: str | Path, precision: str = "fp32", verify: bool = True,
                  build: bool = True) -> "TensorRTBackend":
        """The cached engine of a model for this GPU and TensorRT, built first if it is missing (fp32, fp16)."""
        trt = import_tensorrt()
        folder = resolve_model(model)
        manifest = Manifest.load(folder)
        onnx_path = folder / manifest.file
        if verify:
            verify_sha256(onnx_path, manifest.sha256)
        gpu = gpu_name()
        path = find_engine(folder, manifest, precision, gpu, trt.__version__)
        if path is None:
            if precision == "int8" or not build:
                raise BackendError(f"no {precision} engine of {folder.name} for {gpu} and TensorRT {trt.__version__}; "
                                   f"build it: fingerspell export --model {folder} --format engine"
                                   + (" --int8 --calib DATASET_DIR" if precision == "int8" else
                                      " --half" if precision == "fp16" else ""))
            from export.tensorrt_engine import export_engine

            path = export_engine(folder, half=precision == "fp16", verify=False)
        return cls(path, precision)


# --- choosing one -------------------------------------------------------------------------------------------------
def open_model(model: str | Path, device: str = "auto", verify: bool = True, kind: str | None = None,
               threads: int = 1):
    """Resolve, check against the manifest (kind, sha256) and load -> (folder, manifest, onnx path, session)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError("onnxruntime is not installed: pip install -e '.[cpu]' (or '.[gpu]')") from e
    folder = resolve_model(model)
    manifest = Manifest.load(folder)
    if kind is not None and manifest.kind != kind:
        hint = {"j2s": "use --keypoints j2s", "image-classifier": "give it as --image-model with --classifier image"
                }.get(manifest.kind, "use --keypoints mediapipe")
        raise ModelError(f"{folder.name} is a {manifest.kind} model, not a {kind} ({hint})")
    path = folder / manifest.file
    if not path.is_file():
        raise ModelError(f"{path} is missing (named by {folder / MANIFEST})")
    if verify:
        verify_sha256(path, manifest.sha256)
    providers, _ = select_providers(device, tensorrt=False, strict=True)  # CUDA EP when asked or there, else CPU
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # small models: threads cost more than they save
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({e})") from e
    return folder, manifest, path, session


def make_backend(backend: str, model: str | Path, device: str = "auto", precision: str = "fp32", *,
                 session=None, threads: int = 1, verify: bool = True, cuda_graphs: bool | None = None) -> Backend:
    """The backend ``backend`` for ``model`` (a name or folder; its file is checked against the manifest).

    ``session``: the classifier's own ONNX Runtime session, reused by ``auto``, whose behaviour is the
    one from before backends existed. ``cuda_graphs`` (torch on CUDA): default on, for batch-1 latency.
    """
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    folder = resolve_model(model)
    manifest = Manifest.load(folder)
    path = folder / manifest.file
    if backend == "auto":
        if precision != "fp32":
            raise BackendError(f"--backend auto runs fp32; for {precision} choose --backend tensorrt "
                               + ("or torch" if precision == "fp16" else "(an INT8 engine)"))
        if session is not None:
            return OrtBackend.from_session(session, path)
        return OrtBackend.from_session(open_model(folder, device, verify, threads=threads)[3], path)
    if verify and backend != "tensorrt":  # for_model checks it itself
        verify_sha256(path, manifest.sha256)
    if backend == "onnxruntime":
        shape = manifest.raw.get("input", {}).get("shape")
        shapes = {manifest.input_name: shape} if shape and all(isinstance(d, int) for d in shape[1:]) else None
        return OrtBackend(path, device, precision, threads, input_shapes=shapes)
    if backend == "torch":
        dev = _torch_device(device)
        graphs = (dev == "cuda") if cuda_graphs is None else cuda_graphs
        return TorchBackend.from_model(folder, dev, precision, graphs, verify=False)
    if device == "cpu":
        raise BackendError("--backend tensorrt runs on a CUDA GPU, not --device cpu")
    return TensorRTBackend.for_model(folder, precision, verify=verify)
