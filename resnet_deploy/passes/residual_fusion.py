"""Rewrite each residual ``Add -> Relu`` into one ``resnet_deploy::ResidualAddRelu`` node (the fused plugin).

The model also gets an ONNX local function of the same domain and name whose body is ``Add`` + ``Relu``, plus the
opset import for the domain. So the rewritten graph stays portable: ONNX Runtime runs it by inlining the function,
and a TensorRT 10.7+ ONNX parser uses our plugin when one is registered under that name and inlines the function
when not (seen with tensorrt_rtx, see shared/notes/tensorrt.md). TensorRT before 10.7 (JetPack 6 ships 10.3) prefers
the local function over a registered plugin, so graphs for it drop the function: :func:`for_tensorrt`.

Each node carries the creator's plugin fields ``scale_a``, ``scale_b``, ``scale_y`` (float attributes; 0 = float
I/O, no INT8 requantisation): onnx-tensorrt's ``loadFields`` warns once per missing field per node otherwise.

A pair is rewritten only when it is certain to be a residual join the plugin computes exactly: both Add inputs are
activations (not initializers/constants, possibly arriving through DequantizeLinear in a Q/DQ INT8 graph), their
shapes are known to be equal (the kernel does not broadcast), they are float32 or float16, and the Add output feeds
only that Relu. Q/DQ nodes around the pair are left alone.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ..errors import UserError
from . import PassReport
from .graph import GraphIndex, UniqueNames, copy_model, default_opset, drop_value_info, in_default_domain, rebuild_nodes

# Identity of the fused residual add + ReLU plugin. The ONNX node that TensorRT maps onto it has
# op_type == PLUGIN_NAME, domain == PLUGIN_NAMESPACE, and attributes plugin_namespace / plugin_version; the
# TensorRT registrations (resnet_deploy.backends.tensorrt.plugin) use the same three.
PLUGIN_NAME = "ResidualAddRelu"
PLUGIN_NAMESPACE = "resnet_deploy"
PLUGIN_VERSION = "1"

SCALE_FIELDS = ("scale_a", "scale_b", "scale_y")  # the plugin creator's fields (0.0 = float I/O)
FUNCTION_ATTRIBUTES = ("plugin_namespace", "plugin_version", "aot", *SCALE_FIELDS)
# onnx-tensorrt before 10.7 (ModelImporter.cpp, parseNode at the 10.1 tag): op importers, then the model's local
# functions, then the plugin fallback, so a local function of the node's name always wins over a registered plugin.
# From 10.7 a local function whose plugin is registered imports as the plugin (CHANGELOG 10.7: "prioritizes using
# plugins over local functions"); later parsers look any node with ``plugin_namespace`` up in the registry first.
PLUGIN_BEFORE_FUNCTION = (10, 7)
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16}
# Ops through which a constant stays a constant (weights arriving via Q/DQ or casts are not activations).
_PASS_THROUGH = {"DequantizeLinear", "QuantizeLinear", "Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze"}


def _function_proto(opset: int) -> onnx.FunctionProto:
    """The CPU reference of the plugin: Y = Relu(A + B)."""
    return helper.make_function(
        PLUGIN_NAMESPACE,
        PLUGIN_NAME,
        inputs=["A", "B"],
        outputs=["Y"],
        nodes=[helper.make_node("Add", ["A", "B"], ["S"]), helper.make_node("Relu", ["S"], ["Y"])],
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=list(FUNCTION_ATTRIBUTES),
    )


def _same_function(a: onnx.FunctionProto, b: onnx.FunctionProto) -> bool:
    def shape(f: onnx.FunctionProto) -> tuple[object, ...]:
        body = tuple((n.op_type, n.domain, tuple(n.input), tuple(n.output)) for n in f.node)
        return (tuple(f.input), tuple(f.output), body)

    return shape(a) == shape(b)


def _types_and_shapes(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Inferred types of every tensor (a copy is inferred; the model is untouched)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # an unusual graph the inferencer cannot handle: fall back to what the file declares
        inferred = model
    g = inferred.graph
    return {vi.name: vi.type for vi in (*g.input, *g.value_info, *g.output)}


def _same_shape(a: onnx.TypeProto | None, b: onnx.TypeProto | None) -> bool:
    if a is None or b is None or not a.tensor_type.HasField("shape") or not b.tensor_type.HasField("shape"):
        return False
    da, db = a.tensor_type.shape.dim, b.tensor_type.shape.dim
    if len(da) != len(db):
        return False
    for x, y in zip(da, db, strict=True):
        if x.HasField("dim_value") and y.HasField("dim_value"):
            if x.dim_value != y.dim_value:
                return False
        elif x.HasField("dim_param") and y.HasField("dim_param"):
            if x.dim_param != y.dim_param:
                return False
        else:
            return False  # unknown or mixed: equality not provable
    return True


def fuse_residual_add_relu(model: onnx.ModelProto, aot: bool | None = None) -> tuple[onnx.ModelProto, PassReport]:
    """Fuse every residual ``Add -> Relu`` into a ``ResidualAddRelu`` node; pure and idempotent.

    ``aot`` sets the node attribute TensorRT's parser reads to choose a ``tensorrt.plugin`` ahead-of-time
    implementation (True) or the Python one (False); None leaves it out (the only registered one is used).
    """
    model = copy_model(model)
    report = PassReport("residual_fusion")
    graph = model.graph
    opset = default_opset(model)
    if opset is None:
        raise UserError("the ONNX model imports no default-domain opset")
    if opset < 13:
        raise UserError(f"opset {opset} is too old for residual fusion (need >= 13)")

    index = GraphIndex(graph)
    producer = index.producer
    constants = index.initializers
    types = _types_and_shapes(model)

    def is_constant(name: str, depth: int = 0) -> bool:
        if name in constants:
            return True
        node = producer.get(name)
        if node is None or depth > 8:
            return False  # a graph input (an activation) or too deep to matter
        if node.op_type in ("Constant", "ConstantOfShape"):
            return True
        return node.op_type in _PASS_THROUGH and bool(node.input) and is_constant(node.input[0], depth + 1)

    fused: dict[int, onnx.NodeProto] = {}  # index of the Add -> replacement node
    dropped: set[int] = set()  # indices of the Relus folded into a replacement
    removed_outputs: set[str] = set()  # the Adds' outputs, which no longer exist
    position = {out: i for i, n in enumerate(graph.node) for out in n.output}
    for i, add in enumerate(graph.node):
        if add.op_type != "Add" or not in_default_domain(add) or len(add.input) != 2:
            continue
        out = add.output[0]
        users = index.readers(out)
        relu = users[0] if len(users) == 1 else None
        if relu is None or relu.op_type != "Relu" or not in_default_domain(relu):
            continue  # not an Add -> Relu pair at all: nothing to report
        name = add.name or out
        a, b = add.input
        why = None
        if out in index.outputs:
            why = "the Add output has other uses"
        elif is_constant(a) or is_constant(b):
            why = "an Add input is a constant (bias add, not a residual join)"
        elif not _same_shape(types.get(a), types.get(b)):
            why = "the Add inputs are not provably the same shape (the kernel does not broadcast)"
        elif (
            types[a].tensor_type.elem_type not in _FLOAT_TYPES
            or types[a].tensor_type.elem_type != types[b].tensor_type.elem_type
        ):
            why = "the Add inputs are not both float32 or both float16"
        if why:
            report.notes.append(f"left {name}: {why}")
            report.count("skipped")
            continue
        node = helper.make_node(PLUGIN_NAME, [a, b], [relu.output[0]], name=f"{name}_{PLUGIN_NAME}")
        node.domain = PLUGIN_NAMESPACE
        node.attribute.append(helper.make_attribute("plugin_namespace", PLUGIN_NAMESPACE))
        node.attribute.append(helper.make_attribute("plugin_version", PLUGIN_VERSION))
        for field in SCALE_FIELDS:
            node.attribute.append(helper.make_attribute(field, 0.0))
        if aot is not None:
            node.attribute.append(helper.make_attribute("aot", int(aot)))
        fused[i] = node
        dropped.add(position[relu.output[0]])
        removed_outputs.add(out)
        report.count("fused")
        if any(producer.get(x) is not None and producer[x].op_type == "DequantizeLinear" for x in (a, b)):
            report.count("fused_after_dequantize")

    if fused:
        rebuild_nodes(graph, [fused.get(i, n) for i, n in enumerate(graph.node) if i not in dropped])
        drop_value_info(graph, removed_outputs)
    if any(n.domain == PLUGIN_NAMESPACE and n.op_type == PLUGIN_NAME for n in graph.node):
        _ensure_function(model, opset, report)
    return model, report


def _ensure_function(model: onnx.ModelProto, opset: int, report: PassReport) -> None:
    """Add the local function and the domain's opset import unless present (a second run adds nothing)."""
    ours = _function_proto(opset)
    existing = [f for f in model.functions if f.domain == PLUGIN_NAMESPACE and f.name == PLUGIN_NAME]
    if existing:
        if not _same_function(existing[0], ours):
            raise UserError(f"the model already defines a different function {PLUGIN_NAMESPACE}::{PLUGIN_NAME}")
    else:
        model.functions.append(ours)
        report.count("functions_added")
    imports = {imp.domain: imp.version for imp in model.opset_import}
    if PLUGIN_NAMESPACE not in imports:
        model.opset_import.append(helper.make_opsetid(PLUGIN_NAMESPACE, 1))
    elif imports[PLUGIN_NAMESPACE] != 1:
        raise UserError(f"the model imports domain {PLUGIN_NAMESPACE} at version {imports[PLUGIN_NAMESPACE]}, not 1")
    if model.ir_version < 8:
        model.ir_version = 8  # model-local functions need IR version 8


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def for_tensorrt(model: onnx.ModelProto, tensorrt_version: str, aot: bool | None = None) -> onnx.ModelProto:
    """The fused graph in the form the ONNX parser of TensorRT ``tensorrt_version`` imports as the plugin.

    Before 10.7 the local function is removed (it would win over the plugin; the graph then no longer runs on
    ONNX Runtime, which is why this is applied only to what TensorRT parses). ``aot`` sets the node attribute
    onnx-tensorrt reads to pick a ``tensorrt.plugin`` ahead-of-time (True) or JIT (False) implementation; None
    leaves the nodes as they are. Pure; a graph without plugin nodes is returned unchanged.
    """
    if count_fused(model) == 0:
        return model
    model = copy_model(model)
    if aot is not None:
        for node in model.graph.node:
            if node.domain == PLUGIN_NAMESPACE and node.op_type == PLUGIN_NAME:
                kept = [a for a in node.attribute if a.name != "aot"]
                del node.attribute[:]
                node.attribute.extend([*kept, helper.make_attribute("aot", int(aot))])
    if _version(tensorrt_version) < PLUGIN_BEFORE_FUNCTION:
        keep = [f for f in model.functions if not (f.domain == PLUGIN_NAMESPACE and f.name == PLUGIN_NAME)]
        del model.functions[:]
        model.functions.extend(keep)
    return model


