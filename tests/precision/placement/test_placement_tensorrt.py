"""The TensorRT Q/DQ placement (NVIDIA's ResNet rules), checked node by node on inserted graphs; they run on ONNX
Runtime and build in TensorRT(-RTX)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.errors import UserError
from resnet_deploy.passes.graph import name_nodes
from resnet_deploy.passes.qdq import insert_qdq
from resnet_deploy.precision.calibration import batches_of, calibrate, plan_amax
from resnet_deploy.precision.placement import plan_qdq


def quantize(model: onnx.ModelProto, x: np.ndarray, keep: frozenset[str] = frozenset()) -> onnx.ModelProto:
    named = name_nodes(model)
    plan = plan_qdq(named)
    amax = calibrate(named, plan.tensors, batches_of(x, 16)).amax("percentile")
    q, _ = insert_qdq(named, plan, amax, keep)
    return q


def check_placement(fp32: onnx.ModelProto, q: onnx.ModelProto) -> None:
    g = q.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name: t for t in g.initializer}
    ops = Counter(n.op_type for n in g.node)
    layers = [n for n in g.node if n.op_type in ("Conv", "Gemm")]
    assert len(layers) == sum(1 for n in fp32.graph.node if n.op_type in ("Conv", "Gemm"))

    weight_dq = 0
    for n in layers:
        # activation input: DQ <- Q, per tensor, int8, zero point 0
        dq = producer[n.input[0]]
        assert dq.op_type == "DequantizeLinear"
        assert producer[dq.input[0]].op_type == "QuantizeLinear"
        assert list(inits[dq.input[1]].dims) == []  # per-tensor scale
        zp = onnx.numpy_helper.to_array(inits[dq.input[2]])
        assert zp.dtype == np.int8 and int(zp) == 0
        # weights: int8 initializer -> per-channel DQ on the output-channel axis
        wdq = producer[n.input[1]]
        assert wdq.op_type == "DequantizeLinear"
        w = inits[wdq.input[0]]
        assert w.data_type == TensorProto.INT8
        axis = next(a.i for a in wdq.attribute if a.name == "axis")
        assert list(inits[wdq.input[1]].dims) == [w.dims[axis]]
        assert not onnx.numpy_helper.to_array(inits[wdq.input[2]]).any()
        weight_dq += 1
        # bias: a float initializer, no DQ
        if len(n.input) > 2 and n.input[2]:
            assert n.input[2] in inits and inits[n.input[2]].data_type == TensorProto.FLOAT
    assert weight_dq == len(layers)

    adds = [n for n in g.node if n.op_type == "Add"]
    assert adds
    for n in adds:
        quantized_inputs = [i for i in n.input if i in producer and producer[i].op_type == "DequantizeLinear"]
        assert len(quantized_inputs) == 1, f"{n.name}: Q/DQ on {len(quantized_inputs)} inputs"
        other = next(i for i in n.input if i not in quantized_inputs)
        assert producer[other].op_type == "Conv"  # the branch TensorRT fuses conv + add (+ relu) into
    # no Q/DQ on Conv outputs, except a downsample conv's output that is itself an Add's identity input (NVIDIA's
    # ResNet recipe quantizes the identity after the downsample; TensorRT gives that conv an int8 output)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            src = producer.get(n.input[0])
            if src is not None and src.op_type in ("Conv", "Gemm"):
                users = [u for dq in consumers[n.output[0]] for u in consumers[dq.output[0]]]
                assert users and all(u.op_type == "Add" for u in users), f"Q on the output of {src.name}"
    # one DQ per quantized consumer: convs + gemm + residual adds, plus one per weight
    assert ops["DequantizeLinear"] == 2 * len(layers) + len(adds)


@pytest.mark.parametrize("arch", ["resnet20", "resnet18"])
def test_placement(arch: str, request: pytest.FixtureRequest) -> None:
    fp32 = request.getfixturevalue(f"{arch}_fp32")
    shape = (1, 28, 28) if arch == "resnet20" else (3, 64, 64)
    x = np.random.default_rng(0).random((32, *shape), dtype=np.float32)
    q = quantize(fp32, x)
    onnx.checker.check_model(q)
    check_placement(fp32, q)
    a = OnnxRuntimeModel(fp32).predict(x)
    b = OnnxRuntimeModel(q).predict(x)
    assert b.shape == a.shape and np.isfinite(b).all()
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max() + 0.05  # int8 noise, not a broken graph


def test_resnet20_int8_agrees_with_fp32_on_real_images(
    resnet20_fp32: onnx.ModelProto, fmnist_images: np.ndarray
) -> None:
    q = quantize(resnet20_fp32, fmnist_images[:128])
    x = fmnist_images[128:]
    a = OnnxRuntimeModel(resnet20_fp32).predict(x).argmax(1)
    b = OnnxRuntimeModel(q).predict(x).argmax(1)
    assert (a == b).mean() >= 0.9


@pytest.mark.parametrize("arch", ["resnet20", "resnet18"])
def test_tensorrt_parses_and_builds_int8(arch: str, request: pytest.FixtureRequest, trt_build) -> None:  # type: ignore[no-untyped-def]
    fp32 = request.getfixturevalue(f"{arch}_fp32")
    shape = (1, 28, 28) if arch == "resnet20" else (3, 64, 64)
    q = quantize(fp32, np.random.default_rng(0).random((8, *shape), dtype=np.float32))
    assert trt_build(q) > 0


def test_keep_float_removes_that_layer_and_its_residual_qdq(resnet20_fp32: onnx.ModelProto) -> None:
    named = name_nodes(resnet20_fp32)
    plan = plan_qdq(named)
    residual = next(s for s in plan.activations if s.kind == "residual")
    assert residual.fused_with in plan.layers
    keep = frozenset({residual.fused_with})
    amax = {t: 1.0 for t in plan.tensors}
    q, report = insert_qdq(named, plan, amax, keep)
    full, _ = insert_qdq(named, plan, amax)
    nodes = {n.name: n for n in q.graph.node}
    producer = {o: n for n in q.graph.node for o in n.output}
    kept = nodes[residual.fused_with]
    assert kept.input[1] in {t.name for t in q.graph.initializer}  # float weights again
    assert producer[kept.input[0]].op_type != "DequantizeLinear"
    add = nodes[residual.node]
    assert all(producer[i].op_type != "DequantizeLinear" for i in add.input)
    dq = Counter(n.op_type for n in q.graph.node)["DequantizeLinear"]
    assert dq == Counter(n.op_type for n in full.graph.node)["DequantizeLinear"] - 3
    assert report.changes["layers_kept_float"] == 1
    with pytest.raises(UserError, match="unknown layer"):
        insert_qdq(named, plan, amax, frozenset({"nope"}))


def test_network_input_is_calibrated_by_max_whatever_the_method(resnet20_fp32: onnx.ModelProto) -> None:
    named = name_nodes(resnet20_fp32)
    plan = plan_qdq(named)
    first_conv = plan.activations[0]
    assert plan.input_tensors == [first_conv.tensor]  # the in-graph normalisation's output, before any Conv
    # mostly background (one value) with a few bright pixels: the entropy search would clip the bright ones
    x = np.zeros((16, 1, 28, 28), np.float32)
    x[:, :, 10:14, 10:14] = 1.0
    result = calibrate(named, plan.tensors, batches_of(x, 8))
    amax = plan_amax(result, plan, "entropy")
    assert amax[first_conv.tensor] == pytest.approx(result.stats[first_conv.tensor].amax)
    assert amax[first_conv.tensor] == pytest.approx((1.0 - 0.286) / 0.353, rel=1e-4)


def test_kept_layer_in_fp16_runs_and_builds(resnet18_fp32: onnx.ModelProto, trt_build) -> None:  # type: ignore[no-untyped-def]
    named = name_nodes(resnet18_fp32)
    plan = plan_qdq(named)
    x = np.random.default_rng(0).random((8, 3, 64, 64), dtype=np.float32)
    amax = calibrate(named, plan.tensors, batches_of(x, 8)).amax("percentile")
    residual = next(s for s in plan.activations if s.kind == "residual")
    keep = frozenset({plan.layers[0], residual.fused_with})  # the stem, and a conv whose output feeds an Add
    q16, report = insert_qdq(named, plan, amax, keep, "fp16")
    q32, _ = insert_qdq(named, plan, amax, keep)
    assert report.changes["layers_kept_fp16"] == 2
    nodes = {n.name: n for n in q16.graph.node}
    inits = {t.name: t for t in q16.graph.initializer}
    for name in keep:
        assert inits[nodes[name].input[1]].data_type == TensorProto.FLOAT16
    assert Counter(n.op_type for n in q16.graph.node)["Cast"] == 4
    a, b = OnnxRuntimeModel(q32).predict(x), OnnxRuntimeModel(q16).predict(x)
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()  # int8 noise, not a broken graph
    assert trt_build(q16) > 0
    # every layer kept: no int8 left, an FP16 network that must match FP32 to FP16 rounding
    all16, _ = insert_qdq(named, plan, amax, frozenset(plan.layers), "fp16")
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in all16.graph.node}
    ref = OnnxRuntimeModel(named).predict(x)
    assert np.abs(OnnxRuntimeModel(all16).predict(x) - ref).max() < 1e-2 * np.abs(ref).max()
    with pytest.raises(UserError, match="unknown dtype"):
        insert_qdq(named, plan, amax, keep, "bf16")
