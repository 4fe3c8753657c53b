"""PyTorch: the classifier rebuilt as a torch module from its manifest and ONNX weights
(:mod:`realtime.torch_from_onnx`), on the CPU or CUDA, optionally replayed as a CUDA graph."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from realtime.backends.base import DEVICES, Backend, BackendError


def torch_device(device: str) -> str:
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


MAX_GRAPHS = 16  # CUDA graphs one backend keeps (each holds its own static inputs and memory pool)


def graph_batch(n: int) -> int:
    """The batch a CUDA graph is captured for to serve ``n`` rows: the next power of two."""
    return 1 << max(0, n - 1).bit_length()


class TorchBackend(Backend):
    """A torch module; on CUDA optionally captured once per input shape (batches rounded up to a power of two) and
    replayed as a CUDA graph. The module must compute each batch row on its own (inference: every model here)."""

    name = "torch"

    def __init__(self, module, input_names: list[str], output_names: list[str], device: str = "auto",
                 precision: str = "fp32", cuda_graphs: bool = False, threads: int | None = None,
                 cast_inputs: bool = True):
        """``cast_inputs``: inputs are converted to the precision's dtype (False: they keep theirs, e.g. uint8
        frames and float32 maps for a module that widens them itself). The outputs' rows follow the first input's."""
        import torch

        self.device = torch_device(device)
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
        self.precision, self.cuda_graphs, self.cast_inputs = precision, cuda_graphs, cast_inputs
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.module = module.to(self.device, self.dtype).eval()
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.size_bytes = sum(t.numel() * t.element_size() for t in self.module.state_dict().values())
        self.detail = ("CUDA graphs" if cuda_graphs else "eager") + (f", {torch.get_num_threads()} threads"
                                                                      if self.device == "cpu" else "")
        self._graphs: OrderedDict = OrderedDict()  # the most recently used last; at most MAX_GRAPHS kept
        self.captures = 0  # CUDA graphs captured so far, evicted ones included (a capture makes a slow call)
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

    @property
    def captured_graphs(self) -> int:
        """CUDA graphs held now (one per power-of-two batch seen, at most :data:`MAX_GRAPHS`)."""
        return len(self._graphs)

    def _graph(self, shapes: tuple):
        """(static inputs, graph, static outputs) for these input (shape, dtype)s, captured on first use."""
        import torch

        if shapes not in self._graphs:
            static_in = [torch.zeros(s, dtype=dtype, device=self.device) for s, dtype in shapes]
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
            self.captures += 1
            if len(self._graphs) > MAX_GRAPHS:  # e.g. photos of many sizes: the least recently used goes, and
                self._graphs.popitem(last=False)  # its memory with it
        self._graphs.move_to_end(shapes)
        return self._graphs[shapes]

    def run_torch(self, inputs: dict) -> dict:
        """Tensors (on this device) in, tensors on this device out: no host copy."""
        import torch

        self._check_inputs(inputs)
        xs = [inputs[n].to(self.device, self.dtype if self.cast_inputs else inputs[n].dtype, non_blocking=True)
              for n in self.input_names]
        if self.cuda_graphs:
            # one graph per power-of-two batch of each input: batches that vary from call to call (streams, hands)
            # would otherwise capture a new graph for every new size while the program runs
            static_in, graph, static_out = self._graph(tuple(((graph_batch(len(x)), *x.shape[1:]), x.dtype)
                                                             for x in xs))
            for s, x in zip(static_in, xs):
                s[:len(x)].copy_(x)  # rows past the batch keep what they held: each row is computed on its own
            graph.replay()
            n = len(xs[0])
            outs = [o[:n].clone() for o in static_out]  # the next replay overwrites the static outputs
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

