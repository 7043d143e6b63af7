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

    def constant_dq(self, base: str, suffix: str, values: np.ndarray, scale: np.ndarray, axis: int, reader: str) -> str:
        """Per-channel ``DequantizeLinear`` of the integer constant ``values`` (zero point 0, of their type),
        emitted before the node ``reader``; returns the dequantized tensor's name."""
        names = [f"{base}_{suffix}", f"{base}_scale", f"{base}_zero_point"]
        self.initializers += [
            numpy_helper.from_array(values, names[0]),
            numpy_helper.from_array(scale, names[1]),
            numpy_helper.from_array(np.zeros(scale.shape, values.dtype), names[2]),
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
    graph = model.graph
    report = PassReport("int8_qdq")
    report.notes.append(f"placement: {plan.placement}")
    rewrite = _Rewrite(plan, graph, report)

    # the order of these steps is the order of the new initializers and of the nodes emitted before each node
    weight_scales = rewrite.quantize_weights(keep_float)
    by_tensor: dict[str, list[ActivationSite]] = {}
    read_float: set[str] = set()  # tensors a kept layer reads unquantized
    for site in plan.activations:
        # a kept layer reads its input in float; a residual site serves only its conv's int8 fusion: it goes too
        if site.node in keep_float or site.fused_with in keep_float:
            read_float.add(site.tensor)
            continue
        by_tensor.setdefault(site.tensor, []).append(site)
    input_scales = rewrite.quantize_activations(by_tensor, amax)
    rewrite.quantize_biases(weight_scales, input_scales)
    if keep_dtype == "fp16":
        rewrite.keep_in_fp16(sorted(keep_float))

    # a Relu stays where a kept layer reads its output in float (its producer then runs unfused on ONNX Runtime)
    folded = {t for t in by_tensor if t in plan.relu_inputs and t not in read_float}
    rebuild_nodes(graph, _spliced_nodes(graph, rewrite.splice, folded, report))
    graph.initializer.extend(rewrite.splice.initializers)
    drop_unused_initializers(graph)
    drop_value_info(graph, folded)
    if keep_float:
        report.count("layers_kept_float", len(keep_float))
        report.notes.append("kept in float: " + ", ".join(sorted(keep_float)))
    onnx.checker.check_model(model)
    return model, report


class _Rewrite:
    """The steps of :func:`insert_qdq` on one copy of the graph; each rewires nodes in place and adds to
    ``splice``."""

    def __init__(self, plan: QuantPlan, graph: onnx.GraphProto, report: PassReport) -> None:
        self.plan = plan
        self.report = report
        self.nodes = {node.name: node for node in graph.node}
        self.initializers = {t.name: t for t in graph.initializer}
        self.splice = _Splice()

    def quantize_weights(self, keep_float: set[str] | frozenset[str]) -> dict[str, np.ndarray]:
        """int8 weights behind per-channel DQs for every layer not kept; returns layer -> weight scales."""
        scales: dict[str, np.ndarray] = {}
        for site in self.plan.weights:
            if site.node in keep_float:
                continue
            weight = numpy_helper.to_array(self.initializers[site.weight])
            int8_weight, scale = quantize_weight(weight, site.axis, self.plan.weight_qmax)
            scales[site.node] = scale
            self.nodes[site.node].input[1] = self.splice.constant_dq(
                f"{site.node}/weight", "int8", int8_weight, scale, site.axis, site.node
            )
            self.report.count("weight_qdq")
        return scales

    def quantize_activations(
        self, by_tensor: dict[str, list[ActivationSite]], amax: dict[str, float]
    ) -> dict[tuple[str, int], np.ndarray]:
        """One Q per tensor, right after it is produced (after its Relu's input when the Relu is folded), and one
        DQ per reading site; returns (node, input index) -> the scale that input is read with."""
        input_scales: dict[tuple[str, int], np.ndarray] = {}
        for tensor, sites in by_tensor.items():
            scale, zero_point = self.plan.encoding(tensor, amax)
            scale_name, zp_name = f"{tensor}_scale", f"{tensor}_zero_point"
            self.splice.initializers += [
                numpy_helper.from_array(scale, scale_name),
                numpy_helper.from_array(zero_point, zp_name),
            ]
            source = self.plan.relu_inputs.get(tensor, tensor)
            quantized_name = f"{tensor}_quantized"
            quantize = helper.make_node(
                "QuantizeLinear", [source, scale_name, zp_name], [quantized_name], name=f"{tensor}_QuantizeLinear"
            )
            self.splice.emit_after(source, quantize)
            self.report.count("activation_q")
            for k, site in enumerate(sites):
                out = f"{tensor}_dequantized_{k}"
                dequantize = helper.make_node(
                    "DequantizeLinear", [quantized_name, scale_name, zp_name], [out], name=f"{out}_DequantizeLinear"
                )
                self.nodes[site.node].input[site.index] = out
                self.splice.emit_before(site.node, dequantize)
                input_scales[(site.node, site.index)] = scale
                self.report.count("residual_qdq" if site.kind == "residual" else "activation_dq")
        return input_scales

    def quantize_biases(
        self, weight_scales: dict[str, np.ndarray], input_scales: dict[tuple[str, int], np.ndarray]
    ) -> None:
        """int32 biases behind DQs where the plan asks for them and both the weight and the input are int8."""
        for site in self.plan.weights:
            if site.bias is None or site.node not in weight_scales or (site.node, 0) not in input_scales:
                continue
            bias = numpy_helper.to_array(self.initializers[site.bias])
            int32_bias, scale = quantize_bias(bias, input_scales[(site.node, 0)], weight_scales[site.node], site.node)
            self.nodes[site.node].input[2] = self.splice.constant_dq(
                f"{site.node}/bias", "int32", int32_bias, scale, 0, site.node
            )
            self.report.count("bias_int32")

    def keep_in_fp16(self, layers: list[str]) -> None:
        """Run the kept ``layers`` in float16 between Casts (:func:`resnet_deploy.passes.fp16.layer_in_fp16`)."""
        for name in layers:
            layer = layer_in_fp16(self.nodes[name], self.initializers)
            self.splice.initializers += layer.initializers
            self.splice.emit_before(name, layer.cast_in)
            # the cast back comes first: what read the float32 output (its Q) now reads the Cast's
            fp32_output, fp16_output = layer.cast_out.output[0], layer.cast_out.input[0]
            self.splice.after[fp16_output] = [layer.cast_out, *self.splice.after.pop(fp32_output, [])]
            self.report.count("layers_kept_fp16")


def _spliced_nodes(
    graph: onnx.GraphProto, splice: _Splice, folded: set[str], report: PassReport
) -> list[onnx.NodeProto]:
    """``graph``'s nodes with ``splice``'s in place, in topological order, less the Relus whose output is in
    ``folded``."""
    after = dict(splice.after)
    ordered: list[onnx.NodeProto] = []
    for graph_input in graph.input:
        ordered += after.pop(graph_input.name, [])
    for node in graph.node:
        ordered += splice.before.get(node.name, [])
        if node.op_type == "Relu" and node.output[0] in folded:
            report.count("relu_folded")  # the uint8 Q with zero point 0 clamps at 0 itself
        else:
            ordered.append(node)
        for out in node.output:
            ordered += after.pop(out, [])
    if after:
        raise UserError(f"cannot place Q/DQ: tensor(s) not produced in the graph: {', '.join(after)}")
    return ordered
