"""The ONNX Runtime Q/DQ placement: uint8 activations, int32 biases, 7-bit weights, Relus folded into the Qs. Checked
on the graph itself, on what ONNX Runtime's optimizer makes of it (every Conv/Add must become an int8 kernel), and
against the same graph run unfused (the int8 kernels must compute what the Q/DQ graph says)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.passes.graph import name_nodes
from resnet_deploy.passes.qdq import insert_qdq
from resnet_deploy.precision.calibration import batches_of, calibrate, plan_amax
from resnet_deploy.precision.placement import plan_qdq

SHAPES = {"resnet20": (1, 28, 28), "resnet18": (3, 64, 64)}


def quantize_ort(model: onnx.ModelProto, x: np.ndarray, keep: frozenset[str] = frozenset()) -> onnx.ModelProto:
    named = name_nodes(model)
    plan = plan_qdq(named, "onnxruntime")
    amax = plan_amax(calibrate(named, plan.tensors, batches_of(x, 16)), plan, "percentile")
    return insert_qdq(named, plan, amax, keep)[0]


def session(model: onnx.ModelProto, optimize: bool = True, save: Path | None = None) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.log_severity_level = 3
    o.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if save is not None:
        o.optimized_model_filepath = str(save)
    return ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return np.concatenate([sess.run(None, {"input": x[i : i + 64]})[0] for i in range(0, len(x), 64)])


@pytest.mark.parametrize("arch", ["resnet20", "resnet18"])
def test_graph_encodings(arch: str, request: pytest.FixtureRequest) -> None:
    fp32 = request.getfixturevalue(f"{arch}_fp32")
    x = np.random.default_rng(0).random((32, *SHAPES[arch]), dtype=np.float32)
    q = quantize_ort(fp32, x)
    g = q.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    ops = Counter(n.op_type for n in g.node)
    assert ops["Relu"] == 0  # every Relu follows a Conv or an Add and is folded into a uint8 Q
    assert ops["Conv"] == Counter(n.op_type for n in fp32.graph.node)["Conv"]
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            assert inits[n.input[2]].data_type == TensorProto.UINT8
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        xdq, wdq, bdq = (producer[i] for i in n.input[:3])
        assert {xdq.op_type, wdq.op_type, bdq.op_type} == {"DequantizeLinear"}
        w = numpy_helper.to_array(inits[wdq.input[0]])
        assert w.dtype == np.int8 and np.abs(w).max() <= 64  # 7-bit weights: no int16 saturation without VNNI
        b = numpy_helper.to_array(inits[bdq.input[0]])
        assert b.dtype == np.int32
        sx = numpy_helper.to_array(inits[xdq.input[1]])
        sw = numpy_helper.to_array(inits[wdq.input[1]])
        np.testing.assert_allclose(numpy_helper.to_array(inits[bdq.input[1]]), sx * sw, rtol=1e-6)
        if n.op_type == "Conv":
            # its output goes straight to a Q (the Relu folded, or an Add's input)
            consumers = [m for m in g.node if n.output[0] in m.input]
            assert [m.op_type for m in consumers] == ["QuantizeLinear"]
    # zero point 0 (full uint8 range) after a folded Relu; 128 for signed tensors (a conv output feeding an Add)
    zps = {n.input[0]: int(numpy_helper.to_array(inits[n.input[2]])) for n in g.node if n.op_type == "QuantizeLinear"}
    assert set(zps.values()) == {0, 128}
    for t, zp in zps.items():
        if producer.get(t) is not None and producer[t].op_type == "Conv":
            relu_folded = not any(m.op_type == "Add" for m in g.node for i in m.input if i.startswith(t))
            assert zp == (0 if relu_folded else 128), t


@pytest.mark.parametrize("arch", ["resnet20", "resnet18"])
def test_onnxruntime_turns_every_conv_and_add_into_int8_kernels(
    arch: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fp32 = request.getfixturevalue(f"{arch}_fp32")
    x = np.random.default_rng(1).random((16, *SHAPES[arch]), dtype=np.float32)
    q = quantize_ort(fp32, x)
    session(q, save=tmp_path / "opt.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    src = Counter(n.op_type for n in fp32.graph.node)
    assert ops["QLinearConv"] == src["Conv"], ops
    assert ops["QLinearAdd"] == src["Add"], ops
    assert ops["QGemm"] == src["Gemm"], ops
    assert ops["Conv"] == ops["Add"] == ops["Relu"] == ops["FusedConv"] == 0, ops


def test_int8_kernels_compute_what_the_qdq_graph_says(fmnist_images: np.ndarray) -> None:
    """ONNX Runtime's fused int8 kernels against the same Q/DQ graph run node by node in float. With full 8-bit
    weights this fails on x86 without VNNI (int16 saturation: 91 % agreement measured on this checkpoint)."""
    from resnet_deploy.build import export_onnx
    from resnet_deploy.models.bundled import bundled_checkpoints
    from resnet_deploy.models.weights import load_model

    if "fmnist_resnet50_small" not in bundled_checkpoints():
        pytest.skip("bundled checkpoint fmnist_resnet50_small is not installed")
    net, info = load_model(None, "fmnist_resnet50_small")
    fp32, _ = export_onnx(net, info)
    q = quantize_ort(fp32, fmnist_images[:128])
    x = fmnist_images[128:]
    fused = run(session(q), x).argmax(1)
    reference = run(session(q, optimize=False), x).argmax(1)
    assert (fused == reference).mean() >= 0.98


def test_agrees_with_fp32_on_real_images(resnet20_fp32: onnx.ModelProto, fmnist_images: np.ndarray) -> None:
    q = quantize_ort(resnet20_fp32, fmnist_images[:128])
    x = fmnist_images[128:]
    a = run(session(resnet20_fp32), x).argmax(1)
    b = run(session(q), x).argmax(1)
    assert (a == b).mean() >= 0.9


def test_keep_float_keeps_weights_bias_and_input_float(resnet20_fp32: onnx.ModelProto) -> None:
    named = name_nodes(resnet20_fp32)
    plan = plan_qdq(named, "onnxruntime")
    layer = plan.layers[3]
    amax = {t: 1.0 for t in plan.tensors}
    q, report = insert_qdq(named, plan, amax, frozenset({layer}))
    nodes = {n.name: n for n in q.graph.node}
    producer = {o: n for n in q.graph.node for o in n.output}
    inits = {t.name for t in q.graph.initializer}
    kept = nodes[layer]
    assert kept.input[1] in inits and kept.input[2] in inits  # float weight and bias
    assert producer[kept.input[0]].op_type == "Relu"  # the folded Relu is back, for this reader only
    assert Counter(n.op_type for n in q.graph.node)["Relu"] == 1
    assert [n.op_type for n in q.graph.node if kept.output[0] in n.input] == ["QuantizeLinear"]
    assert report.changes["layers_kept_float"] == 1
    assert report.changes["bias_int32"] == len(plan.layers) - 1
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    assert np.isfinite(run(session(q), x)).all()


def test_tensorrt_parser_rejects_it(resnet18_fp32: onnx.ModelProto, trt_build) -> None:  # type: ignore[no-untyped-def]
    """Why the TensorRT backend keeps its own placement (documented in precision/placement/onnxruntime.py)."""
    named = name_nodes(resnet18_fp32)
    plan = plan_qdq(named, "onnxruntime")
    q, _ = insert_qdq(named, plan, {t: 1.0 for t in plan.tensors})
    with pytest.raises(AssertionError, match="parser rejected"):
        trt_build(q)


def pool_pad_graph(pad_value: float) -> onnx.ModelProto:
    """c1 -> Relu -> MaxPool -> Pad(pad_value) -> c2 -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(np.full(shape, 0.1, np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], name="c1"),
        helper.make_node("Relu", ["y1"], ["a1"], name="r1"),
        helper.make_node("MaxPool", ["a1"], ["m"], name="pool", kernel_shape=[2, 2]),
        helper.make_node("Pad", ["m", "pads", "value"], ["pd"], name="pad"),
        helper.make_node("Conv", ["pd", "w2", "b2"], ["y2"], name="c2"),
        helper.make_node("Relu", ["y2"], ["a2"], name="r2"),
        helper.make_node("GlobalAveragePool", ["a2"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["logits"], name="gemm", transB=1),
    ]
    initializers = [
        weight("w1", 2, 1, 3, 3),
        weight("b1", 2),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array(pad_value, np.float32), "value"),
        weight("w2", 2, 2, 3, 3),
        weight("b2", 2),
        weight("wg", 3, 2),
        weight("bg", 3),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 12, 12])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("pad_value", [0.0, 1.0])
