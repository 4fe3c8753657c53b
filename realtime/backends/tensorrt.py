"""TensorRT (10 Python API, imported lazily): the engine cache (key, place, lookup), the builder, the build on
first use, and the runtime. INT8 engines need calibration data and are built by ``fingerspell export``
(:mod:`export.tensorrt_engine`, which adds the calibrator to :func:`build_cached_engine`)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from realtime.backends.base import (DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE, ENGINE_CACHE_ENV, PRECISIONS, Backend,
                                    BackendError)
from realtime.manifest import Manifest, resolve_model, verify_sha256


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


# --- building engines ----------------------------------------------------------------------------------------
def build_engine(onnx_path: Path, out: Path, input_shape: dict[str, list[int]], half: bool = False,
                 int8: bool = False, calibrator=None, workspace: int = DEFAULT_WORKSPACE,
                 profile: tuple[int, int, int] = (1, 1, DEFAULT_MAX_BATCH)) -> Path:
    """Parse ``onnx_path``, build with the given precision, workspace and batch profile, write ``out``."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    lo, opt, hi = profile
    opt_profile = builder.create_optimization_profile()
    for name, shape in input_shape.items():
        dims = [int(d) for d in shape]
        opt_profile.set_shape(name, [lo] + dims, [opt] + dims, [hi] + dims)
    config.add_optimization_profile(opt_profile)
    if half:
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in later TensorRT 10 releases
            print("TensorRT: this GPU has no fast FP16; building FP16 anyway")
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        if calibrator is None:
            raise BackendError("an INT8 engine needs calibration data (--calib DIR)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers INT8 cannot take fall back to FP16, not FP32
        config.int8_calibrator = calibrator
        # calibration runs at one fixed shape: a profile of its own, at the calibrator's batch size (without it
        # TensorRT would calibrate at the inference profile's opt batch and expect batches of that size)
        n = int(calibrator.get_batch_size())
        if not lo <= n <= hi:
            raise BackendError(f"calibration batch {n} is outside the engine's batch profile {lo}..{hi}")
        calib_profile = builder.create_optimization_profile()
        for name, shape in input_shape.items():
            dims = [n] + [int(d) for d in shape]
            calib_profile.set_shape(name, dims, dims, dims)
        config.set_calibration_profile(calib_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(out)
    return out


def checked_model(model: str | Path, verify: bool = True) -> tuple[Path, Manifest, Path]:
    """(folder, manifest, ONNX path) of a model name or folder, its file checked against the manifest's sha256."""
    folder = resolve_model(model)
    manifest = Manifest.load(folder)
    onnx_path = folder / manifest.file
    if verify:
        verify_sha256(onnx_path, manifest.sha256)
    return folder, manifest, onnx_path


def build_cached_engine(model: str | Path, precision: str = "fp32", calibrate=None,
                        workspace: int = DEFAULT_WORKSPACE, profile: tuple[int, int, int] = (1, 1, DEFAULT_MAX_BATCH),
                        verify: bool = True, force: bool = False) -> Path:
    """A model (shipped name or folder) -> its engine in the cache for this GPU and TensorRT version, built
    unless cached (``force``: rebuilt), with a ``.json`` beside it that spells the cache key out.
    ``calibrate`` (int8 only): (engine path, manifest) -> (an ``IInt8EntropyCalibrator2``, what it was fed, to
    record), called only when the engine is built: a cached engine never reads calibration data."""
    trt = import_tensorrt()
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    folder, manifest, onnx_path = checked_model(model, verify)
    gpu = gpu_name()
    key = engine_cache_key(manifest.sha256, gpu, trt.__version__, precision, profile)
    out = engine_path(folder, manifest.file, key, precision)
    if out.is_file() and not force:
        print(f"engine cached: {out}")
        return out
    calibrator, calibration = calibrate(out, manifest) if calibrate is not None else (None, None)
    shape = [int(d) for d in manifest.raw["input"]["shape"][1:]]
    build_engine(onnx_path, out, {manifest.input_name: shape}, half=precision == "fp16", int8=precision == "int8",
                 calibrator=calibrator, workspace=workspace, profile=profile)
    info = {"model": manifest.name, "onnx": manifest.file, "model_sha256": manifest.sha256, "gpu": gpu,
            "tensorrt": trt.__version__, "precision": precision, "profile": list(profile),
            "workspace_bytes": int(workspace), "key": key, "bytes": out.stat().st_size,
            "calibration": None, "calibration_leaves_out": None, **(calibration or {}),
            "created": _dt.datetime.now().isoformat(timespec="seconds")}
    out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"TensorRT {trt.__version__} {precision} engine for {gpu}: {out} ({info['bytes']} bytes)")
    return out


# --- running engines -----------------------------------------------------------------------------------------
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
        folder, manifest, _ = checked_model(model, verify)
        gpu = gpu_name()
        path = find_engine(folder, manifest, precision, gpu, trt.__version__)
        if path is None:
            if precision == "int8" or not build:
                raise BackendError(f"no {precision} engine of {folder.name} for {gpu} and TensorRT {trt.__version__}; "
                                   f"build it: fingerspell export --model {folder} --format engine"
                                   + (" --int8 --calib DATASET_DIR" if precision == "int8" else
                                      " --half" if precision == "fp16" else ""))
            path = build_cached_engine(folder, precision, verify=False)
        return cls(path, precision)

