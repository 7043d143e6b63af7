"""FP16 pass: float16 weights and activations, float32 edges by default, clamping, fp32 islands, TensorRT build."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.build import export_onnx
from resnet_deploy.errors import UserError
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import NormalizedModel, build_model
from resnet_deploy.passes.fp16 import FP16_MAX, layer_in_fp16, to_fp16


@pytest.fixture(scope="module")
def resnet20() -> onnx.ModelProto:
    import torch

    torch.manual_seed(0)
    info = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353])
    net = NormalizedModel(build_model("resnet20", 10, 1), [0.286], [0.353]).eval()
    return export_onnx(net, info)[0]


def _elem_type(vi: onnx.ValueInfoProto) -> int:
    return vi.type.tensor_type.elem_type


def test_fp32_io(resnet20: onnx.ModelProto) -> None:
    before = resnet20.SerializeToString()
    m, report = to_fp16(resnet20)
    assert resnet20.SerializeToString() == before  # pure
    assert _elem_type(m.graph.input[0]) == TensorProto.FLOAT and _elem_type(m.graph.output[0]) == TensorProto.FLOAT
    assert m.graph.input[0].name == "input" and m.graph.output[0].name == "logits"
    assert not any(t.data_type == TensorProto.FLOAT for t in m.graph.initializer)
    conv_weights = {n.input[1] for n in m.graph.node if n.op_type == "Conv"}
    assert all(t.data_type == TensorProto.FLOAT16 for t in m.graph.initializer if t.name in conv_weights)
    assert m.graph.node[0].op_type == "Cast" and m.graph.node[-1].op_type == "Cast"
    assert report.changes["edge_casts"] == 2 and report.changes.get("values_clamped", 0) == 0
    x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    a = OnnxRuntimeModel(resnet20).predict(x)
    b = OnnxRuntimeModel(m).predict(x)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, atol=2e-2 * float(np.abs(a).max()))
    # every tensor of the converted graph is float16 except the two edges
    inferred = onnx.shape_inference.infer_shapes(m).graph
    floats32 = [v.name for v in inferred.value_info if _elem_type(v) == TensorProto.FLOAT]
    assert floats32 == []


def test_fp16_io(resnet20: onnx.ModelProto) -> None:
    m, report = to_fp16(resnet20, io_dtype="fp16")
    assert _elem_type(m.graph.input[0]) == TensorProto.FLOAT16
    assert _elem_type(m.graph.output[0]) == TensorProto.FLOAT16
    assert "edge_casts" not in report.changes
    model = OnnxRuntimeModel(m)
    assert model.input_dtype == np.float16
    out = model.predict(np.random.default_rng(0).random((4, 1, 28, 28)).astype(np.float16))
    assert out.dtype == np.float16 and np.isfinite(out).all()


def _tiny(bias: np.ndarray, op: str = "Relu") -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    b = numpy_helper.from_array(bias.astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node(op, ["c"], ["y"])]
    g = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 2, 2])],
        [w, b],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_out_of_range_initializers_are_clamped_not_inf() -> None:
    m, report = to_fp16(_tiny(np.array([1e6, -7e4])))
    assert report.changes["values_clamped"] == 2
    b = numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == "b"))
    assert b.dtype == np.float16 and np.isfinite(b).all()
    assert list(b) == [FP16_MAX, -FP16_MAX]
    out = OnnxRuntimeModel(m).predict(np.zeros((1, 1, 2, 2), np.float32))
    assert np.isfinite(out).all()


def test_ops_outside_the_safe_list_stay_float32() -> None:
    m, report = to_fp16(_tiny(np.zeros(2), op="Erf"))
    assert report.changes["nodes_kept_fp32"] == 1
    erf = next(n for n in m.graph.node if n.op_type == "Erf")
    producer = {o: n for n in m.graph.node for o in n.output}
    cast_in = producer[erf.input[0]]
    assert cast_in.op_type == "Cast" and cast_in.attribute[0].i == TensorProto.FLOAT
    x = np.random.default_rng(1).random((2, 1, 2, 2), dtype=np.float32)
    from math import erf as _erf

    want = np.vectorize(_erf)(x.repeat(2, axis=1))
    np.testing.assert_allclose(OnnxRuntimeModel(m).predict(x), want, atol=2e-3)
    m2, report2 = to_fp16(_tiny(np.zeros(2)), keep_fp32_ops=frozenset({"Relu"}))
    assert report2.changes["nodes_kept_fp32"] == 1


def test_refuses_quantized_graphs_and_bad_io() -> None:
    with pytest.raises(UserError, match="io dtype"):
        to_fp16(_tiny(np.zeros(2)), io_dtype="bf16")
    q = _tiny(np.zeros(2))
    q.graph.node.insert(0, helper.make_node("QuantizeLinear", ["x", "s"], ["xq"]))
    with pytest.raises(UserError, match="already quantized"):
        to_fp16(q)


def test_one_layer_in_fp16_inside_a_float32_graph() -> None:
    model = _tiny(np.array([1e6, 0.5]))
    g = model.graph
    conv = g.node[0]
    conv.name = "conv"
    layer = layer_in_fp16(conv, {t.name: t for t in g.initializer})
    assert list(conv.input) == ["conv/input_fp16", "conv/input1_fp16", "conv/input2_fp16"]
    assert list(conv.output) == ["conv/output_fp16"]
    assert [t.name for t in layer.initializers] == ["conv/input1_fp16", "conv/input2_fp16"]
    bias = numpy_helper.to_array(layer.initializers[1])
    assert bias.dtype == np.float16 and list(bias) == [FP16_MAX, 0.5]  # clamped, not inf
    assert (list(layer.cast_in.input), list(layer.cast_in.output)) == (["x"], ["conv/input_fp16"])
    assert (list(layer.cast_out.input), list(layer.cast_out.output)) == (["conv/output_fp16"], ["c"])
    nodes = [layer.cast_in, conv, layer.cast_out, g.node[1]]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(layer.initializers)
    onnx.checker.check_model(model)
    x = np.random.default_rng(2).random((2, 1, 2, 2), dtype=np.float32)
    out = OnnxRuntimeModel(model).predict(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 1], np.maximum(x[:, 0] + 0.5, 0), rtol=1e-3)


@pytest.mark.parametrize("io", ["fp32", "fp16"])
def test_tensorrt_parses_and_builds_fp16(resnet20: onnx.ModelProto, io: str, trt: Any) -> None:
    m, _ = to_fp16(resnet20, io_dtype=io)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(m.SerializeToString()), [parser.get_error(i).desc() for i in range(parser.num_errors)]
    want = trt.DataType.FLOAT if io == "fp32" else trt.DataType.HALF
    assert network.get_input(0).dtype == want and network.get_output(0).dtype == want
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 1, 28, 28), (4, 1, 28, 28), (4, 1, 28, 28))
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is not None
