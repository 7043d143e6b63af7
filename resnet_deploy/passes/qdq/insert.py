"""The Q/DQ pass: rewrite a float32 graph into explicit int8 by a :class:`~.plan.QuantPlan` and calibrated ranges.

Per plan: each weight becomes an int8 initializer read through a per-channel ``DequantizeLinear``; each activation
tensor gets one ``QuantizeLinear`` and one ``DequantizeLinear`` per consumer (the form ONNX Runtime's QDQ fusions
expect; TensorRT accepts it); biases the plan names become int32 ``DequantizeLinear``; Relus whose output the plan
quantizes from their input are dropped. Names derive from the tensor or node they quantize, so the same plan and
ranges always give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import UserError
from .. import PassReport
from ..fp16 import layer_in_fp16
from ..graph import copy_model, default_opset, drop_unused_initializers, drop_value_info, rebuild_nodes
from .encoding import quantize_bias, quantize_weight
from .plan import ActivationSite, QuantPlan

#: dtypes of the layers kept out of int8
KEEP_DTYPES = ("fp32", "fp16")
MIN_OPSET = 13  # per-channel DequantizeLinear (the axis attribute)


@dataclass
class _Splice:
    """The nodes and initializers a rewrite adds, and where the nodes go: just before a node, or right after the
    node that produces a tensor."""

    initializers: list[onnx.TensorProto] = field(default_factory=list)
    before: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)  # node name -> nodes
    after: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)  # tensor -> nodes

    def emit_before(self, node: str, new: onnx.NodeProto) -> None:
        self.before.setdefault(node, []).append(new)

    def emit_after(self, tensor: str, new: onnx.NodeProto) -> None:
        self.after.setdefault(tensor, []).append(new)

    def constant_dq(self, base: str, suffix: str, q: np.ndarray, scale: np.ndarray, axis: int, reader: str) -> str:
        """Per-channel ``DequantizeLinear`` of the constant ``q`` (zero point 0, of q's type), emitted before the
        node ``reader``; returns the dequantized tensor's name."""
        names = [f"{base}_{suffix}", f"{base}_scale", f"{base}_zero_point"]
        self.initializers += [
            numpy_helper.from_array(q, names[0]),
            numpy_helper.from_array(scale, names[1]),
            numpy_helper.from_array(np.zeros(scale.shape, q.dtype), names[2]),
        ]
        out = f"{base}_dequantized"
        self.emit_before(
            reader, helper.make_node("DequantizeLinear", names, [out], name=f"{base}_DequantizeLinear", axis=axis)
        )
        return out


def insert_qdq(
    model: onnx.ModelProto,
    plan: QuantPlan,
    amax: dict[str, float],
    keep_float: set[str] | frozenset[str] = frozenset(),
    keep_dtype: str = "fp32",
) -> tuple[onnx.ModelProto, PassReport]:
    """Insert Q/DQ per ``plan`` with activation ranges ``amax`` (tensor -> amax).

    Layers named in ``keep_float`` stay in float (mixed precision): float32 weights and an unquantized input, or
    with ``keep_dtype`` "fp16" float16 weights between two Casts (a strongly typed TensorRT engine then runs them
    in FP16). Residual sites fused with a kept layer go too. Where a kept layer's output stays quantized (its int8
    neighbours read it), a Relu the plan folded into a Q comes back for the kept readers of its output.
    """
    if keep_dtype not in KEEP_DTYPES:
        raise UserError(f"unknown dtype '{keep_dtype}' for layers kept out of int8 (choose fp32 or fp16)")
    opset = default_opset(model) or 0
    if opset < MIN_OPSET:
        raise UserError(f"INT8 needs opset >= {MIN_OPSET} (per-channel DequantizeLinear); the model has opset {opset}")
    unknown = keep_float - set(plan.layers)
    if unknown:
        raise UserError(f"cannot keep unknown layer(s) in float: {', '.join(sorted(unknown))}")
    model = copy_model(model)
    g = model.graph
    report = PassReport("int8_qdq")
    report.notes.append(f"placement: {plan.placement}")
    nodes = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    splice = _Splice()

    weight_scales: dict[str, np.ndarray] = {}
    for site in plan.weights:
        if site.node in keep_float:
            continue
        q, scale = quantize_weight(numpy_helper.to_array(inits[site.weight]), site.axis, plan.weight_qmax)
        weight_scales[site.node] = scale
        nodes[site.node].input[1] = splice.constant_dq(f"{site.node}/weight", "int8", q, scale, site.axis, site.node)
        report.count("weight_qdq")

    by_tensor: dict[str, list[ActivationSite]] = {}
    read_float: set[str] = set()  # tensors a kept layer reads unquantized
    for s in plan.activations:
        # a kept layer reads its input in float; a residual site serves only its conv's int8 fusion: it goes too
        if s.node in keep_float or s.fused_with in keep_float:
            read_float.add(s.tensor)
            continue
        by_tensor.setdefault(s.tensor, []).append(s)
    input_scale: dict[tuple[str, int], np.ndarray] = {}
    for tensor, sites in by_tensor.items():
        scale, zp = plan.encoding(tensor, amax)
        scale_name, zp_name = f"{tensor}_scale", f"{tensor}_zero_point"
        splice.initializers += [numpy_helper.from_array(scale, scale_name), numpy_helper.from_array(zp, zp_name)]
        source = plan.relu_inputs.get(tensor, tensor)
        qname = f"{tensor}_quantized"
        quantize = helper.make_node(
            "QuantizeLinear", [source, scale_name, zp_name], [qname], name=f"{tensor}_QuantizeLinear"
        )
        splice.emit_after(source, quantize)
        report.count("activation_q")
        for k, s in enumerate(sites):
            out = f"{tensor}_dequantized_{k}"
            dequantize = helper.make_node(
                "DequantizeLinear", [qname, scale_name, zp_name], [out], name=f"{out}_DequantizeLinear"
            )
            nodes[s.node].input[s.index] = out
            splice.emit_before(s.node, dequantize)
            input_scale[(s.node, s.index)] = scale
            report.count("residual_qdq" if s.kind == "residual" else "activation_dq")

    for site in plan.weights:
        if site.bias is None or site.node not in weight_scales or (site.node, 0) not in input_scale:
            continue
        bias = numpy_helper.to_array(inits[site.bias])
        q, scale = quantize_bias(bias, input_scale[(site.node, 0)], weight_scales[site.node])
        nodes[site.node].input[2] = splice.constant_dq(f"{site.node}/bias", "int32", q, scale, 0, site.node)
        report.count("bias_int32")

    if keep_dtype == "fp16":
        for name in sorted(keep_float):
            layer = layer_in_fp16(nodes[name], inits)
            splice.initializers += layer.initializers
            splice.emit_before(name, layer.cast_in)
            # the cast back comes first: what read the float32 output (its Q) now reads the Cast's
            fp32_output, fp16_output = layer.cast_out.output[0], layer.cast_out.input[0]
            splice.after[fp16_output] = [layer.cast_out, *splice.after.pop(fp32_output, [])]
            report.count("layers_kept_fp16")

    # a Relu stays where a kept layer reads its output in float (its producer then runs unfused on ONNX Runtime)
    folded = {t for t in by_tensor if t in plan.relu_inputs and t not in read_float}
    rebuild_nodes(g, _spliced_nodes(g, splice, folded, report))
    g.initializer.extend(splice.initializers)
    drop_unused_initializers(g)
    drop_value_info(g, folded)
    if keep_float:
        report.count("layers_kept_float", len(keep_float))
        report.notes.append("kept in float: " + ", ".join(sorted(keep_float)))
    onnx.checker.check_model(model)
    return model, report


def _spliced_nodes(g: onnx.GraphProto, splice: _Splice, folded: set[str], report: PassReport) -> list[onnx.NodeProto]:
    """``g``'s nodes with ``splice``'s in place, in topological order, less the Relus whose output is in
    ``folded``."""
    after = dict(splice.after)
    ordered: list[onnx.NodeProto] = []
    for inp in g.input:
        ordered += after.pop(inp.name, [])
    for n in g.node:
        ordered += splice.before.get(n.name, [])
        if n.op_type == "Relu" and n.output[0] in folded:
            report.count("relu_folded")  # the uint8 Q with zero point 0 clamps at 0 itself
        else:
            ordered.append(n)
        for out in n.output:
            ordered += after.pop(out, [])
    if after:
        raise UserError(f"cannot place Q/DQ: tensor(s) not produced in the graph: {', '.join(after)}")
    return ordered
