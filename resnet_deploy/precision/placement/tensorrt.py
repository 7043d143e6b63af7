"""The ``tensorrt`` placement: NVIDIA's explicit-quantization rules for ResNets (``shared/notes/tensorrt.md``), for
engines.

* symmetric int8, zero point 0;
* each Conv/Gemm weight: int8 initializer -> per-channel ``DequantizeLinear`` (axis = output channels);
* each Conv/Gemm activation input: per-tensor ``QuantizeLinear -> DequantizeLinear``;
* each residual Add: Q/DQ on the identity (shortcut) input only, so TensorRT fuses conv + bias + add + relu of the
  other input into one int8 kernel;
* nothing on biases (TensorRT's parser rejects an int32 bias DQ) and nothing on Conv outputs.

Run through ONNX Runtime, this placement stays float convs between Q/DQ pairs (slower than FP32 on a CPU): the
``onnxruntime`` placement is the one for that backend.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from ...passes.qdq import ActivationSite, QuantPlan, WeightSite
from .common import GraphFacts, is_residual_add, quantizable_layer

#: a rule adds the sites of one node to the plan
Rule = Callable[[onnx.NodeProto, GraphFacts, QuantPlan], None]


def _layer(node: onnx.NodeProto, facts: GraphFacts, plan: QuantPlan) -> None:
    """Conv/Gemm: per-channel weight, per-tensor input."""
    layer = quantizable_layer(node, facts.initializers)
    if layer is None:
        return
    plan.layers.append(node.name)
    plan.weights.append(WeightSite(node.name, node.input[1], layer.axis))
    plan.activations.append(ActivationSite(node.input[0], node.name, 0, layer.kind))


def _residual_add(node: onnx.NodeProto, facts: GraphFacts, plan: QuantPlan) -> None:
    """Residual Add: the identity input only, the other input being the Conv TensorRT fuses the Add into. With a
    Conv on both sides (a downsample shortcut) the identity is the shallower one; with none, nothing."""
    if not is_residual_add(node, facts.initializers):
        return
    left, right = node.input
    left_producer, right_producer = facts.index.producer.get(left), facts.index.producer.get(right)
    conv_left = left_producer is not None and left_producer.op_type == "Conv"
    conv_right = right_producer is not None and right_producer.op_type == "Conv"
    if conv_left and conv_right:
        identity = 1 if facts.depth.get(left, 0) >= facts.depth.get(right, 0) else 0
    elif conv_left:
        identity = 1
    elif conv_right:
        identity = 0
    else:
        plan.skipped_adds.append(node.name)
        return
    fused = right_producer if identity == 0 else left_producer
    assert fused is not None
    plan.activations.append(ActivationSite(node.input[identity], node.name, identity, "residual", fused.name))


RULES: dict[str, Rule] = {"Conv": _layer, "Gemm": _layer, "Add": _residual_add}


def plan_tensorrt(model: onnx.ModelProto) -> QuantPlan:
    """The TensorRT plan of a named float32 graph."""
    facts = GraphFacts.of(model)
    plan = QuantPlan(placement="tensorrt", activation_dtype="int8")
    for node in model.graph.node:
        rule = RULES.get(node.op_type)
        if rule is not None:
            rule(node, facts, plan)
    return plan
