"""The Q/DQ pass on a hand-built residual block with hand-written plans: what goes where, in which order, under which
names; kept layers in FP32 and FP16; folded Relus; refusals. Every graph also runs on ONNX Runtime."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.errors import UserError
from resnet_deploy.passes.qdq import ActivationSite, QuantPlan, WeightSite, insert_qdq

C = 4


def block(opset: int = 17) -> onnx.ModelProto:
    """x -> c1 -> y1 -> Relu -> a1 -> c2 -> y2; Add(y2, a1) -> Relu -> GlobalAveragePool -> Flatten -> gemm."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y1"], ["a1"], name="r1"),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["y2"], name="c2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["y2", "a1"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r2"], name="r2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["logits"], name="gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [init("w1", C, 2, 3, 3), init("b1", C), init("w2", C, C, 3, 3), init("b2", C), init("wg", 3, C), init("bg", 3)],
        value_info=[helper.make_tensor_value_info("a1", TensorProto.FLOAT, ["N", C, 6, 6])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


WEIGHTS = [WeightSite("c1", "w1", 0), WeightSite("c2", "w2", 0), WeightSite("gemm", "wg", 0)]
LAYERS = ["c1", "c2", "gemm"]


def int8_plan() -> QuantPlan:
    """TensorRT-style: layer inputs, the residual's identity input (fused with c2), nothing on biases."""
    return QuantPlan(
        activations=[
            ActivationSite("x", "c1", 0, "conv"),
            ActivationSite("a1", "c2", 0, "conv"),
            ActivationSite("a1", "add", 1, "residual", "c2"),
            ActivationSite("f", "gemm", 0, "gemm"),
        ],
        weights=list(WEIGHTS),
        layers=list(LAYERS),
        placement="test_int8",
    )


def uint8_plan() -> QuantPlan:
    """ONNX Runtime-style: int32 biases on the convs, r1 folded into a1's Q (a1 is unsigned), 7-bit weights."""
    return QuantPlan(
        activations=[
            ActivationSite("x", "c1", 0, "conv"),
            ActivationSite("a1", "c2", 0, "conv"),
            ActivationSite("a1", "add", 1, "other"),
        ],
        weights=[WeightSite("c1", "w1", 0, "b1"), WeightSite("c2", "w2", 0, "b2")],
        layers=["c1", "c2"],
        placement="test_uint8",
        activation_dtype="uint8",
        unsigned={"a1"},
        relu_inputs={"a1": "y1"},
        weight_qmax=64,
    )


AMAX = {"x": 3.2, "a1": 6.8, "f": 2.9}  # the float graph's max |value| on X
X = np.random.default_rng(1).normal(size=(5, 2, 6, 6)).astype(np.float32)


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_sites_order_and_names() -> None:
    q, report = insert_qdq(block(), int8_plan(), AMAX)
    g = q.graph
    assert [(n.op_type, n.name) for n in g.node] == [
        ("QuantizeLinear", "x_QuantizeLinear"),  # right after the tensor is produced (a graph input here)
        ("DequantizeLinear", "c1/weight_DequantizeLinear"),  # weight DQs first, then the activation DQs
        ("DequantizeLinear", "x_dequantized_0_DequantizeLinear"),
        ("Conv", "c1"),
        ("Relu", "r1"),
        ("QuantizeLinear", "a1_QuantizeLinear"),  # one Q for a tensor with two quantized readers...
        ("DequantizeLinear", "c2/weight_DequantizeLinear"),
        ("DequantizeLinear", "a1_dequantized_0_DequantizeLinear"),  # ... and one DQ per reader
        ("Conv", "c2"),
        ("DequantizeLinear", "a1_dequantized_1_DequantizeLinear"),
        ("Add", "add"),
        ("Relu", "r2"),
        ("GlobalAveragePool", "pool"),
        ("Flatten", "flatten"),
        ("QuantizeLinear", "f_QuantizeLinear"),
        ("DequantizeLinear", "gemm/weight_DequantizeLinear"),
        ("DequantizeLinear", "f_dequantized_0_DequantizeLinear"),
        ("Gemm", "gemm"),
    ]
    assert [t.name for t in g.initializer] == [
        "b1", "b2", "bg",  # the float weights went, the biases stay (the plan names none)
        "c1/weight_int8", "c1/weight_scale", "c1/weight_zero_point",
        "c2/weight_int8", "c2/weight_scale", "c2/weight_zero_point",
        "gemm/weight_int8", "gemm/weight_scale", "gemm/weight_zero_point",
        "x_scale", "x_zero_point", "a1_scale", "a1_zero_point", "f_scale", "f_zero_point",
    ]  # fmt: skip
    add = next(n for n in g.node if n.op_type == "Add")
    assert list(add.input) == ["y2", "a1_dequantized_1"]
    assert report.changes == {"weight_qdq": 3, "activation_q": 3, "activation_dq": 3, "residual_qdq": 1}
    assert report.notes == ["placement: test_int8"]


def test_encodings_in_the_graph() -> None:
    q, _ = insert_qdq(block(), int8_plan(), AMAX)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    assert inits["a1_scale"] == pytest.approx(6.8 / 127) and inits["a1_zero_point"].dtype == np.int8
    w = inits["c2/weight_int8"]
    assert w.dtype == np.int8 and np.abs(w).max() == 127 and inits["c2/weight_scale"].shape == (C,)
    assert not inits["c2/weight_zero_point"].any() and inits["c2/weight_zero_point"].dtype == np.int8
    gemm_dq = next(n for n in q.graph.node if n.name == "gemm/weight_DequantizeLinear")
    assert next(a.i for a in gemm_dq.attribute if a.name == "axis") == 0


def test_runs_close_to_float_and_is_pure_and_deterministic() -> None:
    model = block()
    before = model.SerializeToString()
    q, _ = insert_qdq(model, int8_plan(), AMAX)
    assert model.SerializeToString() == before
    assert insert_qdq(model, int8_plan(), AMAX)[0].SerializeToString() == q.SerializeToString()
    ref = OnnxRuntimeModel(model).predict(X)
    out = OnnxRuntimeModel(q).predict(X)
    assert np.abs(out - ref).max() < 0.02 * np.abs(ref).max()


def test_int32_biases_and_folded_relu() -> None:
    model = block()
    q, report = insert_qdq(model, uint8_plan(), AMAX)
    g = q.graph
    nodes = {n.name: n for n in g.node}
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    assert "r1" not in nodes and report.changes["relu_folded"] == 1
    assert list(nodes["a1_QuantizeLinear"].input[:1]) == ["y1"]  # the Q reads the Relu's input and clamps at 0
    assert inits["a1_zero_point"].dtype == np.uint8 and int(inits["a1_zero_point"]) == 0
    assert inits["a1_scale"] == pytest.approx(6.8 / 255)
    assert int(inits["x_zero_point"]) == 128 and inits["x_scale"] == pytest.approx(3.2 / 127)
    assert np.abs(inits["c2/weight_int8"]).max() == 64
    bias = inits["c2/bias_int32"]
    assert bias.dtype == np.int32 and report.changes["bias_int32"] == 2
    np.testing.assert_allclose(inits["c2/bias_scale"], inits["a1_scale"] * inits["c2/weight_scale"], rtol=1e-6)
    assert "a1" not in {v.name for v in g.value_info}  # the folded Relu's output is gone
    ref = OnnxRuntimeModel(model).predict(X)
    out = OnnxRuntimeModel(q).predict(X)
    assert np.abs(out - ref).max() < 0.02 * np.abs(ref).max()


def test_keep_float_removes_the_layer_and_its_fused_residual_site() -> None:
    q, report = insert_qdq(block(), int8_plan(), AMAX, frozenset({"c2"}))
    nodes = {n.name: n for n in q.graph.node}
    assert list(nodes["c2"].input) == ["a1", "w2", "b2"]  # float input, float weights
    assert list(nodes["add"].input) == ["y2", "a1"]  # the residual site was c2's
    assert "a1_QuantizeLinear" not in nodes
    assert report.changes["layers_kept_float"] == 1 and report.notes[-1] == "kept in float: c2"
    assert np.isfinite(OnnxRuntimeModel(q).predict(X)).all()


def test_kept_reader_brings_a_folded_relu_back() -> None:
    q, report = insert_qdq(block(), uint8_plan(), AMAX, frozenset({"c2"}))
    nodes = {n.name: n for n in q.graph.node}
    assert "r1" in nodes and "relu_folded" not in report.changes
    assert nodes["c2"].input[0] == "a1" and nodes["add"].input[1] == "a1_dequantized_0"
    assert "c2/bias_int32" not in {t.name for t in q.graph.initializer}  # a kept layer's bias stays float
    assert np.isfinite(OnnxRuntimeModel(q).predict(X)).all()


def test_kept_layer_in_fp16() -> None:
    q, report = insert_qdq(block(), int8_plan(), AMAX, frozenset({"c2", "gemm"}), "fp16")
    g = q.graph
    inits = {t.name: t for t in g.initializer}
    nodes = {n.name: n for n in g.node}
    assert report.changes["layers_kept_fp16"] == 2
    assert list(nodes["c2"].input) == ["c2/input_fp16", "c2/input1_fp16", "c2/input2_fp16"]
    assert inits["c2/input1_fp16"].data_type == TensorProto.FLOAT16
    assert list(nodes["c2"].output) == ["c2/output_fp16"]
    order = [n.name for n in g.node]
    i = order.index("c2")
    assert order[i - 1] == "c2/Cast_to_fp16" and order[i + 1] == "c2/Cast_to_fp32"
    assert nodes["c2/Cast_to_fp32"].output[0] == "y2" and ops(q).count("Cast") == 4
    ref = OnnxRuntimeModel(block()).predict(X)
    assert np.abs(OnnxRuntimeModel(q).predict(X) - ref).max() < 0.02 * np.abs(ref).max()


def test_every_layer_kept_leaves_no_qdq() -> None:
    q, _ = insert_qdq(block(), int8_plan(), AMAX, frozenset(LAYERS), "fp16")
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(ops(q))
    ref = OnnxRuntimeModel(block()).predict(X)
    assert np.abs(OnnxRuntimeModel(q).predict(X) - ref).max() < 1e-2 * np.abs(ref).max()


def test_refusals() -> None:
    with pytest.raises(UserError, match="unknown dtype 'bf16'"):
        insert_qdq(block(), int8_plan(), AMAX, frozenset({"c2"}), "bf16")
    with pytest.raises(UserError, match="opset >= 13"):
        insert_qdq(block(opset=12), int8_plan(), AMAX)
    with pytest.raises(UserError, match="unknown layer"):
        insert_qdq(block(), int8_plan(), AMAX, frozenset({"nope"}))
    with pytest.raises(UserError, match="no calibration range for tensor 'a1'"):
        insert_qdq(block(), int8_plan(), {"x": 1.0, "f": 1.0})
    plan = int8_plan()
    plan.activations.append(ActivationSite("missing", "add", 0, "other"))
    with pytest.raises(UserError, match="not produced in the graph: missing"):
        insert_qdq(block(), plan, {**AMAX, "missing": 1.0})


def test_counts_one_q_per_tensor_and_one_dq_per_reader() -> None:
    q, _ = insert_qdq(block(), int8_plan(), AMAX)
    counts = Counter(ops(q))
    assert counts["QuantizeLinear"] == 3 and counts["DequantizeLinear"] == 4 + 3
