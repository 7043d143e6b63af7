"""Q/DQ placement, and the pass that inserts it. Two placements, one per backend, from the same calibration:

``tensorrt`` (NVIDIA's explicit-quantization rules for ResNets, ``shared/notes/tensorrt.md``), for engines:

* symmetric int8, zero point 0;
* each Conv/Gemm weight: int8 initializer -> per-channel ``DequantizeLinear`` (axis = output channels);
* each Conv/Gemm activation input: per-tensor ``QuantizeLinear -> DequantizeLinear``;
* each residual Add: Q/DQ on the identity (shortcut) input only, so TensorRT fuses conv + bias + add + relu of the
  other input into one int8 kernel;
* nothing on biases (TensorRT's parser rejects an int32 bias DQ) and nothing on Conv outputs.

``onnxruntime`` (the node groups ONNX Runtime's QDQ transformer turns into ``QLinearConv``/``QLinearAdd``/``QGemm``/
``QLinearGlobalAveragePool``), for ``--backend onnxruntime``. Run through ONNX Runtime, the TensorRT placement
stays float convs between Q/DQ pairs (slower than FP32 on a CPU); this one runs int8 end to end:

* weights symmetric per-channel on [-64, 64] (7 bits: see ``_plan_onnxruntime``); biases as int32
  ``DequantizeLinear`` with scale ``input scale x weight scale`` (ONNX Runtime fuses a conv only with an int32 bias);
* every activation between the first Conv and the Gemm quantized, Conv and Add outputs included, as uint8
  (the type ONNX Runtime's x86 int8 kernels take): zero point 0 and scale ``amax/255`` for tensors that cannot be
  negative (after a Relu), zero point 128 and scale ``amax/127`` for the others (symmetric in uint8);
* each ``Relu`` after a Conv/Add is removed: the uint8 ``QuantizeLinear`` with zero point 0 clamps at 0 exactly
  as the Relu did, and the Conv/Add can then fuse with its output Q;
* range-preserving ops (MaxPool, Slice, zero Pad, Flatten, Reshape, ...) reuse their input's scale, so ONNX Runtime
  runs them on uint8 directly;
* the logits stay float.

The ``onnxruntime`` graph does not parse in TensorRT (TensorRT has no uint8 Q/DQ or int32 bias DQ).

A tensor read by several consumers gets one ``QuantizeLinear`` and one ``DequantizeLinear`` per consumer (the form
ONNX Runtime's QDQ fusions expect; TensorRT accepts it).
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
PLACEMENTS = ("tensorrt", "onnxruntime")
UINT8_MAX = 255
# ops whose output values are a subset of their input's, so one scale serves both (ONNX Runtime drops their Q/DQ)
_RANGE_PRESERVING = ("MaxPool", "Slice", "Pad", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze")
# ops that keep a non-negative input non-negative
_SIGN_PRESERVING = (*_RANGE_PRESERVING, "GlobalAveragePool", "AveragePool", "Relu")


@dataclass(frozen=True)
class ActivationSite:
    """Input ``index`` of node ``node`` reads ``tensor``, which gets per-tensor Q/DQ."""

    tensor: str
    node: str
    index: int
    kind: str  # "conv" | "gemm" | "residual" | "other"
    fused_with: str | None = None  # residual: the Conv whose output is the Add's other input (TensorRT fuses it)


@dataclass(frozen=True)
class WeightSite:
    """Weight initializer ``weight`` of node ``node``, quantized per channel along ``axis``; ``bias`` is the bias
    initializer when the placement quantizes it (int32, ``onnxruntime`` placement)."""

    node: str
    weight: str
    axis: int
    bias: str | None = None


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
    placement: str = "tensorrt"
    #: ``onnxruntime`` placement: tensors that cannot be negative (uint8 with zero point 0)
    unsigned: set[str] = field(default_factory=set)
    #: ``onnxruntime`` placement: tensor -> tensor whose scale it reuses (output of a range-preserving op)
    tied: dict[str, str] = field(default_factory=dict)
    #: ``onnxruntime`` placement: Relu output -> Relu input; the Relu goes and the Q reads its input
    relu_inputs: dict[str, str] = field(default_factory=dict)
    #: weights are quantized to ``[-weight_qmax, weight_qmax]``
    weight_qmax: int = QMAX

    @property
    def tensors(self) -> list[str]:
        """Distinct activation tensors to calibrate, in graph order."""
        return list(dict.fromkeys(s.tensor for s in self.activations if s.tensor not in self.tied))

    def root(self, tensor: str) -> str:
        while tensor in self.tied:
            tensor = self.tied[tensor]
        return tensor

    def encoding(self, tensor: str, amax: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(scale float32, zero point) of ``tensor``'s per-tensor quantization; the zero point's dtype is the
        quantized type."""
        root = self.root(tensor)
        if root not in amax:
            raise UserError(f"no calibration range for tensor '{root}'")
        a = amax[root]
        if not np.isfinite(a) or a < 0:
            raise UserError(f"invalid calibration range {a}")
        if self.placement == "tensorrt":
            return np.array(a / QMAX if a > 0 else 1.0, np.float32), np.array(0, np.int8)
        if root in self.unsigned:
            return np.array(a / UINT8_MAX if a > 0 else 1.0, np.float32), np.array(0, np.uint8)
        return np.array(a / QMAX if a > 0 else 1.0, np.float32), np.array(128, np.uint8)


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


