"""PyTorch modules for the shipped models, rebuilt from the manifest and the ONNX file's own weights.

``weights/`` holds ONNX files and manifests only, but the architecture of each model kind is known:
:class:`training.keypoint_model.KeypointClassifier` (wrapped in ``WithSoftmax``) for keypoint classifiers,
:class:`training.j2s_model.J2S` (wrapped in ``J2SExport``) for J2S. The layer sizes come from the ONNX
initializers' shapes (checked against the manifest), the weights from the initializers themselves:

- by name: ``torch.onnx.export`` keeps module paths as initializer names (``model.fc1.weight``);
- by graph order and shape: where the exporter folded a BatchNorm into the preceding convolution it
  leaves the fused weight unnamed (``onnx::Conv_130``); those BatchNorms become ``Identity`` and each
  ``Conv`` node's weight and bias go to the next convolution of the module, in forward order.

Every initializer must be used and every parameter filled, with the same shape; anything else is a
:class:`~realtime.manifest.ModelError` that names the tensor. ``Gemm`` nodes must have ``transB = 1``
(torch's ``Linear`` layout) and BatchNorm epsilons are taken from the graph. The parity of the result
against ONNX Runtime is checked by ``tests/test_backends.py`` for every shipped model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.manifest import Manifest, ModelError, resolve_model, verify_sha256

UNUSED_BUFFERS = ("num_batches_tracked", "polar.mean_wrist")  # not in the exported graph (see J2S PolarConversion)


@dataclass
class RebuiltModel:
    module: object  # torch.nn.Module in eval mode, float32, on the CPU
    manifest: Manifest
    path: Path  # the ONNX file the weights came from
    input_names: list[str]
    output_names: list[str]
    opset: int


def load_onnx(path: Path):
    """The ONNX file as a ModelProto; a ModelError that says why when it cannot be read."""
    try:
        import onnx
    except ImportError as e:
        raise ModelError("the PyTorch backend reads the ONNX weights with the onnx package: "
                         "pip install -e '.[train]'") from e
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx raises DecodeError, ValidationError, OSError...
        raise ModelError(f"{path}: not a valid ONNX file ({type(e).__name__}: {e})") from e
    return proto


def initializers(proto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def attribute(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _shape(inits: dict, name: str, path: Path) -> tuple[int, ...]:
    if name not in inits:
        raise ModelError(f"{path}: no initializer {name!r}; not the architecture its manifest's kind describes")
    return tuple(inits[name].shape)


def _keypoint_module(manifest: Manifest, inits: dict, path: Path):
    from training.keypoint_model import KeypointClassifier, WithSoftmax

    fc1, fc2, fc3 = (_shape(inits, f"model.fc{i}.weight", path) for i in (1, 2, 3))
    dim, n = manifest.features.dim, len(manifest.labels)
    if fc1[1] != dim:
        raise ModelError(f"{path}: the first layer takes {fc1[1]} features but the manifest's feature spec gives {dim}")
    if fc3[0] != n:
        raise ModelError(f"{path}: {fc3[0]} outputs but the manifest lists {n} labels")
    dropout = float(((manifest.raw.get("training") or {}).get("config") or {}).get("dropout", 0.0))
    return WithSoftmax(KeypointClassifier(dim, n, (fc1[0], fc2[0]), dropout), embedding="embedding" in manifest.raw)


def _j2s_module(manifest: Manifest, inits: dict, path: Path):
    from training.j2s_model import J2S, J2SConfig, J2SExport

    try:
        config = J2SConfig.from_dict(manifest.raw["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path}: the manifest's 'model' entry does not describe a J2S network ({e})") from e
    if config.num_classes != len(manifest.labels):
        raise ModelError(f"{path}: the manifest's model has {config.num_classes} classes but lists "
                         f"{len(manifest.labels)} labels")
    size = int(manifest.raw["input"]["shape"][-1])
    if size != config.input_size:
        raise ModelError(f"{path}: input {size} px but backbone {config.backbone!r} takes {config.input_size} px")
    return J2SExport(J2S(config))


def _fold_missing_batchnorms(module, inits: dict) -> None:
    """Conv2d + BatchNorm2d pairs whose BatchNorm is not in the graph (folded by the exporter) become one
    Conv2d with a bias, followed by Identity: the eval-mode arithmetic the ONNX file holds."""
    from torch import nn

    for parent_name, parent in module.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        for i in range(len(parent) - 1):
            conv, bn = parent[i], parent[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            if f"{parent_name}.{i + 1}.weight" in inits:
                continue  # the graph keeps this BatchNorm as a node: leave it
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True)
            parent[i], parent[i + 1] = fused, nn.Identity()


def load_initializers(module, proto, path: Path) -> None:
    """Copy the graph's initializers into ``module`` (see the module docstring); strict about every tensor."""
    import torch
    from torch import nn

    inits = initializers(proto)
    graph = proto.graph
    state = module.state_dict()
    filled, used = {}, set()

    def put(key: str, init_name: str):
        want, got = tuple(state[key].shape), tuple(inits[init_name].shape)
        if want != got:
            raise ModelError(f"{path}: initializer {init_name!r} has shape {got} but {key} needs {want}")
        filled[key] = torch.from_numpy(np.array(inits[init_name], copy=True)).to(state[key].dtype)
        used.add(init_name)

    for name in inits:
        if name in state:
            put(name, name)
    for node in graph.node:
        if node.op_type == "Gemm" and len(node.input) > 1 and node.input[1] in used:
            if attribute(node, "transB", 0) != 1 or attribute(node, "transA", 0) != 0:
                raise ModelError(f"{path}: Gemm {node.name!r} is not in torch Linear layout (transA=0, transB=1)")
    convs = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    conv_nodes = [n for n in graph.node if n.op_type == "Conv"]
    if len(convs) != len(conv_nodes):
        raise ModelError(f"{path}: {len(conv_nodes)} Conv nodes but the architecture has {len(convs)} convolutions")
    for node, (mname, conv) in zip(conv_nodes, convs):
        strides, pads, group = attribute(node, "strides"), attribute(node, "pads"), attribute(node, "group", 1)
        if (strides and tuple(strides) != conv.stride) or (pads and tuple(pads[:2]) != conv.padding) \
                or group != conv.groups:
            raise ModelError(f"{path}: Conv node {node.name!r} (strides {strides}, pads {pads}, group {group}) does "
                             f"not match {mname} (stride {conv.stride}, padding {conv.padding})")
        for k, key in ((1, f"{mname}.weight"), (2, f"{mname}.bias")):
            if key in state and key not in filled:
                if len(node.input) <= k or node.input[k] not in inits:
                    raise ModelError(f"{path}: Conv node {node.name!r} has no constant input {k} for {key}")
                put(key, node.input[k])
    for node in graph.node:  # epsilons as exported (torch's default 1e-5 unless the model said otherwise)
        if node.op_type == "BatchNormalization" and node.input[1].endswith(".weight"):
            owner = node.input[1][: -len(".weight")]
            bn = dict(module.named_modules()).get(owner)
            if bn is not None:
                bn.eps = float(attribute(node, "epsilon", 1e-5))
    missing = [k for k in state if k not in filled and not k.endswith(UNUSED_BUFFERS)]
    unused = sorted(set(inits) - used)
    if missing:
        raise ModelError(f"{path}: the ONNX file holds no weights for {missing}")
    if unused:
        raise ModelError(f"{path}: initializers {unused} fit no parameter of the architecture")
    module.load_state_dict(filled, strict=False)


