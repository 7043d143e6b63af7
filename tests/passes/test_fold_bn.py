"""BatchNorm folding on graphs the exporter did not fold: counts, numerics, idempotence, purity, refusals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.errors import UserError
from resnet_deploy.export import torch_to_onnx
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.passes.fold_bn import fold_batchnorm

C_IN, C_OUT, HW = 3, 4, 6


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # ORT would fuse BN itself
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})  # type: ignore[no-any-return]


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    scale = float(np.abs(b).max())
    assert float(np.abs(a - b).max()) <= 1e-5 * max(scale, 1.0)


@pytest.fixture(scope="module")
def raw_resnet20(randomize_bn: Callable[..., torch.nn.Module]) -> onnx.ModelProto:
    """Straight from torch.onnx.export with TrainingMode.PRESERVE: 19 BatchNormalization nodes, no onnxsim."""
    net = randomize_bn(build_model("resnet20", 10), seed=4).eval()
    model = torch_to_onnx(net, ModelInfo(arch="resnet20", num_classes=10, input_size=32))
    assert ops(model).count("BatchNormalization") == 19
    return model


def test_folds_an_unfolded_export(raw_resnet20: onnx.ModelProto) -> None:
    before = raw_resnet20.SerializeToString()
    folded, report = fold_batchnorm(raw_resnet20)
    assert raw_resnet20.SerializeToString() == before, "the pass mutated its input"
    assert report.name == "fold_batchnorm" and report.changes == {"batchnorm_folded": 19} and report.notes == []
    assert "BatchNormalization" not in ops(folded)
    assert ops(folded).count("Conv") == 19
    onnx.checker.check_model(folded, full_check=True)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32), dtype=np.float32)
    assert_close(run(folded, x)[0], run(raw_resnet20, x)[0])
    # no orphan weights left behind: every BN parameter is gone, every initializer is used
    used = {i for n in folded.graph.node for i in n.input}
    assert all(t.name in used for t in folded.graph.initializer)
    assert len(folded.graph.initializer) < len(raw_resnet20.graph.initializer)


def test_idempotent(raw_resnet20: onnx.ModelProto) -> None:
    once, _ = fold_batchnorm(raw_resnet20)
    twice, report = fold_batchnorm(once)
    assert report.changes.get("batchnorm_folded", 0) == 0 and not report.changed
    assert twice.SerializeToString() == once.SerializeToString()


# ---------------------------------------------------------------- hand-built graphs


def _bn_params(rng: np.random.Generator, prefix: str = "bn") -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, C_OUT).astype(np.float32), f"{prefix}_scale"),
        numpy_helper.from_array(rng.normal(0, 0.2, C_OUT).astype(np.float32), f"{prefix}_b"),
        numpy_helper.from_array(rng.normal(0, 0.3, C_OUT).astype(np.float32), f"{prefix}_mean"),
        numpy_helper.from_array(rng.uniform(0.3, 2.0, C_OUT).astype(np.float32), f"{prefix}_var"),
    ]


def make_graph(
    *,
    conv_bias: bool = False,
    epsilon: float = 1e-5,
    extra_consumer: bool = False,
    conv_is_output: bool = False,
    bn_after_relu: bool = False,
    scale_is_input: bool = False,
    shared_weight: bool = False,
    training_mode: bool = False,
) -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (C_OUT, C_IN, 3, 3)).astype(np.float32), "w")]
    conv_inputs = ["x", "w"]
    if conv_bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, C_OUT).astype(np.float32), "cb"))
        conv_inputs.append("cb")
    inits += _bn_params(rng)
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], name="conv", pads=[1, 1, 1, 1])]
    bn_in = "c"
    if bn_after_relu:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        bn_in = "r"
    bn_inputs = [bn_in, "bn_scale", "bn_b", "bn_mean", "bn_var"]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C_IN, HW, HW])]
    if scale_is_input:
        inits = [t for t in inits if t.name != "bn_scale"]
        inputs.append(helper.make_tensor_value_info("bn_scale", TensorProto.FLOAT, [C_OUT]))
    attrs = {"epsilon": epsilon}
    if training_mode:
        attrs["training_mode"] = 1
    nodes.append(helper.make_node("BatchNormalization", bn_inputs, ["y"], name="bn", **attrs))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", C_OUT, HW, HW])]
    if extra_consumer:
        nodes.append(helper.make_node("Relu", ["c"], ["z"], name="other"))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", C_OUT, HW, HW]))
    if conv_is_output:
        outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", C_OUT, HW, HW]))
    if shared_weight:
        inits += _bn_params(rng, "bn2")
        nodes.append(helper.make_node("Conv", ["x", "w"], ["c2"], name="conv2", pads=[1, 1, 1, 1]))
        nodes.append(
            helper.make_node("BatchNormalization", ["c2", "bn2_scale", "bn2_b", "bn2_mean", "bn2_var"], ["y2"])
        )
        outputs.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["N", C_OUT, HW, HW]))
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference_fold(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    """Folded (weight, bias) computed here independently, in float64."""
    t = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    eps = next(a.f for n in model.graph.node if n.op_type == "BatchNormalization" for a in n.attribute)
    factor = t["bn_scale"] / np.sqrt(t["bn_var"] + eps)
    bias = t.get("cb", np.zeros(C_OUT))
    return t["w"] * factor[:, None, None, None], (bias - t["bn_mean"]) * factor + t["bn_b"]


@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("epsilon", [1e-5, 1e-3])
def test_folds_conv_bn(conv_bias: bool, epsilon: float) -> None:
    model = make_graph(conv_bias=conv_bias, epsilon=epsilon)
    before = model.SerializeToString()
    folded, report = fold_batchnorm(model)
    assert model.SerializeToString() == before
    assert report.changes == {"batchnorm_folded": 1}
    assert ops(folded) == ["Conv"]
    (conv,) = folded.graph.node
    assert conv.output[0] == "y" and len(conv.input) == 3
    t = {i.name: numpy_helper.to_array(i) for i in folded.graph.initializer}
    want_w, want_b = reference_fold(model)
    np.testing.assert_allclose(t[conv.input[1]], want_w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(t[conv.input[2]], want_b, rtol=1e-6, atol=1e-7)
    onnx.checker.check_model(folded, full_check=True)
    x = np.random.default_rng(1).standard_normal((2, C_IN, HW, HW), dtype=np.float32)
    assert_close(run(folded, x)[0], run(model, x)[0])


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"extra_consumer": True}, "Conv output has other consumers"),
        ({"conv_is_output": True}, "Conv output has other consumers"),
        ({"bn_after_relu": True}, "input is not a Conv"),
        ({"scale_is_input": True}, "parameters are not initializers"),
        ({"shared_weight": True}, "Conv weights are shared"),
    ],
)
def test_leaves_what_it_cannot_fold(kwargs: dict[str, bool], why: str) -> None:
    model = make_graph(**kwargs)
    folded, report = fold_batchnorm(model)
    n_bn = ops(model).count("BatchNormalization")
    assert ops(folded).count("BatchNormalization") == n_bn
    assert report.changes.get("batchnorm_folded", 0) == 0
    assert len(report.notes) == n_bn and all(why in note for note in report.notes)
    assert folded.SerializeToString() == model.SerializeToString()  # untouched, still valid


def test_training_mode_batchnorm_is_left() -> None:
    model = make_graph(training_mode=True)
    folded, report = fold_batchnorm(model)
    assert ops(folded).count("BatchNormalization") == 1 and "training-mode" in report.notes[0]


def test_folds_one_and_leaves_the_other() -> None:
    """A BN whose Conv output has two consumers stays; an independent foldable BN in the same graph folds."""
    model = make_graph(extra_consumer=True)
    rng = np.random.default_rng(3)
    g = model.graph
    g.initializer.append(numpy_helper.from_array(rng.normal(0, 0.5, (C_OUT, C_IN, 1, 1)).astype(np.float32), "w3"))
    g.initializer.extend(_bn_params(rng, "bn3"))
    g.node.append(helper.make_node("Conv", ["x", "w3"], ["c3"], name="conv3"))
    g.node.append(helper.make_node("BatchNormalization", ["c3", "bn3_scale", "bn3_b", "bn3_mean", "bn3_var"], ["y3"]))
    g.output.append(helper.make_tensor_value_info("y3", TensorProto.FLOAT, ["N", C_OUT, HW, HW]))
    onnx.checker.check_model(model)
    folded, report = fold_batchnorm(model)
    assert report.changes == {"batchnorm_folded": 1} and len(report.notes) == 1 and "bn" in report.notes[0]
    assert ops(folded).count("BatchNormalization") == 1
    x = np.random.default_rng(1).standard_normal((2, C_IN, HW, HW), dtype=np.float32)
    for a, b in zip(run(folded, x), run(model, x), strict=True):
        assert_close(a, b)


def _with_params(model: onnx.ModelProto, **values: float) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for name, value in values.items():
        t = next(i for i in model.graph.initializer if i.name == name)
        t.CopyFrom(numpy_helper.from_array(np.full(tuple(t.dims), value, np.float32), name))
    return model


@pytest.mark.parametrize(
    "values,match",
    [
        ({"bn_var": -1.0}, "'bn' has variance \\+ epsilon -1, not positive"),  # sqrt would be NaN
        ({"bn_var": float("nan")}, "'bn' has variance \\+ epsilon nan"),
        ({"bn_scale": 3e38, "bn_var": 0.01}, "folding BatchNormalization 'bn' into its Conv gives NaN or infinite"),
        ({"bn_b": float("inf")}, "gives NaN or infinite weights"),
    ],
)
def test_corrupt_statistics_are_refused_not_folded_into_nan(values: dict[str, float], match: str) -> None:
    # before: a negative variance folded into NaN weights (with a numpy RuntimeWarning), an overflow into inf
    with pytest.raises(UserError, match=match):
        fold_batchnorm(_with_params(make_graph(), **values))