def _weighted_layer(n: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> tuple[int, str] | None:
    """(weight axis, kind) when ``n`` is a Conv/Gemm whose weight is a float32 initializer, else None."""
    if n.op_type not in QUANTIZED_OPS or n.domain not in ("", "ai.onnx"):
        return None
    if len(n.input) < 2 or n.input[1] not in inits or inits[n.input[1]].data_type != TensorProto.FLOAT:
        return None  # weights computed at run time or not float32: leave the layer in float
    if n.input[0] in inits:
        return None
    if n.op_type == "Gemm":
        if _attr(n, "transA", 0):
            return None
        return (0 if _attr(n, "transB", 0) else 1), "gemm"
    if _attr(n, "group", 1) != 1 and len(inits[n.input[1]].dims) != 4:
        return None
    return 0, "conv"


def _residual_add(n: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    return (
        n.op_type == "Add"
        and n.domain in ("", "ai.onnx")
        and len(n.input) == 2
        and all(i and i not in inits for i in n.input)
    )


def _conv_depth(model: onnx.ModelProto) -> dict[str, int]:
    """Longest chain of Conv/Gemm from the inputs to each tensor: the shortcut is the shallower input of an Add."""
    depth: dict[str, int] = {}
    for n in model.graph.node:
        d = max((depth.get(i, 0) for i in n.input if i), default=0)
        for o in n.output:
            depth[o] = d + (1 if n.op_type in QUANTIZED_OPS else 0)
    return depth


def plan_qdq(model: onnx.ModelProto, placement: str = "tensorrt") -> QuantPlan:
    """Find the Q/DQ sites of a named, float32 graph for ``placement`` (see the module docstring for the rules)."""
    if placement not in PLACEMENTS:
        raise UserError(f"unknown Q/DQ placement '{placement}' (choose from {', '.join(PLACEMENTS)})")
    g = model.graph
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in g.node):
        raise UserError("the model is already quantized (it has Q/DQ nodes): give the float32 model")
    if any(not n.name for n in g.node):
        raise ValueError("plan_qdq needs named nodes: call name_nodes() first")
    plan = _plan_tensorrt(model) if placement == "tensorrt" else _plan_onnxruntime(model)
    depth = _conv_depth(model)
    plan.input_tensors = [t for t in plan.tensors if depth.get(t, 0) == 0]
    return plan


def _plan_tensorrt(model: onnx.ModelProto) -> QuantPlan:
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    depth = _conv_depth(model)
    plan = QuantPlan(placement="tensorrt")
    for n in g.node:
        layer = _weighted_layer(n, inits)
        if layer is not None:
            axis, kind = layer
            plan.layers.append(n.name)
            plan.weights.append(WeightSite(n.name, n.input[1], axis))
            plan.activations.append(ActivationSite(n.input[0], n.name, 0, kind))
        elif _residual_add(n, inits):
            a, b = n.input
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
    return plan


def _zero_pad(n: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    mode = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "mode"), b"constant")
    if mode not in (b"constant", "constant"):
        return True
    if len(n.input) < 3 or not n.input[2]:
        return True
    value = inits.get(n.input[2])
    return value is not None and not np.any(numpy_helper.to_array(value))


