"""The ``onnxruntime`` placement: the node groups ONNX Runtime's QDQ transformer turns into ``QLinearConv``/
``QLinearAdd``/``QGemm``/``QLinearGlobalAveragePool``, for ``--backend onnxruntime``, so it runs int8 end to end:

* weights symmetric per-channel on [-64, 64] (7 bits: see :func:`plan_onnxruntime`); biases as int32
  ``DequantizeLinear`` with scale ``input scale x weight scale`` (ONNX Runtime fuses a conv only with an int32 bias);
* every activation between the first Conv and the Gemm quantized, Conv and Add outputs included, as uint8
  (the type ONNX Runtime's x86 int8 kernels take): zero point 0 and scale ``amax/255`` for tensors that cannot be
  negative (after a Relu), zero point 128 and scale ``amax/127`` for the others (symmetric in uint8);
* each ``Relu`` after a Conv/Add is removed: the uint8 ``QuantizeLinear`` with zero point 0 clamps at 0 exactly
  as the Relu did, and the Conv/Add can then fuse with its output Q;
* range-preserving ops (MaxPool, Slice, zero Pad, Flatten, Reshape, ...) reuse their input's scale, so ONNX Runtime
  runs them on uint8 directly;
* the logits stay float.

The graph does not parse in TensorRT (TensorRT has no uint8 Q/DQ or int32 bias DQ).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from ...passes.graph import attribute, in_default_domain
from ...passes.qdq import ActivationSite, QuantPlan, WeightSite
from .common import GraphFacts, is_residual_add, quantizable_layer

# ops whose output values are a subset of their input's, so one scale serves both (ONNX Runtime drops their Q/DQ)
RANGE_PRESERVING = ("MaxPool", "Slice", "Pad", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze")
# ops that keep a non-negative input non-negative
SIGN_PRESERVING = (*RANGE_PRESERVING, "GlobalAveragePool", "AveragePool", "Relu")
POOLING = ("MaxPool", "GlobalAveragePool", "AveragePool")
# 7-bit weights: ONNX Runtime's uint8 x int8 kernels on x86 without VNNI (AVX2, AVX-512F) add pairs of products in
# int16 (vpmaddubsw), which saturates when both are near 255 x 127. Measured on the bundled fmnist_resnet50_small
# (AVX2 EPYC): full int8 weights 87.29 % top-1 with ONNX Runtime's kernels against 91.79 % for the same graph
# unfused; with [-64, 64] weights 91.78 % fused. ONNX Runtime's own `reduce_range` does this.
WEIGHT_QMAX = 64

#: a kernel rule: (inputs, outputs) of ``node`` that its int8 kernel needs quantized, or None when it has none
KernelRule = Callable[[onnx.NodeProto, GraphFacts, QuantPlan], tuple[list[str], list[str]] | None]


def _layer(node: onnx.NodeProto, facts: GraphFacts, plan: QuantPlan) -> tuple[list[str], list[str]] | None:
    """QLinearConv/QGemm: per-channel weight, int32 bias, quantized input; a Conv's output too (the logits stay
    float)."""
    layer = quantizable_layer(node, facts.initializers)
    if layer is None:
        return None
    plan.layers.append(node.name)
    bias = node.input[2] if len(node.input) > 2 and node.input[2] in facts.initializers else None
    plan.weights.append(WeightSite(node.name, node.input[1], layer.axis, bias))
    return [node.input[0]], [node.output[0]] if node.op_type == "Conv" else []


def _residual_add(node: onnx.NodeProto, facts: GraphFacts, plan: QuantPlan) -> tuple[list[str], list[str]] | None:
    """QLinearAdd: both inputs and the output."""
    if not is_residual_add(node, facts.initializers):
        return None
    return list(node.input), [node.output[0]]


def _pool(node: onnx.NodeProto, facts: GraphFacts, plan: QuantPlan) -> tuple[list[str], list[str]] | None:
    """Pooling on uint8: input and output."""
    if node.input[0] in facts.initializers:
        return None
    return [node.input[0]], [node.output[0]]


KERNELS: dict[str, KernelRule] = {"Conv": _layer, "Gemm": _layer, "Add": _residual_add}
KERNELS.update({op: _pool for op in POOLING})


def _pads_within_range(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> bool:
    """Whether a Pad adds no value outside its input's range and sign: edge and reflect modes copy input values,
    constant mode must pad with zero (the default, or an all-zero initializer)."""
    if attribute(node, "mode", b"constant") not in (b"constant", "constant"):
        return True
    if len(node.input) < 3 or not node.input[2]:
        return True
    value = initializers.get(node.input[2])
    return value is not None and not np.any(numpy_helper.to_array(value))


def plan_onnxruntime(model: onnx.ModelProto) -> QuantPlan:
    """The ONNX Runtime plan of a named float32 graph (the module docstring has the rules)."""
    graph = model.graph
    facts = GraphFacts.of(model)
    initializers = facts.initializers
    plan = QuantPlan(placement="onnxruntime", activation_dtype="uint8", weight_qmax=WEIGHT_QMAX)

    # 1. the tensors the int8 kernels read and write; an output whose only reader is a Relu is quantized after it
    quantized: dict[str, None] = {}  # ordered set
    relu_of: dict[str, str] = {}  # Conv/Add output -> output of the Relu that is its only consumer
    for node in graph.node:
        rule = KERNELS.get(node.op_type) if in_default_domain(node) else None
        found = rule(node, facts, plan) if rule is not None else None
        if found is None:
            continue
        inputs, outputs = found
        quantized.update(dict.fromkeys(inputs))
        for out in outputs:
            users = facts.index.readers(out)
            relu = users[0] if len(users) == 1 and users[0].op_type == "Relu" else None
            if relu is not None and out not in facts.index.outputs and relu.output[0] not in facts.index.outputs:
                relu_of[out] = relu.output[0]
                quantized[relu.output[0]] = None
            elif users:
                quantized[out] = None

    # 2. range-preserving ops between quantized tensors share their input's scale
    for node in graph.node:
        if node.op_type in RANGE_PRESERVING and node.output[0] in quantized and node.input[0] in quantized:
            if node.op_type != "Pad" or _pads_within_range(node, initializers):
                plan.tied[node.output[0]] = node.input[0]
    plan.relu_inputs = {relu_out: pre for pre, relu_out in relu_of.items()}
    nonneg: set[str] = set()
    for node in graph.node:
        if node.op_type == "Relu" or (node.op_type in SIGN_PRESERVING and node.input and node.input[0] in nonneg):
            if node.op_type != "Pad" or _pads_within_range(node, initializers):
                nonneg.add(node.output[0])
    plan.unsigned = nonneg & set(quantized)

    # 3. every consumer of a quantized tensor reads a DequantizeLinear of it; a residual Add's inputs belong to
    #    the Conv of its branch (keeping that Conv in float keeps the Add in float too, as in the TensorRT plan)
    producer = facts.index.producer
    for node in graph.node:
        fused = None
        if is_residual_add(node, initializers):
            convs = [producer[t] for t in node.input if t in producer and producer[t].op_type == "Conv"]
            fused = convs[-1].name if convs else None
        for index, tensor in enumerate(node.input):
            if tensor in quantized:
                if node.op_type == "Relu" and tensor in relu_of:
                    continue  # the Relu itself goes
                kind = "conv" if node.op_type == "Conv" else "gemm" if node.op_type == "Gemm" else "other"
                if fused is not None:
                    kind = "residual"
                plan.activations.append(ActivationSite(tensor, node.name, index, kind, fused))
    return plan