def test_per_op_rules_on_a_small_graph(pad_value: float) -> None:
    plan = plan_qdq(pool_pad_graph(pad_value), "onnxruntime")
    assert plan.layers == ["c1", "c2", "gemm"] and plan.weight_qmax == 64
    assert [(w.node, w.bias) for w in plan.weights] == [("c1", "b1"), ("c2", "b2"), ("gemm", "bg")]
    assert plan.relu_inputs == {"a1": "y1", "a2": "y2"}  # each Relu folds into its Conv's output Q
    sites = [(s.tensor, s.node, s.kind) for s in plan.activations]
    assert sites == [
        ("x", "c1", "conv"),
        ("a1", "pool", "other"),
        ("m", "pad", "other"),
        ("pd", "c2", "conv"),
        ("a2", "gap", "other"),
        ("p", "flatten", "other"),
        ("f", "gemm", "gemm"),  # the logits stay float: nothing reads a Gemm output Q
    ]
    if pad_value == 0.0:  # a zero pad keeps the range and the sign: one scale from the Relu to c2
        assert plan.tied == {"m": "a1", "pd": "m", "f": "p"}
        assert plan.unsigned == {"a1", "m", "pd", "a2", "p", "f"}
        assert plan.tensors == ["x", "a1", "a2", "p"]
    else:  # a non-zero pad value may leave the range: pd gets its own, signed
        assert plan.tied == {"m": "a1", "f": "p"}
        assert plan.unsigned == {"a1", "m", "a2", "p", "f"}
        assert plan.tensors == ["x", "a1", "pd", "a2", "p"]
