"""Q/DQ placement for TensorRT's ResNet fusions, and the pass that inserts it.

Placement (NVIDIA's explicit-quantization rules for ResNets, ``shared/notes/tensorrt.md``):

* symmetric int8, zero point 0;
* each Conv/Gemm weight: int8 initializer -> per-channel ``DequantizeLinear`` (axis = output channels);
* each Conv/Gemm activation input: per-tensor ``QuantizeLinear -> DequantizeLinear``;
* each residual Add: Q/DQ on the identity (shortcut) input only, so TensorRT fuses conv + bias + add + relu of the
  other input into one int8 kernel;
* nothing on biases (TensorRT's parser rejects an int32 bias DQ) and nothing on Conv outputs.

A tensor read by several quantized consumers gets one ``QuantizeLinear`` and one ``DequantizeLinear`` per consumer
(the form ONNX Runtime's QDQ fusions expect; TensorRT accepts it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import UserError
from ..passes import PassReport
from .histogram import QMAX

QUANTIZED_OPS = ("Conv", "Gemm")


@dataclass(frozen=True)
class ActivationSite:
    """Input ``index`` of node ``node`` reads ``tensor``, which gets per-tensor Q/DQ."""

    tensor: str
    node: str
    index: int
    kind: str  # "conv" | "gemm" | "residual"
    fused_with: str | None = None  # residual: the Conv whose output is the Add's other input (TensorRT fuses it)


@dataclass(frozen=True)
class WeightSite:
    """Weight initializer ``weight`` of node ``node``, quantized per channel along ``axis``."""

    node: str
    weight: str
    axis: int


@dataclass
class QuantPlan:
    """Where Q/DQ goes in one FP32 graph. ``layers`` are the quantizable Conv/Gemm node names, in graph order."""

    activations: list[ActivationSite] = field(default_factory=list)
    weights: list[WeightSite] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    skipped_adds: list[str] = field(default_factory=list)
    #: activation tensors upstream of every Conv (the network input, or its in-graph normalisation): their range
    #: is calibrated by max whatever the method, see :func:`resnet_deploy.precision.calibration.plan_amax`
    input_tensors: list[str] = field(default_factory=list)

    @property
    def tensors(self) -> list[str]:
        """Distinct activation tensors to calibrate, in graph order."""
        return list(dict.fromkeys(s.tensor for s in self.activations))


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(helper.get_attribute_value(a))
    return default


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names (placement and the calibration cache refer to nodes by name)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):
        name = n.name or f"{n.op_type}_{n.output[0]}"
        if name in seen:
            name = f"{name}_{i}"
        n.name = name
        seen.add(name)
    return model


def plan_qdq(model: onnx.ModelProto) -> QuantPlan:
    """Find the Q/DQ sites of a named, float32 graph (see the module docstring for the rules)."""
    g = model.graph
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in g.node):
        raise UserError("the model is already quantized (it has Q/DQ nodes): give the float32 model")
    if any(not n.name for n in g.node):
        raise ValueError("plan_qdq needs named nodes: call name_nodes() first")
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    plan = QuantPlan()

    # Longest chain of Convs from the inputs to each tensor: the shortcut is the shallower input of an Add.
    depth: dict[str, int] = {}
    for n in g.node:
        d = max((depth.get(i, 0) for i in n.input if i), default=0)
        for o in n.output:
            depth[o] = d + (1 if n.op_type in QUANTIZED_OPS else 0)

    for n in g.node:
        if n.op_type in QUANTIZED_OPS and n.domain in ("", "ai.onnx"):
            if len(n.input) < 2 or n.input[1] not in inits or inits[n.input[1]].data_type != TensorProto.FLOAT:
                continue  # weights computed at run time or not float32: leave the layer in float
            if n.input[0] in inits:
                continue
            if n.op_type == "Gemm":
                if _attr(n, "transA", 0):
                    continue
                axis = 0 if _attr(n, "transB", 0) else 1
                kind = "gemm"
            else:
                if _attr(n, "group", 1) != 1 and len(inits[n.input[1]].dims) != 4:
                    continue
                axis, kind = 0, "conv"
            plan.layers.append(n.name)
            plan.weights.append(WeightSite(n.name, n.input[1], axis))
            plan.activations.append(ActivationSite(n.input[0], n.name, 0, kind))
        elif n.op_type == "Add" and n.domain in ("", "ai.onnx") and len(n.input) == 2:
            a, b = n.input
            if a in inits or b in inits or not a or not b:
                continue  # a bias-like Add, not a residual
            pa, pb = producer.get(a), producer.get(b)
            conv_a = pa is not None and pa.op_type == "Conv"
            conv_b = pb is not None and pb.op_type == "Conv"
            if conv_a and conv_b:
                identity = 1 if depth.get(a, 0) >= depth.get(b, 0) else 0
            elif conv_a:
                identity = 1
            elif conv_b:
                identity = 0
            else:
                plan.skipped_adds.append(n.name)
                continue
            fused = (pb if identity == 0 else pa).name  # type: ignore[union-attr]
            plan.activations.append(ActivationSite(n.input[identity], n.name, identity, "residual", fused))
    plan.input_tensors = [t for t in plan.tensors if depth.get(t, 0) == 0]
    return plan


def quantize_weight(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8: (int8 weights, float32 scales); all-zero channels get scale 1."""
    w = np.asarray(w, dtype=np.float32)
    other = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=other) if other else np.abs(w)
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -QMAX, QMAX).astype(np.int8)
    return q, scale


