"""MediaPipe's palm detector and hand-landmark nets as PyTorch modules, built from the shipped ONNX files in
``weights/mediapipe-hands`` (:mod:`export.mediapipe_hands` made them from the TFLite models in MediaPipe's wheel).

Those graphs use a dozen operators (Conv, Add, Relu, Clip, MaxPool, channel Pad, bilinear Resize, Transpose,
Reshape, Concat, ReduceMean, Gemm, Sigmoid, and Cast / Identity). :class:`HandNet` reads the graph once and
turns it into a fixed list of torch calls, written so that a CUDA graph can capture it:

- every weight is a registered buffer (it moves with ``.to(device)`` and ``.half()``): no host tensor is ever
  copied inside ``forward``;
- what the ONNX graph computes from shapes (``Shape -> Slice -> Concat`` feeding a ``Resize``) is folded into
  constant output sizes when the module is built, and ``Reshape`` keeps only ``-1`` for the batch;
- the fp16 weights stored in the file (``Cast`` of an initializer) are widened once, at build time.

Input: (batch, S, S, 3) float RGB in 0..1, NHWC as the ONNX file takes it; outputs: the ONNX file's, by name.
Parity with ONNX Runtime on real crops is held by ``tests/test_torch_hands.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.manifest import ModelError

SUPPORTED = {"Conv", "Add", "Relu", "Clip", "MaxPool", "Pad", "Resize", "Transpose", "Reshape", "Concat",
             "ReduceMean", "Gemm", "Sigmoid", "Cast", "Identity", "Shape", "Slice"}


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _torch_pad(onnx_pads: list[int]) -> tuple[int, ...]:
    """ONNX pads (x1_begin, x2_begin, ..., x1_end, x2_end, ...) -> F.pad's (last dim first, begin then end)."""
    n = len(onnx_pads) // 2
    out = []
    for d in reversed(range(n)):
        out += [int(onnx_pads[d]), int(onnx_pads[d + n])]
    return tuple(out)


