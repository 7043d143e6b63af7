"""The placement registry: every backend's planner by name, the checks every placement shares, and what the
placements agree on."""

from __future__ import annotations

import onnx
import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.passes.graph import name_nodes
from resnet_deploy.passes.qdq import insert_qdq
from resnet_deploy.precision.placement import PLACEMENTS, PLANNERS, plan_placements, plan_qdq


def test_registry_names_both_backends_in_calibration_order() -> None:
    assert PLACEMENTS == ("tensorrt", "onnxruntime", "openvino") == tuple(PLANNERS)


def test_each_plan_says_its_placement_and_encoding(resnet20_fp32: onnx.ModelProto) -> None:
    plans = plan_placements(name_nodes(resnet20_fp32))
    assert list(plans) == list(PLACEMENTS)
    assert {p: (plan.placement, plan.activation_dtype) for p, plan in plans.items()} == {
        "tensorrt": ("tensorrt", "int8"),
        "onnxruntime": ("onnxruntime", "uint8"),
        "openvino": ("openvino", "int8+uint8"),
    }


def test_both_placements_quantize_the_same_layers(resnet20_fp32: onnx.ModelProto) -> None:
    named = name_nodes(resnet20_fp32)
    trt_plan, ort_plan = plan_qdq(named, "tensorrt"), plan_qdq(named, "onnxruntime")
    assert trt_plan.layers == ort_plan.layers
    assert set(trt_plan.tensors) - set(ort_plan.tensors) <= set(ort_plan.tied)  # tied: the same range
    assert trt_plan.input_tensors == ort_plan.input_tensors == [trt_plan.activations[0].tensor]


def test_refusals(resnet20_fp32: onnx.ModelProto) -> None:
    named = name_nodes(resnet20_fp32)
    with pytest.raises(UserError, match="unknown Q/DQ placement 'coreml'"):
        plan_qdq(named, "coreml")
    unnamed = onnx.ModelProto.FromString(named.SerializeToString())
    unnamed.graph.node[3].name = ""
    with pytest.raises(ValueError, match="needs named nodes"):
        plan_qdq(unnamed)
    plan = plan_qdq(named)
    quantized, _ = insert_qdq(named, plan, {t: 1.0 for t in plan.tensors})
    for placement in PLACEMENTS:
        with pytest.raises(UserError, match="already quantized"):
            plan_qdq(quantized, placement)
