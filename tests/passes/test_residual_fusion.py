"""Residual Add+Relu fusion: counts on real ResNets, ONNX Runtime equality, idempotence, the Q/DQ INT8 pattern,
what must be left alone, and a real TensorRT-RTX parse + build of the fused graph (the function is inlined)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.build import export_onnx
from resnet_deploy.info import ModelInfo
from resnet_deploy.models.registry import build_model
from resnet_deploy.models.weights import randomize_batchnorm
from resnet_deploy.passes.residual_fusion import (
    PLUGIN_NAME,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
    count_fused,
    fuse_residual_add_relu,
    unfuse_residual_add_relu,
)


def _export(arch: str, seed: int) -> onnx.ModelProto:
    """A ResNet at 64x64 with random, non-trivial BatchNorm statistics (so folding and residual sums matter)."""
    torch.manual_seed(seed)
    model = randomize_batchnorm(build_model(arch, num_classes=1000), seed)
    proto, _ = export_onnx(model.eval(), ModelInfo(arch=arch, input_size=64))
    return proto


@pytest.fixture(scope="module")
def resnet18() -> onnx.ModelProto:
    return _export("resnet18", 0)


@pytest.fixture(scope="module")
def resnet50() -> onnx.ModelProto:
    return _export("resnet50", 1)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _input(batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(seed).standard_normal((batch, 3, 64, 64)).astype(np.float32)}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), [("resnet18", 8), ("resnet50", 16)])
def test_counts_and_onnxruntime_equality(name: str, expected: int, request: pytest.FixtureRequest) -> None:
    model: onnx.ModelProto = request.getfixturevalue(name)
    before = model.SerializeToString()
    fused, report = fuse_residual_add_relu(model)
    assert model.SerializeToString() == before, "the pass mutated its input"
    assert count_fused(fused) == expected
    assert report.changes["fused"] == expected and report.changes.get("skipped", 0) == 0
    assert not any(n.op_type == "Add" for n in fused.graph.node)  # every residual Add went (fc bias is in Gemm)
    onnx.checker.check_model(fused, full_check=True)

    node = next(n for n in fused.graph.node if n.op_type == PLUGIN_NAME)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == PLUGIN_NAMESPACE
    # The creator's fields ride on the node (0 = float I/O), so onnx-tensorrt's loadFields has nothing to warn about.
    assert attrs == {
        "plugin_namespace": PLUGIN_NAMESPACE.encode(),
        "plugin_version": PLUGIN_VERSION.encode(),
        "scale_a": 0.0,
        "scale_b": 0.0,
        "scale_y": 0.0,
    }
    assert {(f.domain, f.name) for f in fused.functions} == {(PLUGIN_NAMESPACE, PLUGIN_NAME)}
    assert any(i.domain == PLUGIN_NAMESPACE and i.version == 1 for i in fused.opset_import)

    feeds = _input(batch=3)
    (want,), (got,) = _run(model, feeds), _run(fused, feeds)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


@pytest.mark.slow
def test_idempotent_and_unfuse_restores(resnet18: onnx.ModelProto) -> None:
    fused, _ = fuse_residual_add_relu(resnet18)
    again, report = fuse_residual_add_relu(fused)
    assert not report.changed
    assert again.SerializeToString() == fused.SerializeToString()

    unfused, back = unfuse_residual_add_relu(fused)
    assert back.changes["unfused"] == 8 and count_fused(unfused) == 0
    assert not unfused.functions and all(i.domain != PLUGIN_NAMESPACE for i in unfused.opset_import)
    assert [n.op_type for n in unfused.graph.node] == [n.op_type for n in resnet18.graph.node]
    onnx.checker.check_model(unfused, full_check=True)
    feeds = _input(seed=3)
    np.testing.assert_array_equal(_run(unfused, feeds)[0], _run(resnet18, feeds)[0])
    assert not unfuse_residual_add_relu(unfused)[1].changed


@pytest.mark.slow
def test_aot_attribute_is_declared(resnet18: onnx.ModelProto) -> None:
    fused, _ = fuse_residual_add_relu(resnet18, aot=True)
    node = next(n for n in fused.graph.node if n.op_type == PLUGIN_NAME)
    assert {a.name: helper.get_attribute_value(a) for a in node.attribute}["aot"] == 1
    onnx.checker.check_model(fused, full_check=True)
    feeds = _input(seed=4)
    np.testing.assert_array_equal(_run(fused, feeds)[0], _run(resnet18, feeds)[0])


# --- small hand-built graphs: what is fused and what is left alone ---------------------------------------------------


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _vi(name: str, shape: list, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def test_left_alone_with_reasons() -> None:
    shape = ["N", 4, 5, 5]
    bias = numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32), "bias")
    nodes = [
        helper.make_node("Add", ["x", "bias"], ["s1"], name="bias_add"),  # constant input
        helper.make_node("Relu", ["s1"], ["r1"]),
        helper.make_node("Add", ["r1", "z"], ["s2"], name="broadcast_add"),  # (N,4,5,5) + (1,4,1,1)
        helper.make_node("Relu", ["s2"], ["r2"]),
        helper.make_node("Add", ["r2", "x"], ["s3"], name="shared_add"),  # s3 is also a graph output
        helper.make_node("Relu", ["s3"], ["r3"]),
        helper.make_node("Add", ["x", "x"], ["s4"], name="plain_add"),  # no Relu after it: not a candidate
    ]
    model = _model(
        nodes,
        [_vi("x", shape), _vi("z", [1, 4, 1, 1])],
        [_vi("r3", shape), _vi("s3", shape), _vi("s4", shape)],
        [bias],
    )
    fused, report = fuse_residual_add_relu(model)
    assert count_fused(fused) == 0 and report.changes == {"skipped": 3}
    notes = "\n".join(report.notes)
    assert "bias_add: an Add input is a constant" in notes
    assert "broadcast_add: the Add inputs are not provably the same shape" in notes
    assert "shared_add: the Add output has other uses" in notes
    assert "plain_add" not in notes
    assert not fused.functions  # nothing fused: the model stays as it was
    assert fused.SerializeToString() == model.SerializeToString()


def test_fp16_fused_and_int_left() -> None:
    shape = [2, 3]
    half = _model(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        [_vi("a", shape, TensorProto.FLOAT16), _vi("b", shape, TensorProto.FLOAT16)],
        [_vi("y", shape, TensorProto.FLOAT16)],
    )
    fused, _ = fuse_residual_add_relu(half)
    assert count_fused(fused) == 1
    a = np.array([[1, -2, 3], [0.5, -0.25, 6e4]], np.float16)
    b = np.array([[-2, 1, 3], [0.25, 0.5, 6e4]], np.float16)
    (got,) = _run(fused, {"a": a, "b": b})
    with np.errstate(over="ignore"):
        want = np.maximum(a + b, np.float16(0))  # includes overflow to inf
    np.testing.assert_array_equal(got, want)

    ints = _model(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        [_vi("a", shape, TensorProto.INT32), _vi("b", shape, TensorProto.INT32)],
        [_vi("y", shape, TensorProto.INT32)],
    )
    fused, report = fuse_residual_add_relu(ints)
    assert count_fused(fused) == 0 and "not both float32 or both float16" in report.notes[0]


def test_int8_qdq_pattern_keeps_qdq_around_the_plugin() -> None:
    """Q/DQ residual join as placed for TensorRT: the identity input arrives through Q -> DQ, the result is
    quantized again; the plugin replaces only Add+Relu and the int8 output matches the unfused graph."""
    shape = ["N", 8, 4, 4]
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    out_scale = numpy_helper.from_array(np.array(0.07, np.float32), "so")
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 8, 1, 1)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("QuantizeLinear", ["x", "s"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s"], ["xdq"]),
        helper.make_node("Add", ["c", "xdq"], ["sum"]),
        helper.make_node("Relu", ["sum"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "so"], ["rq"]),
        helper.make_node("DequantizeLinear", ["rq", "so"], ["y"]),
    ]
    model = _model(nodes, [_vi("x", shape)], [_vi("y", shape)], [scale, out_scale, w])
    fused, report = fuse_residual_add_relu(model)
    assert report.changes == {"fused": 1, "fused_after_dequantize": 1, "functions_added": 1}
    ops = [n.op_type for n in fused.graph.node]
    assert ops == ["Conv", "QuantizeLinear", "DequantizeLinear", PLUGIN_NAME, "QuantizeLinear", "DequantizeLinear"]
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 8, 4, 4)).astype(np.float32)}
    np.testing.assert_array_equal(_run(fused, feeds)[0], _run(model, feeds)[0])


def test_weights_through_dequantize_are_constants() -> None:
    """An Add of an activation and a dequantized initializer is a bias add, not a residual join."""
    shape = [1, 4]
    wq = numpy_helper.from_array(np.ones(shape, np.int8), "wq")
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "s"], ["w"]),
        helper.make_node("Add", ["x", "w"], ["sum"], name="deq_bias"),
        helper.make_node("Relu", ["sum"], ["y"]),
    ]
    model = _model(nodes, [_vi("x", shape)], [_vi("y", shape)], [wq, s])
    fused, report = fuse_residual_add_relu(model)
    assert count_fused(fused) == 0 and "deq_bias: an Add input is a constant" in report.notes[0]


def test_conflicting_function_is_refused() -> None:
    from resnet_deploy.errors import UserError

    shape = [2]
    model = _model(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        [_vi("a", shape), _vi("b", shape)],
        [_vi("y", shape)],
    )
    model.functions.append(
        helper.make_function(
            PLUGIN_NAMESPACE,
            PLUGIN_NAME,
            ["A", "B"],
            ["Y"],
            [helper.make_node("Sub", ["A", "B"], ["Y"])],
            [helper.make_opsetid("", 17)],
        )
    )
    with pytest.raises(UserError, match="different function"):
        fuse_residual_add_relu(model)


# --- TensorRT-RTX: the fused graph parses (function inlined, no plugin registered) and builds ----------------------


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), [("resnet18", 8), ("resnet50", 16)])
def test_tensorrt_rtx_parses_and_builds_fused(name: str, expected: int, request: pytest.FixtureRequest) -> None:
    trt = pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed")
    fused, _ = fuse_residual_add_relu(request.getfixturevalue(name))
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(fused.SerializeToString())
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    assert ok, errors
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    # The parser inlines the local function: an elementwise sum and a ReLU per fused node, tagged with its name.
    inlined = sorted(str(layer.type) for layer in layers if PLUGIN_NAME in getattr(layer, "metadata", ""))
    assert inlined == ["LayerType.ACTIVATION"] * expected + ["LayerType.ELEMENTWISE"] * expected
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    assert engine is not None and engine.nbytes > 0


# --- the node form per TensorRT version (issue #13 item 2) ----------------------------------------------------------


def _fused_pair() -> onnx.ModelProto:
    shape = [2, 3]
    model = _model(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        [_vi("a", shape), _vi("b", shape)],
        [_vi("y", shape)],
    )
    fused, _ = fuse_residual_add_relu(model)
    return fused


def test_for_tensorrt_drops_the_local_function_before_10_7_only() -> None:
    """onnx-tensorrt 10.1's ModelImporter tries a node's local function before the plugin registry, so graphs for
    TensorRT < 10.7 (JetPack 6: 10.3) lose the function; from 10.7 the parser prefers a registered plugin."""
    from resnet_deploy.passes.residual_fusion import for_tensorrt

    fused = _fused_pair()
    before = fused.SerializeToString()
    for version, has_function in [("10.0.1.6", False), ("10.3.0.30", False), ("10.6.0", False), ("10.7.0.23", True)]:
        form = for_tensorrt(fused, version)
        assert bool(form.functions) is has_function, version
        assert count_fused(form) == 1
    assert fused.SerializeToString() == before  # pure
    assert len(for_tensorrt(fused, "11.4.0.106").functions) == 1
    aot = for_tensorrt(fused, "10.9.0.34", aot=True)
    attrs = {a.name: helper.get_attribute_value(a) for a in aot.graph.node[0].attribute}
    assert attrs["aot"] == 1 and attrs["scale_y"] == 0.0
    assert for_tensorrt(for_tensorrt(fused, "10.9", aot=False), "10.9", aot=True).graph.node[0].attribute[-1].i == 1
    plain = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1])], [_vi("y", [1])])
    assert for_tensorrt(plain, "10.3") is plain  # no plugin node: nothing to do


def test_scale_fields_are_declared_and_run_on_onnxruntime() -> None:
    fused = _fused_pair()
    onnx.checker.check_model(fused, full_check=True)
    assert {"scale_a", "scale_b", "scale_y"} <= set(fused.functions[0].attribute)
    a = np.array([[1, -2, 3], [0.5, -0.25, 2]], np.float32)
    (got,) = _run(fused, {"a": a, "b": -a / 2})
    np.testing.assert_array_equal(got, np.maximum(a - a / 2, 0))