def _build(path: Path):
    """The ONNX graph -> (steps, constants, input name, output names); shape subgraphs folded."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    shapes: dict[str, list[int]] = {}  # tensors computed from shapes: their constant values
    inputs = [i.name for i in proto.graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one input, found {inputs}")
    steps = []
    for node in proto.graph.node:
        op, a, ins, out = node.op_type, _attrs(node), list(node.input), node.output[0]
        if op not in SUPPORTED:
            raise ModelError(f"{path}: operator {op} is not one the torch hand nets implement ({sorted(SUPPORTED)})")
        if op == "Cast" and ins[0] in consts:  # fp16 weights stored in the file: widened once, here
            consts[out] = consts[ins[0]].astype(np.float32)
        elif op == "Shape":
            shapes[out] = ["batch", "channels", "height", "width"]  # only sliced to (batch, channels) below
        elif op == "Slice":
            start, end = int(consts[ins[1]][0]), int(consts[ins[2]][0])
            shapes[out] = shapes[ins[0]][start:end]
        elif op == "Concat" and ins[0] in shapes:
            shapes[out] = shapes[ins[0]] + [int(v) for v in consts[ins[1]]]
        elif op == "Resize":
            size = shapes[ins[3]]
            if size[:2] != ["batch", "channels"] or a.get("mode", b"linear") != b"linear" \
                    or a.get("coordinate_transformation_mode") != b"half_pixel":
                raise ModelError(f"{path}: a Resize this module does not implement ({a}, sizes {size})")
            steps.append(("resize", out, [ins[0]], {"size": (int(size[2]), int(size[3]))}))
        elif op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            k = {"stride": tuple(a.get("strides", [1, 1])), "groups": int(a.get("group", 1)),
                 "dilation": tuple(a.get("dilations", [1, 1]))}
            if pads[0] == pads[2] and pads[1] == pads[3]:
                k.update(padding=(int(pads[0]), int(pads[1])), pre_pad=None)
            else:  # TFLite's SAME padding on even sizes is asymmetric: pad first, then convolve
                k.update(padding=(0, 0), pre_pad=_torch_pad(pads))
            steps.append(("conv", out, ins, k))
        elif op == "Pad":
            steps.append(("pad", out, [ins[0]], {"pad": _torch_pad([int(v) for v in consts[ins[1]]])}))
        elif op == "Reshape":
            shape = [int(v) for v in consts[ins[1]]]
            steps.append(("reshape", out, [ins[0]], {"shape": (-1, *shape[1:])}))
        elif op == "Clip":
            lo, hi = (float(consts[n]) if n in consts and n else None for n in (ins + ["", ""])[1:3])
            steps.append(("clip", out, [ins[0]], {"min": lo, "max": hi}))
        elif op == "MaxPool":
            if any(a.get("pads", [0])):
                raise ModelError(f"{path}: a padded MaxPool is not implemented")
            steps.append(("maxpool", out, ins, {"kernel": tuple(a["kernel_shape"]), "stride": tuple(a["strides"])}))
        elif op == "Transpose":
            steps.append(("transpose", out, ins, {"perm": tuple(a["perm"])}))
        elif op == "Concat":
            steps.append(("concat", out, ins, {"axis": int(a["axis"])}))
        elif op == "ReduceMean":
            steps.append(("mean", out, ins, {"axes": tuple(a["axes"]), "keepdims": bool(a.get("keepdims", 1))}))
        elif op == "Gemm":
            if not a.get("transB") or a.get("transA") or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise ModelError(f"{path}: a Gemm other than x @ W.T + b is not implemented ({a})")
            steps.append(("linear", out, ins, {}))
        else:  # Add, Relu, Sigmoid, Identity
            steps.append((op.lower(), out, ins, {}))
    outputs = [o.name for o in proto.graph.output]
    used = {i for _, _, ins, _ in steps for i in ins}
    weights = {n: v for n, v in consts.items() if n in used and v.dtype == np.float32}
    return steps, weights, inputs[0], outputs


def _module_class():
    import torch
    import torch.nn.functional as F

    class HandNet(torch.nn.Module):
        """One of the hand nets: NHWC RGB (batch, S, S, 3) in 0..1 -> its ONNX outputs, in the file's order."""

        def __init__(self, path: str | Path):
            super().__init__()
            self.path = Path(path)
            self.steps, weights, self.input_name, self.output_names = _build(self.path)
            self.names = {}  # ONNX name -> buffer attribute (ONNX names are not always valid attribute names)
            for i, (name, value) in enumerate(sorted(weights.items())):
                self.names[name] = f"w{i}"
                self.register_buffer(f"w{i}", torch.from_numpy(np.array(value, np.float32)))  # a copy: writable

        def forward(self, x):
            env = {self.input_name: x}

            def get(name):
                return env[name] if name in env else getattr(self, self.names[name])

            for op, out, ins, k in self.steps:
                if op == "conv":
                    y = get(ins[0])
                    if k["pre_pad"]:
                        y = F.pad(y, k["pre_pad"])
                    y = F.conv2d(y, get(ins[1]), get(ins[2]) if len(ins) > 2 else None, k["stride"], k["padding"],
                                 k["dilation"], k["groups"])
                elif op == "add":
                    y = get(ins[0]) + get(ins[1])
                elif op == "relu":
                    y = F.relu(get(ins[0]))
                elif op == "clip":
                    y = torch.clamp(get(ins[0]), k["min"], k["max"])
                elif op == "maxpool":
                    y = F.max_pool2d(get(ins[0]), k["kernel"], k["stride"])
                elif op == "pad":
                    y = F.pad(get(ins[0]), k["pad"])
                elif op == "resize":
                    y = F.interpolate(get(ins[0]), size=k["size"], mode="bilinear", align_corners=False)
                elif op == "transpose":
                    y = get(ins[0]).permute(*k["perm"])
                elif op == "reshape":
                    y = get(ins[0]).reshape(k["shape"])
                elif op == "concat":
                    y = torch.cat([get(i) for i in ins], k["axis"])
                elif op == "mean":
                    y = get(ins[0]).mean(dim=k["axes"], keepdim=k["keepdims"])
                elif op == "linear":
                    y = F.linear(get(ins[0]), get(ins[1]), get(ins[2]) if len(ins) > 2 else None)
                elif op == "sigmoid":
                    y = torch.sigmoid(get(ins[0]))
                else:  # identity
                    y = get(ins[0])
                env[out] = y
            return tuple(env[n] for n in self.output_names)

    return HandNet


def hand_net(path: str | Path):
    """A :class:`HandNet` (torch module) of one ONNX hand model file; imports torch only when called."""
    return _module_class()(path)


def hand_step(net, head, crop_size: int | None = None, replicate: bool = False, extra_inputs: int = 0,
              head_module=None):
    """One hand net as the step that runs it: ``head`` turns the net's outputs (a tuple, in the file's order) into
    the few tensors that come back to the host; with ``crop_size`` the module also makes its crops first
    (:func:`realtime.torch_crops.sample_crops`), so that on CUDA one graph replay does crops, net and head.
    Inputs: the crops (batch, S, S, 3) float RGB; or, with ``crop_size``, the crops' maps and the frames' canvas;
    then ``extra_inputs`` more, handed to the head after the outputs (the landmark head's crop places).
    ``head_module``: a module the head calls (the landmark head's :mod:`realtime.torch_reader` classifier),
    registered here so that it moves to the step's device with it."""
    import torch

    from realtime.torch_crops import sample_crops

    class HandStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.head_module = head_module

        def forward(self, *inputs):
            inputs, extra = inputs[:len(inputs) - extra_inputs], inputs[len(inputs) - extra_inputs:]
            if crop_size is None:
                (x,) = inputs
            else:
                maps, canvas = inputs
                x = sample_crops(canvas, maps, crop_size, replicate)
            return head(self.net(x.to(next(self.net.buffers()).dtype)), *extra)

    return HandStep()