def rebuild(model: str | Path, verify: bool = True) -> RebuiltModel:
    """A shipped model name or model folder -> the PyTorch module that computes what its ONNX file computes."""
    folder = resolve_model(model)
    manifest = Manifest.load(folder)
    if manifest.kind == "sequence-reader":
        raise ModelError(f"{folder.name}: a sequence reader cannot be rebuilt in PyTorch from its ONNX weights (only "
                         "keypoint and J2S models can); export it from its training run ('fingerspell train sequence "
                         "--export DIR')")
    if manifest.kind == "image-classifier":  # BatchNorms folded into convolutions: the weights no longer map back
        raise ModelError(f"{folder.name}: only keypoint and J2S models can be rebuilt in PyTorch from their ONNX "
                         "weights; run image classifiers with --backend onnxruntime or tensorrt, and export them "
                         "from their training run ('fingerspell train classifier --export DIR')")
    path = folder / manifest.file
    if not path.is_file():
        raise ModelError(f"{path} is missing (named by {folder / 'manifest.json'})")
    if verify:
        verify_sha256(path, manifest.sha256)
    proto = load_onnx(path)
    inits = initializers(proto)
    module = _j2s_module(manifest, inits, path) if manifest.kind == "j2s" else _keypoint_module(manifest, inits, path)
    _fold_missing_batchnorms(module, inits)
    load_initializers(module, proto, path)
    module.eval()
    ins = [i.name for i in proto.graph.input if i.name not in inits]
    outs = [o.name for o in proto.graph.output]
    if ins != [manifest.input_name]:
        raise ModelError(f"{path}: inputs {ins} but the manifest says [{manifest.input_name!r}]")
    expected = (["keypoints", "probs"] if manifest.kind == "j2s" else
                [manifest.output_name] + ([manifest.raw["embedding"]["name"]] if "embedding" in manifest.raw else []))
    if outs != expected:
        raise ModelError(f"{path}: outputs {outs}, but the {manifest.kind} architecture gives {expected}")
    embedded = {p.key: p.value for p in proto.metadata_props}.get("labels")
    if embedded is not None and json.loads(embedded) != manifest.labels:  # same count, other order: as the runtime
        raise ModelError(f"{path}: the labels inside the ONNX file differ from the manifest's (file: "  # refuses it
                         f"{json.loads(embedded)}, manifest: {manifest.labels})")
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return RebuiltModel(module, manifest, path, ins, outs, opset)
