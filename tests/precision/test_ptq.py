"""Calibrate once, place per backend: one calibration serves both placements, and placing it gives what build's
``quantize_int8`` writes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from resnet_deploy.errors import UserError
from resnet_deploy.precision.placement import PLACEMENTS
from resnet_deploy.precision.ptq import Calibration, Int8Options, calibrate_for_placements, place, quantize_int8


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((24, 1, 28, 28), dtype=np.float32)


@pytest.fixture(scope="module")
def calibration(resnet20_fp32: onnx.ModelProto, images: np.ndarray) -> Calibration:
    return calibrate_for_placements(resnet20_fp32, images, batch_size=8)


def test_one_calibration_covers_every_placement(calibration: Calibration, images: np.ndarray) -> None:
    assert list(calibration.plans) == list(PLACEMENTS)
    assert calibration.samples == len(images)
    wanted = {t for plan in calibration.plans.values() for t in plan.tensors}
    assert set(calibration.result.stats) == wanted
    amax = calibration.amax("minmax")
    assert all(amax[t] == calibration.result.stats[t].amax for t in wanted)


@pytest.mark.parametrize(
    ("placement", "method"), [("tensorrt", "percentile"), ("onnxruntime", "percentile"), ("onnxruntime", "entropy")]
)
def test_place_writes_what_quantize_int8_writes(
    calibration: Calibration, resnet20_fp32: onnx.ModelProto, images: np.ndarray, placement: str, method: str
) -> None:
    placed, report = place(calibration, placement, method)
    options = Int8Options(method=method, placement=placement, batch_size=8)
    built = quantize_int8(resnet20_fp32, images, options)
    assert placed.SerializeToString() == built.model.SerializeToString()
    assert report.changes == built.report.changes


def test_kept_layers_pass_through(calibration: Calibration) -> None:
    layer = calibration.plans["tensorrt"].layers[2]
    q, report = place(calibration, "tensorrt", keep_float=frozenset({layer}), keep_dtype="fp16")
    assert report.changes["layers_kept_fp16"] == 1
    kept = next(n for n in q.graph.node if n.name == layer)
    assert kept.input[0] == f"{layer}/input_fp16"


def test_refusals(calibration: Calibration, resnet20_fp32: onnx.ModelProto, images: np.ndarray) -> None:
    with pytest.raises(UserError, match="unknown Q/DQ placement 'coreml'"):
        place(calibration, "coreml")
    with pytest.raises(UserError, match="unknown calibration method"):
        place(calibration, "tensorrt", "median")
    with pytest.raises(UserError, match="zero samples"):
        calibrate_for_placements(resnet20_fp32, images[:0])
    with pytest.raises(UserError, match=r"images of shape \(3, 28, 28\)"):
        calibrate_for_placements(resnet20_fp32, np.zeros((2, 3, 28, 28), np.float32))
    relu = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 28, 28])],
    )
    with pytest.raises(UserError, match="no Conv/Gemm layer"):
        calibrate_for_placements(helper.make_model(relu), images)
