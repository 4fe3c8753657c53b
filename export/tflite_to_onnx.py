"""A small TFLite -> ONNX converter for the four MediaPipe hand models (and models built from the same ops).

Only what those models use is supported: CONV_2D, DEPTHWISE_CONV_2D, ADD, PRELU, MAX_POOL_2D, PAD,
RESIZE_BILINEAR, RESHAPE, CONCATENATION, MEAN, FULLY_CONNECTED, LOGISTIC and DEQUANTIZE of float16
weights (with the fused RELU / RELU6 activations). Anything else stops the conversion with the op's name.

Layout: TFLite is NHWC, ONNX convolutions are NCHW. The graph input stays NHWC (``(batch, H, W, 3)``,
as the TFLite model takes it, so preprocessing is the same); one Transpose follows it, every 4-D
activation is kept in NCHW, and tensors are transposed back to NHWC only where element order matters
(RESHAPE, FULLY_CONNECTED of a 4-D tensor). Weights are permuted at conversion time. The batch
dimension is symbolic (``batch``), so several crops can go through in one run.

Float16 weights stay float16 in the file (the file is as small as the TFLite one) with a Cast to
float32 in front of each use, which ONNX Runtime folds into float32 constants when it loads the model:
the arithmetic is float32 throughout, as in TFLite's own CPU kernels.

Needs the ``tflite`` package (a flatbuffer parser, the ``convert`` extra) at conversion time only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
AXIS_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}


class ConversionError(RuntimeError):
    """The TFLite model uses something this converter does not handle."""


def _tflite():
    try:
        import tflite
    except ImportError as e:
        raise ConversionError("the converter needs the 'tflite' package: pip install -e '.[convert]'") from e
    return tflite


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


class _Converter:
    def __init__(self, model_bytes: bytes, input_name: str, output_names: list[str] | None):
        import onnx  # noqa: F401  (fail early with a clear ImportError)

        self.tfl = _tflite()
        self.model = self.tfl.Model.GetRootAsModel(model_bytes, 0)
        if self.model.SubgraphsLength() != 1:
            raise ConversionError(f"expected one subgraph, got {self.model.SubgraphsLength()}")
        self.g = self.model.Subgraphs(0)
        self.op_names = _names(self.tfl.BuiltinOperator)
        self.type_names = _names(self.tfl.TensorType)
        self.nodes: list = []
        self.initializers: list = []
        self.layout: dict[int, str] = {}  # tensor index -> "nchw" (4-D activations) or "plain"
        self.consts: dict[int, np.ndarray] = {}  # tensor index -> value (float16 kept as float16)
        self.const_cache: dict[tuple, str] = {}
        self.input_name = input_name
        self.output_names = output_names
        self.counter = 0
        self.op_counts: dict[str, int] = {}
        self._out_map: dict[int, str] = {}

    # -- tensors -----------------------------------------------------------------------------------------------
    def shape(self, t: int) -> list[int]:
        return [int(v) for v in self.g.Tensors(t).ShapeAsNumpy()]

    def tname(self, t: int) -> str:
        return self._out_map.get(t, f"t{t}")

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}_{self.counter}"

    def buffer_value(self, t: int) -> np.ndarray | None:
        tensor = self.g.Tensors(t)
        buf = self.model.Buffers(tensor.Buffer())
        if buf is None or buf.DataLength() == 0:
            return None
        dtype = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT64": np.int64,
                 "UINT8": np.uint8, "INT8": np.int8}[self.type_names[tensor.Type()]]
        return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(self.shape(t))

    def const(self, t: int) -> np.ndarray:
        if t in self.consts:
            return self.consts[t]
        value = self.buffer_value(t)
        if value is None:
            raise ConversionError(f"tensor {t} ({self.g.Tensors(t).Name().decode()}) should be a constant")
        self.consts[t] = value
        return value

    def is_const(self, t: int) -> bool:
        return t in self.consts or self.buffer_value(t) is not None

    def weight(self, t: int, transform=None, key: str = "") -> str:
        """A float32 constant input: initializer (float16 kept, + Cast) after ``transform`` of the value."""
        ck = (t, key)
        if ck in self.const_cache:
            return self.const_cache[ck]
        from onnx import TensorProto, helper, numpy_helper

        value = self.const(t)
        if transform is not None:
            value = transform(value)
        value = np.ascontiguousarray(value)
        name = f"w{t}{'_' + key if key else ''}"
        if value.dtype == np.float16:
            self.initializers.append(numpy_helper.from_array(value, name + "_f16"))
            self.nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        else:
            self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
        self.const_cache[ck] = name
        return name

    def int64_const(self, values, base: str) -> str:
        from onnx import numpy_helper

        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> str:
        from onnx import helper

        outputs = outputs or [self.fresh(op.lower())]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh("n_" + op), **attrs))
        return outputs[0]

    def as_nhwc(self, t: int) -> str:
        """The activation ``t`` in TFLite's own layout (a Transpose when it is held in NCHW)."""
        if self.layout.get(t) == "nchw":
            return self.node("Transpose", [self.tname(t)], perm=list(NCHW_TO_NHWC))
        return self.tname(t)

    def activation(self, x: str, fused: int, out: str) -> str:
        act = _names(self.tfl.ActivationFunctionType)[fused]
        if act == "NONE":
            return self.node("Identity", [x], [out])
        if act == "RELU":
            return self.node("Relu", [x], [out])
        if act == "RELU6":
            lo, hi = self.scalar(0.0), self.scalar(6.0)
            return self.node("Clip", [x, lo, hi], [out])
        raise ConversionError(f"fused activation {act} is not supported")

    def scalar(self, v: float) -> str:
        from onnx import numpy_helper

        key = ("scalar", v)
        if key not in self.const_cache:
            name = self.fresh("s")
            self.initializers.append(numpy_helper.from_array(np.array(v, np.float32), name))
            self.const_cache[key] = name
        return self.const_cache[key]

    def options(self, op, cls_name: str):
        opts = getattr(self.tfl, cls_name)()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        return opts

    @staticmethod
    def same_pads(in_hw, k_hw, stride_hw, dil_hw) -> list[int]:
        pads_begin, pads_end = [], []
        for n, k, s, d in zip(in_hw, k_hw, stride_hw, dil_hw):
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            pads_begin.append(total // 2)
            pads_end.append(total - total // 2)
        return pads_begin + pads_end

    # -- ops ---------------------------------------------------------------------------------------------------
    def convert_op(self, op) -> None:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        name = self.op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [int(i) for i in op.InputsAsNumpy()]
        outs = [int(o) for o in op.OutputsAsNumpy()]
        self.op_counts[name] = self.op_counts.get(name, 0) + 1
        handler = getattr(self, "op_" + name.lower(), None)
        if handler is None:
            raise ConversionError(f"TFLite op {name} is not supported by this converter")
        handler(op, ins, outs)

    def op_dequantize(self, op, ins, outs):
        value = self.const(ins[0])  # float16 weights
        if value.dtype != np.float16:
            raise ConversionError("DEQUANTIZE of anything but float16 constants is not supported")
        self.consts[outs[0]] = value

    def _conv(self, op, ins, outs, depthwise: bool):
        o = self.options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
        x, w_t = ins[0], ins[1]
        if self.layout.get(x) != "nchw":
            raise ConversionError("convolution input is not a 4-D activation")
        w = self.const(w_t)
        kh, kw = w.shape[1], w.shape[2]
        in_h, in_w = self.shape(x)[1:3]
        stride, dil = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
        same = _names(self.tfl.Padding)[o.Padding()] == "SAME"
        pads = self.same_pads((in_h, in_w), (kh, kw), stride, dil) if same else [0, 0, 0, 0]
        if depthwise:  # (1, KH, KW, C*M) -> (C*M, 1, KH, KW)
            w_name = self.weight(w_t, lambda v: v.transpose(3, 0, 1, 2), "dw")
            group = self.shape(x)[3]
        else:  # (O, KH, KW, I) -> (O, I, KH, KW)
            w_name = self.weight(w_t, lambda v: v.transpose(0, 3, 1, 2), "oihw")
            group = 1
        inputs = [self.tname(x), w_name]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.weight(ins[2]))
        y = self.node("Conv", inputs, kernel_shape=[kh, kw], strides=list(stride), dilations=list(dil), pads=pads,
                      group=group)
        self.activation(y, o.FusedActivationFunction(), self.tname(outs[0]))
        self.layout[outs[0]] = "nchw"

    def op_conv_2d(self, op, ins, outs):
        self._conv(op, ins, outs, depthwise=False)

    def op_depthwise_conv_2d(self, op, ins, outs):
        self._conv(op, ins, outs, depthwise=True)

    def op_add(self, op, ins, outs):
        o = self.options(op, "AddOptions")
        names, layouts = [], set()
        for t in ins:
            if self.is_const(t):
                v = self.const(t)
                if v.ndim == 4:  # NHWC constant -> NCHW
                    names.append(self.weight(t, lambda a: a.transpose(*NHWC_TO_NCHW), "nchw"))
                elif v.ndim in (1, 3) and any(self.layout.get(u) == "nchw" for u in ins):  # (C,) or (1,1,C)
                    names.append(self.weight(t, lambda a: a.reshape(-1, 1, 1), "c11"))
                else:
                    names.append(self.weight(t))
            else:
                names.append(self.tname(t))
                layouts.add(self.layout.get(t, "plain"))
        if len(layouts) > 1:
            raise ConversionError("ADD of tensors in different layouts is not supported")
        y = self.node("Add", names)
        self.activation(y, o.FusedActivationFunction(), self.tname(outs[0]))
        self.layout[outs[0]] = layouts.pop() if layouts else "plain"

    def op_prelu(self, op, ins, outs):
        """PRELU(x) = x + (1 - alpha) * relu(-x), the same function in ops ONNX Runtime runs fast on the CPU.

        ONNX Runtime's PRelu with a per-channel slope is slow (4.7 of the palm detector's 8.1 ms) and keeps the
        tensor out of its blocked NCHWc layout. For image tensors, relu(-x) is a depthwise 1x1 convolution by -1
        with a ReLU and the product by (1 - alpha) a second one whose sum with x ORT fuses into the convolution;
        elsewhere x + (alpha - 1) * min(x, 0)."""
        from onnx import numpy_helper

        x, alpha = ins
        a = self.const(alpha).astype(np.float32)  # float16 slopes: 1 - a is exact in float32
        names = {i.name for i in self.initializers}
        if self.layout.get(x) == "nchw":
            c = a.size
            neg, scale = f"w{alpha}_neg_one", f"w{alpha}_one_minus"
            if scale not in names:
                self.initializers.append(numpy_helper.from_array(-np.ones((c, 1, 1, 1), np.float32), neg))
                self.initializers.append(numpy_helper.from_array((1.0 - a).reshape(c, 1, 1, 1), scale))
            relu_neg = self.node("Relu", [self.node("Conv", [self.tname(x), neg], kernel_shape=[1, 1], group=c)])
            scaled = self.node("Conv", [relu_neg, scale], kernel_shape=[1, 1], group=c)
            self.node("Add", [scaled, self.tname(x)], [self.tname(outs[0])])
        else:
            name = f"w{alpha}_minus_1"
            if name not in names:
                self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(a - np.float32(1.0)), name))
            neg = self.node("Min", [self.tname(x), self.scalar(0.0)])
            self.node("Add", [self.tname(x), self.node("Mul", [neg, name])], [self.tname(outs[0])])
        self.layout[outs[0]] = self.layout.get(x, "plain")

    def op_logistic(self, op, ins, outs):
        self.node("Sigmoid", [self.tname(ins[0])], [self.tname(outs[0])])
        self.layout[outs[0]] = self.layout.get(ins[0], "plain")

    def op_max_pool_2d(self, op, ins, outs):
        o = self.options(op, "Pool2DOptions")
        x = ins[0]
        in_h, in_w = self.shape(x)[1:3]
        k, stride = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        same = _names(self.tfl.Padding)[o.Padding()] == "SAME"
        pads = self.same_pads((in_h, in_w), k, stride, (1, 1)) if same else [0, 0, 0, 0]
        y = self.node("MaxPool", [self.tname(x)], kernel_shape=list(k), strides=list(stride), pads=pads)
        self.activation(y, o.FusedActivationFunction(), self.tname(outs[0]))
        self.layout[outs[0]] = "nchw"

    def op_pad(self, op, ins, outs):
        x, p = ins
        pads = self.const(p).astype(np.int64)  # (rank, 2) in NHWC order
        if self.layout.get(x) == "nchw":
            pads = pads[list(NHWC_TO_NCHW)]
        onnx_pads = self.int64_const(np.concatenate([pads[:, 0], pads[:, 1]]), "pads")
        self.node("Pad", [self.tname(x), onnx_pads], [self.tname(outs[0])], mode="constant")
        self.layout[outs[0]] = self.layout.get(x, "plain")

    def op_resize_bilinear(self, op, ins, outs):
        o = self.options(op, "ResizeBilinearOptions")
        x = ins[0]
        if self.layout.get(x) != "nchw":
            raise ConversionError("RESIZE_BILINEAR of a non-image tensor")
        h, w = (int(v) for v in self.const(ins[1]))
        mode = "align_corners" if o.AlignCorners() else "half_pixel" if o.HalfPixelCenters() else "asymmetric"
        shape = self.node("Shape", [self.tname(x)])
        nc = self.node("Slice", [shape, self.int64_const([0], "b"), self.int64_const([2], "e")])
        sizes = self.node("Concat", [nc, self.int64_const([h, w], "hw")], axis=0)
        self.node("Resize", [self.tname(x), "", "", sizes], [self.tname(outs[0])], mode="linear",
                  coordinate_transformation_mode=mode)
        self.layout[outs[0]] = "nchw"

    def op_reshape(self, op, ins, outs):
        x = ins[0]
        target = self.shape(outs[0])
        target = [-1] + target[1:]  # the batch dimension follows the input
        y = self.node("Reshape", [self.as_nhwc(x), self.int64_const(target, "shape")])
        if len(target) == 4:
            self.node("Transpose", [y], [self.tname(outs[0])], perm=list(NHWC_TO_NCHW))
            self.layout[outs[0]] = "nchw"
        else:
            self.node("Identity", [y], [self.tname(outs[0])])
            self.layout[outs[0]] = "plain"

    def op_concatenation(self, op, ins, outs):
        o = self.options(op, "ConcatenationOptions")
        axis = o.Axis()
        rank = len(self.shape(outs[0]))
        axis = axis + rank if axis < 0 else axis
        layouts = {self.layout.get(t, "plain") for t in ins}
        if layouts == {"nchw"}:
            names, axis, layout = [self.tname(t) for t in ins], AXIS_NHWC_TO_NCHW[axis], "nchw"
        else:
            names, layout = [self.as_nhwc(t) for t in ins], "plain"
            if rank == 4:
                raise ConversionError("CONCATENATION of 4-D tensors in mixed layouts is not supported")
        y = self.node("Concat", names, axis=axis)
        self.activation(y, o.FusedActivationFunction(), self.tname(outs[0]))
        self.layout[outs[0]] = layout

    def op_mean(self, op, ins, outs):
        o = self.options(op, "ReducerOptions")
        x = ins[0]
        axes = [int(a) % 4 if self.layout.get(x) == "nchw" else int(a) for a in np.ravel(self.const(ins[1]))]
        keep = bool(o.KeepDims())
        if self.layout.get(x) == "nchw":
            mapped = sorted(AXIS_NHWC_TO_NCHW[a] for a in axes)
            y = self.node("ReduceMean", [self.tname(x)], axes=mapped, keepdims=int(keep))
            if keep:
                self.node("Identity", [y], [self.tname(outs[0])])
                self.layout[outs[0]] = "nchw"
                return
            kept_nchw = [a for a in range(4) if a not in mapped]  # the order they come out in
            inverse = {v: k for k, v in AXIS_NHWC_TO_NCHW.items()}
            kept_nhwc = [inverse[a] for a in kept_nchw]
            perm = list(np.argsort(kept_nhwc))
            if perm != list(range(len(perm))):
                y = self.node("Transpose", [y], perm=[int(p) for p in perm])
            self.node("Identity", [y], [self.tname(outs[0])])
        else:
            self.node("ReduceMean", [self.tname(x)], [self.tname(outs[0])], axes=axes, keepdims=int(keep))
        self.layout[outs[0]] = "plain"

    def op_fully_connected(self, op, ins, outs):
        o = self.options(op, "FullyConnectedOptions")
        x, w_t = ins[0], ins[1]
        n_in = self.const(w_t).shape[1]
        flat = self.node("Reshape", [self.as_nhwc(x), self.int64_const([-1, n_in], "flat")])
        inputs = [flat, self.weight(w_t)]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.weight(ins[2]))
        y = self.node("Gemm", inputs, transB=1)
        if len(self.shape(outs[0])) != 2:
            raise ConversionError("FULLY_CONNECTED with keep_num_dims is not supported")
        self.activation(y, o.FusedActivationFunction(), self.tname(outs[0]))
        self.layout[outs[0]] = "plain"

    # -- graph -------------------------------------------------------------------------------------------------
    def run(self, doc: str = ""):
        from onnx import TensorProto, helper

        g = self.g
        inputs = [int(i) for i in g.InputsAsNumpy()]
        outputs = [int(o) for o in g.OutputsAsNumpy()]
        if len(inputs) != 1:
            raise ConversionError(f"expected one input, got {len(inputs)}")
        names = self.output_names or [g.Tensors(o).Name().decode() for o in outputs]
        if len(names) != len(outputs):
            raise ConversionError(f"{len(outputs)} outputs but {len(names)} output names given")
        self._out_map = dict(zip(outputs, names))
        x = inputs[0]
        in_shape = self.shape(x)
        if len(in_shape) != 4:
            raise ConversionError(f"expected an NHWC image input, got shape {in_shape}")
        self.node("Transpose", [self.input_name], [self.tname(x)], perm=list(NHWC_TO_NCHW))
        self.layout[x] = "nchw"
        for i in range(g.OperatorsLength()):
            self.convert_op(g.Operators(i))
        for o in outputs:
            if self.layout.get(o) == "nchw":
                raise ConversionError("4-D graph outputs are not supported")
        graph_in = [helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT, ["batch", *in_shape[1:]])]
        graph_out = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", *self.shape(o)[1:]])
                     for n, o in zip(names, outputs)]
        graph = helper.make_graph(self.nodes, "model", graph_in, graph_out, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="fingerspell export.tflite_to_onnx", doc_string=doc)
        model.ir_version = 8
        return model


def convert(tflite_path: str | Path, input_name: str = "input", output_names: list[str] | None = None,
            doc: str = "", metadata: dict | None = None):
    """Read ``tflite_path`` and return ``(onnx ModelProto, op counts)``; the model passes onnx.checker."""
    import json

    import onnx

    conv = _Converter(Path(tflite_path).read_bytes(), input_name, output_names)
    model = conv.run(doc)
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.checker.check_model(model, full_check=True)
    return model, dict(sorted(conv.op_counts.items()))
