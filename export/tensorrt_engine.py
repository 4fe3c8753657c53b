"""ONNX -> TensorRT engine (TensorRT 10 Python API, imported lazily): FP32, FP16, or INT8 calibrated on real data.

    export_engine("asl-letters", half=True)                        # -> weights/asl-letters/model.fp16.<key>.engine
    export_engine("lis-j2s", int8=True, calib="$FINGERSPELL_DATASETS/lis")

The builder parses the ONNX file (``OnnxParser``), sets the workspace pool limit
(``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``), one optimisation profile for the dynamic batch
(min, opt, max), the FP16 / INT8 flags, and for INT8 an entropy calibrator (``IInt8EntropyCalibrator2``)
fed by real samples of the model's own kind (:func:`export.real_inputs.calibration_inputs`). The engine is
written beside the model (or in the user cache when that folder is read-only), named by
:func:`realtime.backends.engine_cache_key` (model sha256, GPU name, TensorRT version, precision, profile),
with a ``.json`` beside it that spells the key out.

INT8 note: TensorRT 10 marks implicit quantisation (calibrators) as deprecated in favour of explicit Q/DQ
models (NVIDIA ModelOpt); it still works in 10.x, and the calibrator here is the documented one.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from realtime.backends import (DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE, BackendError, engine_cache_key, engine_path,
                               gpu_name, import_tensorrt)
from realtime.manifest import Manifest, resolve_model, verify_sha256


class CalibrationBatches:
    """Fixed-size float32 batches of real inputs, in a reproducible shuffled order; pure numpy.

    TensorRT's calibrator asks for batches of exactly ``get_batch_size()`` samples, so the samples that do
    not fill a last batch are left out (and said so by ``dropped``). ``max_batches`` caps the number.
    """

    def __init__(self, inputs: dict[str, np.ndarray] | np.ndarray, batch_size: int, max_batches: int | None = None,
                 seed: int = 0, name: str = "input"):
        if isinstance(inputs, np.ndarray):
            inputs = {name: inputs}
        if not inputs:
            raise ValueError("no calibration inputs")
        sizes = {len(v) for v in inputs.values()}
        if len(sizes) != 1:
            raise ValueError(f"calibration inputs differ in length: { {k: len(v) for k, v in inputs.items()} }")
        n = sizes.pop()
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if n < batch_size:
            raise ValueError(f"{n} calibration samples cannot fill one batch of {batch_size}")
        self.inputs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
        self.batch_size = batch_size
        self.order = np.random.default_rng(seed).permutation(n)
        full = n // batch_size
        self.num_batches = min(full, max_batches) if max_batches else full
        self.dropped = n - self.num_batches * batch_size
        self._next = 0

    def __len__(self) -> int:
        return self.num_batches

    def reset(self) -> None:
        self._next = 0

    def next_batch(self) -> dict[str, np.ndarray] | None:
        """The next batch (name -> contiguous float32 array), or None when all were given."""
        if self._next >= self.num_batches:
            return None
        rows = self.order[self._next * self.batch_size:(self._next + 1) * self.batch_size]
        self._next += 1
        return {k: np.ascontiguousarray(v[rows]) for k, v in self.inputs.items()}

    def __iter__(self):
        self.reset()
        while (b := self.next_batch()) is not None:
            yield b


class CalibratorFeed:
    """What ``IInt8EntropyCalibrator2.get_batch(names)`` does, without TensorRT: the next batch copied to the
    device by ``to_device(name, array) -> int`` (a device pointer), returned in the order of ``names``;
    None once the batches are used up (that ends calibration). A name the batches do not have is an error."""

    def __init__(self, batches: CalibrationBatches, to_device):
        self.batches, self.to_device = batches, to_device
        self.fed = 0

    def get_batch_size(self) -> int:
        return self.batches.batch_size

    def get_batch(self, names: list[str]) -> list[int] | None:
        batch = self.batches.next_batch()
        if batch is None:
            return None
        missing = [n for n in names if n not in batch]
        if missing:
            raise KeyError(f"calibration batch has no input {missing} (has {sorted(batch)})")
        self.fed += 1
        return [int(self.to_device(n, batch[n])) for n in names]


def make_entropy_calibrator(batches: CalibrationBatches, cache_file: Path):
    """A ``trt.IInt8EntropyCalibrator2`` over ``batches``; device memory in torch CUDA tensors; the calibration
    table is read from / written to ``cache_file`` (a rebuild for another profile reuses it)."""
    trt = import_tensorrt()
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # TensorRT asks subclasses to call it explicitly
            self.device = {}
            self.feed = CalibratorFeed(batches, self._to_device)
            self.cache_file = Path(cache_file)

        def _to_device(self, name: str, array: np.ndarray) -> int:
            t = torch.from_numpy(array)
            if name not in self.device or self.device[name].shape != t.shape:
                self.device[name] = torch.empty(t.shape, dtype=torch.float32, device="cuda")
            self.device[name].copy_(t)  # synchronous: TensorRT reads the buffer right after get_batch returns
            return self.device[name].data_ptr()

        def get_batch_size(self):
            return self.feed.get_batch_size()

        def get_batch(self, names):
            return self.feed.get_batch(list(names))

        def read_calibration_cache(self):
            return self.cache_file.read_bytes() if self.cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            self.cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


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


def export_engine(model: str | Path, half: bool = False, int8: bool = False, calib: str | Path | None = None,
                  workspace: int = DEFAULT_WORKSPACE, max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int = 1,
                  calib_batch: int = 32, calib_samples: int = 512, verify: bool = True, force: bool = False) -> Path:
    """A model (shipped name or folder) -> its cached TensorRT engine for this GPU and TensorRT version."""
    trt = import_tensorrt()
    if int8 and calib is None:
        raise BackendError("--int8 needs --calib DIR: real samples to calibrate the INT8 ranges on")
    folder = resolve_model(model)
    manifest = Manifest.load(folder)
    onnx_path = folder / manifest.file
    if verify:
        verify_sha256(onnx_path, manifest.sha256)
    precision = "int8" if int8 else "fp16" if half else "fp32"
    profile = (1, opt_batch, max_batch)
    gpu = gpu_name()
    key = engine_cache_key(manifest.sha256, gpu, trt.__version__, precision, profile)
    out = engine_path(folder, manifest.file, key, precision)
    if out.is_file() and not force:
        print(f"engine cached: {out}")
        return out
    calibrator = None
    if int8:
        from export.real_inputs import calibration_inputs

        x = calibration_inputs(folder, calib, limit=calib_samples)
        batches = CalibrationBatches({manifest.input_name: x}, min(calib_batch, len(x), max_batch))
        print(f"INT8 calibration on {batches.num_batches} batches of {batches.batch_size} real samples from {calib}")
        table = out.with_suffix(".calib")  # the calibration table belongs to this data: never reuse a stale one
        table.unlink(missing_ok=True)
        calibrator = make_entropy_calibrator(batches, table)
    shape = [int(d) for d in manifest.raw["input"]["shape"][1:]]
    build_engine(onnx_path, out, {manifest.input_name: shape}, half=half, int8=int8, calibrator=calibrator,
                 workspace=workspace, profile=profile)
    info = {"model": manifest.name, "onnx": manifest.file, "model_sha256": manifest.sha256, "gpu": gpu,
            "tensorrt": trt.__version__, "precision": precision, "profile": list(profile),
            "workspace_bytes": int(workspace), "key": key, "bytes": out.stat().st_size,
            "calibration": [str(c) for c in (calib if isinstance(calib, (list, tuple)) else [calib])] if int8 else None,
            "calibration_leaves_out": "the held-out signers and the evaluation set's images" if int8 else None,
            "created": _dt.datetime.now().isoformat(timespec="seconds")}
    out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"TensorRT {trt.__version__} {precision} engine for {gpu}: {out} ({info['bytes']} bytes)")
    return out