def count_fused(model: onnx.ModelProto) -> int:
    """Number of ``ResidualAddRelu`` plugin nodes in ``model``."""
    return sum(1 for n in model.graph.node if n.domain == PLUGIN_NAMESPACE and n.op_type == PLUGIN_NAME)


def unfuse_residual_add_relu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """Inverse of :func:`fuse_residual_add_relu`: each plugin node back to ``Add -> Relu``; the function and the
    domain's opset import are removed. Pure and idempotent."""
    model = copy_model(model)
    report = PassReport("residual_unfusion")
    graph = model.graph
    names = UniqueNames.of(graph)
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.domain != PLUGIN_NAMESPACE or node.op_type != PLUGIN_NAME:
            new_nodes.append(node)
            continue
        base = node.name.removesuffix(f"_{PLUGIN_NAME}") or node.output[0]
        mid = names.fresh(f"{base}_sum")
        new_nodes.append(helper.make_node("Add", list(node.input), [mid], name=base))
        new_nodes.append(helper.make_node("Relu", [mid], list(node.output), name=f"{base}_relu"))
        report.count("unfused")
    rebuild_nodes(graph, new_nodes)
    keep_functions = [f for f in model.functions if not (f.domain == PLUGIN_NAMESPACE and f.name == PLUGIN_NAME)]
    del model.functions[:]
    model.functions.extend(keep_functions)
    if not any(n.domain == PLUGIN_NAMESPACE for n in graph.node) and not any(
        f.domain == PLUGIN_NAMESPACE for f in model.functions
    ):
        keep_imports = [imp for imp in model.opset_import if imp.domain != PLUGIN_NAMESPACE]
        del model.opset_import[:]
        model.opset_import.extend(keep_imports)
    return model, report
