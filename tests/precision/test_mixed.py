"""Accuracy-aware mixed precision: the greedy search keeps sensitive layers in float until within budget."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.errors import UserError
from resnet_deploy.passes.graph import name_nodes
from resnet_deploy.precision.calibration import batches_of, calibrate, plan_amax
from resnet_deploy.precision.mixed import search_keep_float, top1
from resnet_deploy.precision.placement import plan_qdq
from resnet_deploy.precision.ptq import Int8Options, quantize_int8


def _input_dependent(model: onnx.ModelProto, x: np.ndarray) -> onnx.ModelProto:
    """A random-weight net predicts one class for every input; centring and amplifying its logits over ``x``
    (fc bias -= mean logits, then x100) makes its argmax depend on the input, so quantization can change it."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    mean = OnnxRuntimeModel(model).predict(x).mean(axis=0)
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    inits = {t.name: t for t in model.graph.initializer}
    w, b = (onnx.numpy_helper.to_array(inits[n]) for n in gemm.input[1:3])
    inits[gemm.input[1]].CopyFrom(onnx.numpy_helper.from_array(w * 100, gemm.input[1]))
    inits[gemm.input[2]].CopyFrom(onnx.numpy_helper.from_array((b - mean) * 100, gemm.input[2]))
    return model


@pytest.fixture(scope="module")
def model(resnet20_fp32: onnx.ModelProto) -> onnx.ModelProto:
    return _input_dependent(resnet20_fp32, np.random.default_rng(1).random((120, 1, 28, 28), dtype=np.float32))


@pytest.fixture(scope="module")
def data(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    # Labels = the FP32 model's own predictions: FP32 top-1 is 100 % and any drop is quantization error.
    x = np.random.default_rng(0).random((120, 1, 28, 28), dtype=np.float32)
    y = OnnxRuntimeModel(model).predict(x).argmax(1)
    assert len(np.unique(y)) >= 5
    return x, y


def test_top1(model: onnx.ModelProto, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    assert top1(model, x, y) == 100.0
    assert top1(model, x, (y + 1) % 10) == 0.0


def test_generous_budget_keeps_everything_int8(model: onnx.ModelProto, data: tuple[np.ndarray, np.ndarray]) -> None:
    named = name_nodes(model)
    plan = plan_qdq(named)
    amax = {t: 4.0 for t in plan.tensors}
    r = search_keep_float(named, plan, amax, *data, max_drop=100.0)
    assert r.keep_float == [] and r.evaluations == 1 and r.within_budget and r.fp32_top1 == 100.0


def _crushed_stem(model: onnx.ModelProto, x: np.ndarray, placement: str) -> tuple[onnx.ModelProto, object, dict]:
    """The named graph, its plan and calibrated ranges with the stem's input range crushed to 0.02."""
    named = name_nodes(model)
    plan = plan_qdq(named, placement)
    amax = plan_amax(calibrate(named, plan.tensors, batches_of(x, 40)), plan, "minmax")
    stem_input = next(s.tensor for s in plan.activations if s.node == plan.layers[0])
    amax[stem_input] = 0.02
    return named, plan, amax


@pytest.mark.slow
def test_tight_budget_with_bad_ranges_keeps_the_damaging_layers(
    model: onnx.ModelProto, data: tuple[np.ndarray, np.ndarray]
) -> None:
    named, plan, amax = _crushed_stem(model, data[0], "tensorrt")
    # This test model's logits are amplified 100x, so every int8 layer costs points: returning the stem to float
    # repairs two thirds of the damage, which a 35-point budget accepts.
    r = search_keep_float(named, plan, amax, *data, max_drop=35.0)
    assert r.within_budget and r.final_top1 >= r.fp32_top1 - 35.0
    assert r.keep_float == [plan.layers[0]]
    assert r.int8_top1 < r.final_top1
    assert set(r.sensitivity) == set(plan.layers)
    assert max(r.sensitivity, key=lambda k: r.sensitivity[k]) == plan.layers[0]


@pytest.mark.slow
def test_a_budget_only_all_float_meets_is_refused(model: onnx.ModelProto, data: tuple[np.ndarray, np.ndarray]) -> None:
    # Before: the search kept every layer, reported "every layer is in float" while the ONNX Runtime placement's
    # pooling Q/DQ stayed, and build wrote the graph and exited 0.
    for placement in ("tensorrt", "onnxruntime"):
        named, plan, amax = _crushed_stem(model, data[0], placement)
        with pytest.raises(UserError, match=r"--max-accuracy-drop 2 cannot be met with any layer in int8: on 120 "
                           r"evaluation images FP32 scores 100.00 %, all-INT8 \d+.\d\d %, and with 19 of 20 layers in "
                           r"fp32 still \d+.\d\d %; nothing written"):  # fmt: skip
            search_keep_float(named, plan, amax, *data, max_drop=2.0)


def test_through_quantize_int8(model: onnx.ModelProto, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    r = quantize_int8(model, x[:32], Int8Options(max_accuracy_drop=100.0), eval_data=(x, y))
    assert r.mixed is not None and r.mixed.keep_float == []
    with pytest.raises(UserError, match="needs evaluation data"):
        quantize_int8(model, x[:32], Int8Options(max_accuracy_drop=1.0))
    with pytest.raises(UserError, match=">= 0"):
        quantize_int8(model, x[:32], Int8Options(max_accuracy_drop=-1.0), eval_data=(x, y))


@pytest.mark.slow
def test_onnxruntime_placement_repairs_a_crushed_range_too(
    model: onnx.ModelProto, data: tuple[np.ndarray, np.ndarray]
) -> None:
    named, plan, amax = _crushed_stem(model, data[0], "onnxruntime")
    r = search_keep_float(named, plan, amax, *data, max_drop=45.0)
    # the stem is found first and returning it to float repairs most of the damage (this test model's logits are
    # amplified 100x, so the other int8 layers still cost points)
    stem = plan.layers[0]
    assert r.keep_float == [stem] and stem == max(r.sensitivity, key=lambda k: r.sensitivity[k])
    assert r.sensitivity[stem] >= 40.0 and r.final_top1 >= 55.0
