"""``fingerspell export --format engine``: ONNX -> TensorRT engine, FP32, FP16, or INT8 calibrated on real data.
The builder and the engine cache are the runtime's (:mod:`realtime.backends.tensorrt`, which also builds fp32 /
fp16 engines on first use); what is here is the INT8 calibrator and its real samples.

    export_engine("asl-letters", half=True)                        # -> weights/asl-letters/model.fp16.<key>.engine
    export_engine("lis-j2s", int8=True, calib="$FINGERSPELL_DATASETS/lis")

The builder parses the ONNX file (``OnnxParser``), sets the workspace pool limit
(``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``), one optimisation profile for the dynamic batch
(min, opt, max), the FP16 / INT8 flags, and for INT8 an entropy calibrator (``IInt8EntropyCalibrator2``)
fed by real samples of the model's own kind (:func:`export.real_inputs.calibration_inputs`). The engine is
written beside the model (or in the user cache when that folder is read-only), named by
:func:`realtime.backends.tensorrt.engine_cache_key` (model sha256, GPU name, TensorRT version, precision, profile),
with a ``.json`` beside it that spells the key out.

INT8 note: TensorRT 10 marks implicit quantisation (calibrators) as deprecated in favour of explicit Q/DQ
models (NVIDIA ModelOpt); it still works in 10.x, and the calibrator here is the documented one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.backends.base import DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE, BackendError
from realtime.backends.tensorrt import build_cached_engine, import_tensorrt
from realtime.manifest import Manifest, resolve_model


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


def export_engine(model: str | Path, half: bool = False, int8: bool = False, calib: str | Path | None = None,
                  workspace: int = DEFAULT_WORKSPACE, max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int = 1,
                  calib_batch: int = 32, calib_samples: int = 512, verify: bool = True, force: bool = False) -> Path:
    """A model (shipped name or folder) -> its cached TensorRT engine for this GPU and TensorRT version; INT8 is
    calibrated here on real samples of the model's own kind."""
    import_tensorrt()
    if int8 and calib is None:
        raise BackendError("--int8 needs --calib DIR: real samples to calibrate the INT8 ranges on")
    precision = "int8" if int8 else "fp16" if half else "fp32"
    profile = (1, opt_batch, max_batch)

    def calibrate(out: Path, manifest: Manifest):
        """Called by the builder only when the INT8 engine is not cached: reads the real samples then."""
        from export.real_inputs import calibration_inputs

        x = calibration_inputs(resolve_model(model), calib, limit=calib_samples)
        batches = CalibrationBatches({manifest.input_name: x}, min(calib_batch, len(x), max_batch))
        print(f"INT8 calibration on {batches.num_batches} batches of {batches.batch_size} real samples from {calib}")
        table = out.with_suffix(".calib")  # the calibration table belongs to this data: never reuse a stale one
        table.unlink(missing_ok=True)
        return make_entropy_calibrator(batches, table), {
            "calibration": [str(c) for c in (calib if isinstance(calib, (list, tuple)) else [calib])],
            "calibration_leaves_out": "the held-out signers and the evaluation set's images"}
    return build_cached_engine(model, precision, calibrate if int8 else None, workspace, profile, verify, force)
