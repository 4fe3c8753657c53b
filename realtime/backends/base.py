"""What every backend is: ``run(inputs) -> outputs`` on dicts of numpy arrays named as the ONNX tensors, the
errors they raise, and the choices (devices, precisions) they share."""
from __future__ import annotations

import numpy as np

from realtime.manifest import ModelError

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