def _plan_onnxruntime(model: onnx.ModelProto) -> QuantPlan:
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    # 7-bit weights: ONNX Runtime's uint8 x int8 kernels on x86 without VNNI (AVX2, AVX-512F) add pairs of
    # products in int16 (vpmaddubsw), which saturates when both are near 255 x 127. Measured on the bundled
    # fmnist_resnet50_small (AVX2 EPYC): full int8 weights 87.29 % top-1 with ONNX Runtime's kernels against 91.79 %
    # for the same graph unfused; with [-64, 64] weights 91.78 % fused. ONNX Runtime's own `reduce_range` does this.
    plan = QuantPlan(placement="onnxruntime", weight_qmax=64)
    graph_outputs = {o.name for o in g.output}

    # 1. the tensors that must be int8 for the int8 kernels: Conv/Gemm inputs, both inputs of residual Adds,
    #    inputs and outputs of pooling, outputs of Conv and Add (through their Relu when they have one).
    quantized: dict[str, None] = {}  # ordered set
    relu_of: dict[str, str] = {}  # Conv/Add output -> output of the Relu that is its only consumer
    for n in g.node:
        if n.domain not in ("", "ai.onnx"):
            continue
        layer = _weighted_layer(n, inits)
        if layer is not None:
            axis, _ = layer
            plan.layers.append(n.name)
            bias = n.input[2] if len(n.input) > 2 and n.input[2] in inits else None
            plan.weights.append(WeightSite(n.name, n.input[1], axis, bias))
            quantized[n.input[0]] = None
            outs = [n.output[0]] if n.op_type == "Conv" else []  # the logits stay float
        elif _residual_add(n, inits):
            quantized.update(dict.fromkeys(n.input))
            outs = [n.output[0]]
        elif n.op_type in ("MaxPool", "GlobalAveragePool", "AveragePool") and n.input[0] not in inits:
            quantized[n.input[0]] = None
            outs = [n.output[0]]
        else:
            continue
        for out in outs:
            users = consumers.get(out, [])
            relu = users[0] if len(users) == 1 and users[0].op_type == "Relu" else None
            if relu is not None and out not in graph_outputs and relu.output[0] not in graph_outputs:
                relu_of[out] = relu.output[0]
                quantized[relu.output[0]] = None
            elif users:
                quantized[out] = None

    # 2. range-preserving ops between quantized tensors share their input's scale
    for n in g.node:
        if n.op_type in _RANGE_PRESERVING and n.output[0] in quantized and n.input[0] in quantized:
            if n.op_type != "Pad" or _zero_pad(n, inits):
                plan.tied[n.output[0]] = n.input[0]
    plan.relu_inputs = {relu_out: pre for pre, relu_out in relu_of.items()}
    nonneg: set[str] = set()
    for n in g.node:
        if n.op_type == "Relu" or (n.op_type in _SIGN_PRESERVING and n.input and n.input[0] in nonneg):
            if n.op_type != "Pad" or _zero_pad(n, inits):
                nonneg.add(n.output[0])
    plan.unsigned = nonneg & set(quantized)

    # 3. every consumer of a quantized tensor reads a DequantizeLinear of it; a residual Add's inputs belong to
    #    the Conv of its branch (keeping that Conv in float keeps the Add in float too, as in the TensorRT plan)
    producer = {o: n for n in g.node for o in n.output}
    for n in g.node:
        fused = None
        if _residual_add(n, inits):
            convs = [producer[i] for i in n.input if i in producer and producer[i].op_type == "Conv"]
            fused = convs[-1].name if convs else None
        for k, i in enumerate(n.input):
            if i in quantized:
                if n.op_type == "Relu" and i in relu_of:
                    continue  # the Relu itself goes
                kind = "conv" if n.op_type == "Conv" else "gemm" if n.op_type == "Gemm" else "other"
                if fused is not None:
                    kind = "residual"
                plan.activations.append(ActivationSite(i, n.name, k, kind, fused))
    return plan


