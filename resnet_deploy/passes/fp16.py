"""FP16: convert a float32 graph to float16 weights and activations, for strongly typed TensorRT and ONNX Runtime.

TensorRT 11 has no FP16 builder flag: the precision is the ONNX's. Every float32 tensor becomes float16; with
``io_dtype="fp32"`` the graph keeps its float32 input and outputs and Casts sit at the edges. Initializer values
beyond float16's range (folded BatchNorm biases can grow large) are clamped to +-65504 rather than becoming inf,
and counted. Ops not known to be safe in float16 stay float32 between Casts, and are listed in the report.

Written by hand rather than with onnxconverter-common (not a dependency): ResNet graphs use a small set of ops, and
the rules here are short enough to test completely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import UserError
from . import PassReport
from .graph import UniqueNames, copy_model, in_default_domain, rebuild_nodes

FP16_MAX = float(np.finfo(np.float16).max)  # 65504

# Ops whose float16 implementations are exact enough for inference (accumulation happens in fp32 on TensorRT and
# in ORT's fallback Casts). Anything else runs in float32 between Casts.
SAFE_FP16_OPS = frozenset(
    {
        "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Dropout",
        "Flatten", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Identity", "MatMul", "Max", "MaxPool", "Min",
        "Mul", "Pad", "Relu", "LeakyRelu", "Reshape", "Shape", "Sigmoid", "Slice", "Squeeze", "Sub", "Transpose",
        "Unsqueeze", "Gather", "Split", "Resize", "Upsample", "ConstantOfShape", "Neg", "Abs", "HardSigmoid",
        "HardSwish", "Tanh", "Softmax", "Expand", "Tile", "ReduceMean",
    }
)  # fmt: skip
# (op_type, input index) slots that the ONNX spec requires to stay float32 whatever the data type.
_FP32_SLOTS = frozenset({("Resize", 1), ("Resize", 2), ("Upsample", 1)})


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 tensor in the graph (after shape inference)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is best-effort here: unknown types are treated as non-float below
        inferred = model
    g = inferred.graph
    floats = {v.name for v in [*g.input, *g.output, *g.value_info] if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT}
    return floats


def _to_fp16_array(arr: np.ndarray, report: PassReport | None = None, where: str = "") -> np.ndarray:
    """``arr`` in float16, clamped to +-65504; clamped and flushed values are counted in ``report`` if given."""
    if report is None:
        return np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16)
    finite = np.isfinite(arr)
    over = finite & (np.abs(arr) > FP16_MAX)
    if over.any():
        report.count("values_clamped", int(over.sum()))
        report.notes.append(f"{where}: {int(over.sum())} value(s) beyond +-{FP16_MAX:g} clamped")
    tiny = finite & (arr != 0) & (np.abs(arr) < float(np.finfo(np.float16).smallest_subnormal) / 2)
    if tiny.any():
        report.count("values_flushed_to_zero", int(tiny.sum()))
    return np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16)


def to_fp16(
    model: onnx.ModelProto, io_dtype: str = "fp32", keep_fp32_ops: frozenset[str] | None = None
) -> tuple[onnx.ModelProto, PassReport]:
    """Return a float16 copy of ``model``.

    ``io_dtype`` "fp32" keeps float32 graph inputs/outputs (Casts at the edges); "fp16" makes them float16.
    ``keep_fp32_ops`` adds op types to run in float32 beside those outside :data:`SAFE_FP16_OPS`.
    """
    if io_dtype not in ("fp32", "fp16"):
        raise UserError(f"io dtype must be fp32 or fp16, not '{io_dtype}'")
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        raise UserError("the FP16 pass takes a float32 graph; this one is already quantized (Q/DQ nodes)")
    report = PassReport("fp16")
    floats = _float_tensors(model)
    model = copy_model(model)
    g = model.graph
    if not floats:
        report.notes.append("no float32 tensors: nothing to convert")
        return model, report

    keep_ops = set(keep_fp32_ops or ())
    kept = [n for n in g.node if n.op_type in keep_ops or (n.op_type not in SAFE_FP16_OPS and in_default_domain(n))]
    # Custom-domain nodes (e.g. local functions) are converted with their inputs; their bodies are typed generically.
    kept_ids = {id(n) for n in kept}

    # Initializers: convert unless every consumer needs float32 there.
    slots: dict[str, list[bool]] = {}
    for n in g.node:
        for i, name in enumerate(n.input):
            if name:
                slots.setdefault(name, []).append((n.op_type, i) in _FP32_SLOTS or id(n) in kept_ids)
    for idx, t in enumerate(g.initializer):
        if t.data_type != TensorProto.FLOAT:
            continue
        if slots.get(t.name) and all(slots[t.name]):
            floats.discard(t.name)
            continue
        arr = numpy_helper.to_array(t)
        g.initializer[idx].CopyFrom(numpy_helper.from_array(_to_fp16_array(arr, report, t.name), t.name))
        report.count("initializers_converted")

    for n in g.node:
        if n.op_type == "Constant" and id(n) not in kept_ids:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    arr = _to_fp16_array(numpy_helper.to_array(a.t), report, n.output[0])
                    a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
                    report.count("constants_converted")
                elif a.name == "value_float":
                    raise UserError(f"Constant {n.name or n.output[0]}: value_float is not supported by the FP16 pass")
        elif n.op_type == "Cast" and id(n) not in kept_ids:
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
                    report.count("casts_retargeted")
        elif n.op_type == "ConstantOfShape":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))

    new_nodes: list[onnx.NodeProto] = []
    fresh = UniqueNames.of(g).fresh
    initializers = {t.name for t in g.initializer}

    # Graph inputs: float16 inside, Cast from float32 at the edge (or declared float16).
    input_map: dict[str, str] = {}
    for inp in g.input:
        if inp.name not in floats or inp.name in initializers:
            continue
        if io_dtype == "fp16":
            inp.type.tensor_type.elem_type = TensorProto.FLOAT16
        else:
            cast_out = fresh(f"{inp.name}_fp16")
            new_nodes.append(
                helper.make_node(
                    "Cast", [inp.name], [cast_out], name=fresh(f"{inp.name}_to_fp16"), to=TensorProto.FLOAT16
                )
            )
            input_map[inp.name] = cast_out
            report.count("edge_casts")

    for n in g.node:
        for i, name in enumerate(n.input):
            if name in input_map:
                n.input[i] = input_map[name]

    for n in g.node:
        if id(n) not in kept_ids:
            new_nodes.append(n)
            continue
        report.count("nodes_kept_fp32")
        report.notes.append(f"{n.op_type} {n.name or n.output[0]} kept in float32")
        for i, name in enumerate(n.input):
            if name in floats and not (name in initializers and all(slots.get(name, [False]))):
                c = fresh(f"{name}_fp32")
                new_nodes.append(helper.make_node("Cast", [name], [c], name=fresh(f"{c}_cast"), to=TensorProto.FLOAT))
                n.input[i] = c
        new_nodes.append(n)
        for i, name in enumerate(n.output):
            if name in floats:
                c = fresh(f"{name}_fp32")
                n.output[i] = c
                new_nodes.append(
                    helper.make_node("Cast", [c], [name], name=fresh(f"{name}_cast"), to=TensorProto.FLOAT16)
                )

    # Graph outputs: Cast back to float32 at the edge (or declared float16).
    for out in g.output:
        if out.name not in floats:
            continue
        if io_dtype == "fp16":
            out.type.tensor_type.elem_type = TensorProto.FLOAT16
            continue
        inner = fresh(f"{out.name}_fp16")
        for n in new_nodes:
            for i, name in enumerate(n.output):
                if name == out.name:
                    n.output[i] = inner
            for i, name in enumerate(n.input):
                if name == out.name:
                    n.input[i] = inner
        new_nodes.append(
            helper.make_node("Cast", [inner], [out.name], name=fresh(f"{out.name}_to_fp32"), to=TensorProto.FLOAT)
        )
        report.count("edge_casts")

    rebuild_nodes(g, new_nodes)
    del g.value_info[:]  # every float32 annotation is now stale; ONNX Runtime and TensorRT re-infer
    onnx.checker.check_model(model)
    return model, report


@dataclass
class Float16Layer:
    """What running one layer of a float32 graph in float16 adds (see :func:`layer_in_fp16`)."""

    #: float16 copies of the layer's constant inputs (weight, bias), clamped to +-65504
    initializers: list[onnx.TensorProto]
    #: float32 -> float16 of the layer's input, to emit just before the layer
    cast_in: onnx.NodeProto
    #: float16 -> float32 of the layer's output, to emit right after the layer
    cast_out: onnx.NodeProto


def layer_in_fp16(node: onnx.NodeProto, initializers: Mapping[str, onnx.TensorProto]) -> Float16Layer:
    """Rewire ``node`` (a float32 Conv/Gemm: activation input 0, constant inputs 1 and 2), in place, to run in
    float16 inside a float32 graph: it reads float16 copies of its weight and bias and a Cast of its input, and
    writes a tensor that a Cast turns back into its old float32 output. A strongly typed TensorRT engine then runs
    the layer in FP16 (how mixed precision keeps a layer out of int8). The caller emits the returned pieces."""
    new: list[onnx.TensorProto] = []
    for k in (1, 2):
        if k < len(node.input) and node.input[k] in initializers:
            name = f"{node.name}/input{k}_fp16"
            values = _to_fp16_array(numpy_helper.to_array(initializers[node.input[k]]))
            new.append(numpy_helper.from_array(values, name))
            node.input[k] = name
    x16, y16, y = f"{node.name}/input_fp16", f"{node.name}/output_fp16", node.output[0]
    cast_in = helper.make_node("Cast", [node.input[0]], [x16], name=f"{node.name}/Cast_to_fp16", to=TensorProto.FLOAT16)
    node.input[0] = x16
    node.output[0] = y16
    cast_out = helper.make_node("Cast", [y16], [y], name=f"{node.name}/Cast_to_fp32", to=TensorProto.FLOAT)
    return Float16Layer(new, cast_in, cast_out)
