"""A sequence reader's streaming step: its layers read from the exported window model (``model.onnx``, BatchNorm
folded into each convolution), and the step that reads one frame with a carried state (each block's last
``(k - 1) * dilation`` inputs). ``export.sequence_export`` writes it to ``step.onnx`` for ONNX Runtime; with
``--backend torch`` :class:`TorchStep` runs it in PyTorch (on CUDA where asked), from the same weights.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.manifest import ModelError


def window_layers(onnx_path: str | Path) -> dict:
    """The layers of an exported window model (``model.onnx``), read from its graph: the input projection
    (``inp_w`` (in_dim, C), ``inp_b``), each causal block's convolution with its BatchNorm already folded in
    (``convs``: (weight (C, C, k), bias (C,), dilation)), and the output projection (``out_w``, ``out_b``)."""
    from realtime.torch_from_onnx import attribute, initializers, load_onnx

    proto = load_onnx(Path(onnx_path))  # a missing onnx package or a damaged file: a ModelError that says so
    graph, init = proto.graph, initializers(proto)

    def unexpected(what: str) -> ModelError:
        return ModelError(f"{onnx_path}: not the graph of a sequence reader's window model ({what}); export it from "
                          "its training run ('fingerspell train sequence --export DIR')")

    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            if len(node.input) < 3 or not {node.input[1], node.input[2]} <= init.keys():
                raise unexpected("a convolution without its weights and bias as initializers")
            dil = attribute(node, "dilations", [1])[0]
            convs.append((init[node.input[1]], init[node.input[2]], int(dil)))
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in init]
    if not convs or len(matmuls) != 2:
        raise unexpected(f"{len(convs)} convolutions and {len(matmuls)} projections")

    def bias_after(mm):
        adds = [n for n in graph.node if n.op_type == "Add" and mm.output[0] in n.input]
        biases = [i for n in adds for i in n.input if i in init]
        if len(biases) != 1:
            raise unexpected("a projection without one bias added after it")
        return init[biases[0]]

    return {"inp_w": init[matmuls[0].input[1]], "inp_b": bias_after(matmuls[0]), "convs": convs,
            "out_w": init[matmuls[1].input[1]], "out_b": bias_after(matmuls[1])}


def step_module(layers: dict):
    """The streaming step as a PyTorch module (what ``step.onnx`` is exported from, and what ``--backend torch``
    runs)."""
    import torch

    class StreamStep(torch.nn.Module):
        """(newest frame (B, in_dim), state (B, C, S)) -> (log-probabilities (B, classes), next state): each block's
        last (k - 1) * dilation inputs are the state; the newest output is the window model's."""

        def __init__(self):
            super().__init__()
            def t(a):
                return torch.nn.Parameter(torch.from_numpy(np.array(a, np.float32)), requires_grad=False)

            self.inp_w, self.inp_b = t(layers["inp_w"]), t(layers["inp_b"])
            self.out_w, self.out_b = t(layers["out_w"]), t(layers["out_b"])
            self.w = torch.nn.ParameterList([t(w) for w, _, _ in layers["convs"]])
            self.b = torch.nn.ParameterList([t(b) for _, b, _ in layers["convs"]])
            self.dilations = [d for _, _, d in layers["convs"]]

        def forward(self, frame, state):
            h = torch.relu(frame @ self.inp_w + self.inp_b)
            parts, at = [], 0
            for w, b, d in zip(self.w, self.b, self.dilations):
                k = w.shape[2]
                past = state[:, :, at:at + (k - 1) * d]  # this block's inputs at t - (k-1)d .. t - 1
                buf = torch.cat([past, h[:, :, None]], 2)
                y = b + sum(buf[:, :, j * d] @ w[:, :, j].T for j in range(k))
                parts.append(buf[:, :, 1:])
                h = h + torch.relu(y)
                at += (k - 1) * d
            return torch.log_softmax(h @ self.out_w + self.out_b, -1), torch.cat(parts, 2)

    return StreamStep().eval()


def state_size(layers: dict) -> int:
    """The state's columns: every block's last ``(k - 1) * dilation`` inputs."""
    return sum((w.shape[2] - 1) * d for w, _, d in layers["convs"])


class TorchStep:
    """The streaming step in PyTorch, with the interface of an ONNX Runtime session that the reader uses
    (``run(None, {"frame": ..., "state": ...})`` -> [log-probabilities, next state] as numpy): ``--backend torch``,
    on the CPU or a CUDA GPU, whatever ONNX Runtime build is installed. The state goes up and comes back each frame
    (B x C x S floats, 32 KB a stream)."""

    def __init__(self, onnx_path: str | Path, device: str = "auto"):
        import torch

        from realtime.backends.pytorch import torch_device

        self.device = torch_device(device)
        layers = window_layers(onnx_path)
        self.module = step_module(layers).to(self.device)
        self.state_shape = (layers["inp_w"].shape[1], state_size(layers))  # (channels, state columns) a stream
        self._torch = torch

    def run(self, _names, feeds: dict) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            frame = torch.from_numpy(np.ascontiguousarray(feeds["frame"], np.float32)).to(self.device)
            state = torch.from_numpy(np.ascontiguousarray(feeds["state"], np.float32)).to(self.device)
            logp, nxt = self.module(frame, state)
            return [logp.cpu().numpy(), nxt.cpu().numpy()]