def quantize_weight(w: np.ndarray, axis: int, qmax: int = QMAX) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 on ``[-qmax, qmax]``: (int8 weights, float32 scales); all-zero channels get
    scale 1."""
    w = np.asarray(w, dtype=np.float32)
    other = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=other) if other else np.abs(w)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    return q, scale


KEEP_DTYPES = ("fp32", "fp16")


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
    in FP16). In the ``tensorrt`` placement the residual Q/DQ fused with them goes too; in the ``onnxruntime``
    placement their output stays quantized (the neighbouring int8 kernels read it) and a Relu folded into a Q
    comes back where they read its output.
    """
    if keep_dtype not in KEEP_DTYPES:
        raise UserError(f"unknown dtype '{keep_dtype}' for layers kept out of int8 (choose fp32 or fp16)")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise UserError(f"INT8 needs opset >= 13 (per-channel DequantizeLinear); the model has opset {opset}")
    unknown = keep_float - set(plan.layers)
    if unknown:
        raise UserError(f"cannot keep unknown layer(s) in float: {', '.join(sorted(unknown))}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    report = PassReport("int8_qdq")
    report.notes.append(f"placement: {plan.placement}")
    nodes = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    new_inits: list[onnx.TensorProto] = []
    before: dict[str, list[onnx.NodeProto]] = {}  # node name -> nodes to emit just before it
    after: dict[str, list[onnx.NodeProto]] = {}  # tensor -> nodes to emit right after it is produced
    weight_scales: dict[str, np.ndarray] = {}

    for site in plan.weights:
        if site.node in keep_float:
            continue
        w = numpy_helper.to_array(inits[site.weight])
        q, scale = quantize_weight(w, site.axis, plan.weight_qmax)
        weight_scales[site.node] = scale
        nodes[site.node].input[1] = _constant_dq(
            f"{site.node}/weight", "int8", q, scale, site.axis, new_inits, before.setdefault(site.node, [])
        )
        report.count("weight_qdq")

    by_tensor: dict[str, list[ActivationSite]] = {}
    read_float: set[str] = set()  # tensors a kept layer reads unquantized
    for s in plan.activations:
        # A kept layer reads its input in float. TensorRT: a residual Q/DQ only serves the int8 conv + add
        # fusion: drop it with its conv.
        if s.node in keep_float or s.fused_with in keep_float:
            read_float.add(s.tensor)
            continue
        by_tensor.setdefault(s.tensor, []).append(s)
    input_scale: dict[tuple[str, int], np.ndarray] = {}
    for tensor, sites in by_tensor.items():
        scale, zp = plan.encoding(tensor, amax)
        scale_name, zp_name = f"{tensor}_scale", f"{tensor}_zero_point"
        new_inits += [numpy_helper.from_array(scale, scale_name), numpy_helper.from_array(zp, zp_name)]
        source = plan.relu_inputs.get(tensor, tensor)
        qname = f"{tensor}_quantized"
        q = helper.make_node("QuantizeLinear", [source, scale_name, zp_name], [qname], name=f"{tensor}_QuantizeLinear")
        after.setdefault(source, []).append(q)
        report.count("activation_q")
        for k, s in enumerate(sites):
            out = f"{tensor}_dequantized_{k}"
            dq = helper.make_node(
                "DequantizeLinear", [qname, scale_name, zp_name], [out], name=f"{out}_DequantizeLinear"
            )
            nodes[s.node].input[s.index] = out
            before.setdefault(s.node, []).append(dq)
            input_scale[(s.node, s.index)] = scale
            report.count("residual_qdq" if s.kind == "residual" else "activation_dq")

    for site in plan.weights:
        if site.bias is None or site.node not in weight_scales or (site.node, 0) not in input_scale:
            continue
        bias = numpy_helper.to_array(inits[site.bias]).astype(np.float64)
        bscale = (input_scale[(site.node, 0)] * weight_scales[site.node]).astype(np.float32)
        info = np.iinfo(np.int32)
        bq = np.clip(np.round(bias / bscale.astype(np.float64)), info.min, info.max).astype(np.int32)
        nodes[site.node].input[2] = _constant_dq(
            f"{site.node}/bias", "int32", bq, bscale, 0, new_inits, before.setdefault(site.node, [])
        )
        report.count("bias_int32")

    if keep_dtype == "fp16":
        for name in sorted(keep_float):
            _to_fp16(nodes[name], inits, new_inits, before, after)
            report.count("layers_kept_fp16")

    # a Relu stays where a kept layer reads its output in float (its producer then runs unfused on ONNX Runtime)
    folded = {t for t in by_tensor if t in plan.relu_inputs and t not in read_float}
    ordered: list[onnx.NodeProto] = []
    for inp in g.input:
        ordered += after.pop(inp.name, [])
    for n in g.node:
        ordered += before.get(n.name, [])
        if n.op_type == "Relu" and n.output[0] in folded:
            report.count("relu_folded")  # the uint8 Q with zero point 0 clamps at 0 itself
        else:
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
    gone = [v for v in g.value_info if v.name in folded]
    for v in gone:
        g.value_info.remove(v)
    if keep_float:
        report.count("layers_kept_float", len(keep_float))
        report.notes.append("kept in float: " + ", ".join(sorted(keep_float)))
    onnx.checker.check_model(model)
    return model, report


def _constant_dq(
    base: str,
    suffix: str,
    q: np.ndarray,
    scale: np.ndarray,
    axis: int,
    new_inits: list[onnx.TensorProto],
    emit: list[onnx.NodeProto],
) -> str:
    """Per-channel ``DequantizeLinear`` of the constant ``q`` (zero point 0, of q's type): adds its initializers to
    ``new_inits`` and the node to ``emit``; returns the dequantized tensor's name."""
    names = [f"{base}_{suffix}", f"{base}_scale", f"{base}_zero_point"]
    new_inits += [
        numpy_helper.from_array(q, names[0]),
        numpy_helper.from_array(scale, names[1]),
        numpy_helper.from_array(np.zeros(scale.shape, q.dtype), names[2]),
    ]
    out = f"{base}_dequantized"
    emit.append(helper.make_node("DequantizeLinear", names, [out], name=f"{base}_DequantizeLinear", axis=axis))
    return out


def _to_fp16(
    node: onnx.NodeProto,
    inits: dict[str, onnx.TensorProto],
    new_inits: list[onnx.TensorProto],
    before: dict[str, list[onnx.NodeProto]],
    after: dict[str, list[onnx.NodeProto]],
) -> None:
    """Run ``node`` (a float Conv/Gemm) in float16: fp16 copies of its weight and bias, Casts around it."""
    fp16_max = float(np.finfo(np.float16).max)
    for k in (1, 2):
        if k < len(node.input) and node.input[k] in inits:
            w = numpy_helper.to_array(inits[node.input[k]])
            name = f"{node.name}/input{k}_fp16"
            new_inits.append(numpy_helper.from_array(np.clip(w, -fp16_max, fp16_max).astype(np.float16), name))
            node.input[k] = name
    x16, y16, y = f"{node.name}/input_fp16", f"{node.name}/output_fp16", node.output[0]
    before.setdefault(node.name, []).append(
        helper.make_node("Cast", [node.input[0]], [x16], name=f"{node.name}/Cast_to_fp16", to=TensorProto.FLOAT16)
    )
    node.input[0] = x16
    node.output[0] = y16
    cast_back = helper.make_node("Cast", [y16], [y], name=f"{node.name}/Cast_to_fp32", to=TensorProto.FLOAT)
    after[y16] = [cast_back, *after.pop(y, [])]