def activation_scale(amax: float) -> np.float32:
    """Per-tensor scale for ``amax``; a never-active tensor (amax 0) gets scale 1 (it quantizes to 0 anyway)."""
    if not np.isfinite(amax) or amax < 0:
        raise UserError(f"invalid calibration range {amax}")
    return np.float32(amax / QMAX if amax > 0 else 1.0)


def insert_qdq(
    model: onnx.ModelProto, plan: QuantPlan, amax: dict[str, float], keep_float: set[str] | frozenset[str] = frozenset()
) -> tuple[onnx.ModelProto, PassReport]:
    """Insert Q/DQ per ``plan`` with activation ranges ``amax`` (tensor -> amax). Layers named in ``keep_float``
    keep float weights and an un-quantized input (mixed precision), and the residual Q/DQ fused with them goes."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise UserError(f"INT8 needs opset >= 13 (per-channel DequantizeLinear); the model has opset {opset}")
    unknown = keep_float - set(plan.layers)
    if unknown:
        raise UserError(f"cannot keep unknown layer(s) in float: {', '.join(sorted(unknown))}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    report = PassReport("int8_qdq")
    nodes = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    new_inits: list[onnx.TensorProto] = []
    before: dict[str, list[onnx.NodeProto]] = {}  # node name -> nodes to emit just before it
    after: dict[str, list[onnx.NodeProto]] = {}  # tensor -> nodes to emit right after it is produced

    for site in plan.weights:
        if site.node in keep_float:
            continue
        node = nodes[site.node]
        w = numpy_helper.to_array(inits[site.weight])
        q, scale = quantize_weight(w, site.axis)
        base = f"{site.node}/weight"
        new_inits += [
            numpy_helper.from_array(q, f"{base}_int8"),
            numpy_helper.from_array(scale, f"{base}_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{base}_zero_point"),
        ]
        dq = helper.make_node(
            "DequantizeLinear",
            [f"{base}_int8", f"{base}_scale", f"{base}_zero_point"],
            [f"{base}_dequantized"],
            name=f"{base}_DequantizeLinear",
            axis=site.axis,
        )
        node.input[1] = dq.output[0]
        before.setdefault(site.node, []).append(dq)
        report.count("weight_qdq")

    by_tensor: dict[str, list[ActivationSite]] = {}
    for s in plan.activations:
        # A residual Q/DQ only serves the int8 conv + add fusion: drop it with its conv.
        if s.node not in keep_float and s.fused_with not in keep_float:
            by_tensor.setdefault(s.tensor, []).append(s)
    for tensor, sites in by_tensor.items():
        if tensor not in amax:
            raise UserError(f"no calibration range for tensor '{tensor}'")
        scale_name, zp_name = f"{tensor}_scale", f"{tensor}_zero_point"
        new_inits += [
            numpy_helper.from_array(np.array(activation_scale(amax[tensor])), scale_name),
            numpy_helper.from_array(np.array(0, dtype=np.int8), zp_name),
        ]
        qname = f"{tensor}_quantized"
        q = helper.make_node("QuantizeLinear", [tensor, scale_name, zp_name], [qname], name=f"{tensor}_QuantizeLinear")
        after.setdefault(tensor, []).append(q)
        report.count("activation_q")
        for k, s in enumerate(sites):
            out = f"{tensor}_dequantized_{k}"
            dq = helper.make_node(
                "DequantizeLinear", [qname, scale_name, zp_name], [out], name=f"{out}_DequantizeLinear"
            )
            nodes[s.node].input[s.index] = out
            before.setdefault(s.node, []).append(dq)
            report.count("residual_qdq" if s.kind == "residual" else "activation_dq")

    ordered: list[onnx.NodeProto] = []
    for inp in g.input:
        ordered += after.pop(inp.name, [])
    for n in g.node:
        ordered += before.get(n.name, [])
        ordered.append(n)
        for o in n.output:
            ordered += after.pop(o, [])
    if after:
        raise UserError(f"cannot place Q/DQ: tensor(s) not produced in the graph: {', '.join(after)}")
    del g.node[:]
    g.node.extend(ordered)
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input}
    stale = [t for t in g.initializer if t.name not in used]
    for t in stale:
        g.initializer.remove(t)
    if keep_float:
        report.count("layers_kept_float", len(keep_float))
        report.notes.append("kept in float: " + ", ".join(sorted(keep_float)))
    onnx.checker.check_model(model)
    return model, report
