"""The OpenVINO Q/DQ placement: the ONNX Runtime placement's sites and scales with the signed tensors in int8 (zero
point 0) instead of uint8 (zero point 128). Checked on the plan, on the graph's zero points, against the ONNX
Runtime placement's graph run as plain Q/DQ arithmetic (the two must compute the same values), and on what
OpenVINO's CPU plugin compiles (convolutions that write int8 where a signed tensor leaves them)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from resnet_deploy.passes.graph import name_nodes
from resnet_deploy.passes.qdq import insert_qdq
from resnet_deploy.precision.calibration import batches_of, calibrate, plan_amax
from resnet_deploy.precision.placement import plan_qdq

from .test_placement_onnxruntime import session


@pytest.fixture(scope="module")
def graphs(resnet18_fp32: onnx.ModelProto) -> dict[str, onnx.ModelProto]:
    """resnet18 (3 x 64 x 64, downsample branches) in both CPU placements from one calibration."""
    named = name_nodes(resnet18_fp32)
    x = np.random.default_rng(0).random((16, 3, 64, 64), dtype=np.float32)
    plans = {p: plan_qdq(named, p) for p in ("onnxruntime", "openvino")}
    stats = calibrate(named, plans["onnxruntime"].tensors, batches_of(x, 8))
    return {p: insert_qdq(named, plan, plan_amax(stats, plan, "percentile"))[0] for p, plan in plans.items()}


def zero_points(model: onnx.ModelProto) -> list[tuple[int, int]]:
    """(dtype, value) of every activation QuantizeLinear's zero point."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [(inits[n.input[2]].dtype, int(inits[n.input[2]])) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]  # fmt: skip


def test_same_sites_as_onnxruntime_with_its_own_encoding(resnet18_fp32: onnx.ModelProto) -> None:
    named = name_nodes(resnet18_fp32)
    ort_plan, ov_plan = plan_qdq(named, "onnxruntime"), plan_qdq(named, "openvino")
    assert ov_plan.activations == ort_plan.activations and ov_plan.weights == ort_plan.weights
    assert ov_plan.tensors == ort_plan.tensors and ov_plan.unsigned == ort_plan.unsigned
    assert ov_plan.tied == ort_plan.tied and ov_plan.relu_inputs == ort_plan.relu_inputs
    assert (ov_plan.placement, ov_plan.activation_dtype) == ("openvino", "int8+uint8")


def test_signed_tensors_are_int8_with_zero_point_0(graphs: dict[str, onnx.ModelProto]) -> None:
    ort_zp, ov_zp = zero_points(graphs["onnxruntime"]), zero_points(graphs["openvino"])
    assert len(ort_zp) == len(ov_zp) and (np.dtype(np.uint8), 128) in ort_zp  # resnet18 has signed tensors
    assert all(v == 0 for _, v in ov_zp)
    for (_, ort_v), (ov_t, _) in zip(ort_zp, ov_zp, strict=True):
        assert ov_t == (np.dtype(np.int8) if ort_v == 128 else np.dtype(np.uint8))


def test_computes_what_the_onnxruntime_placement_computes(graphs: dict[str, onnx.ModelProto]) -> None:
    # Q/DQ as plain arithmetic (no fusion): uint8 q - 128 and int8 q are the same number at the same scale
    x = np.random.default_rng(1).random((4, 3, 64, 64), dtype=np.float32)
    outs = [session(graphs[p], optimize=False).run(None, {"input": x})[0] for p in ("onnxruntime", "openvino")]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_openvino_compiles_int8_outputs_for_signed_tensors(graphs: dict[str, onnx.ModelProto]) -> None:
    ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")

    def conv_outputs(model: onnx.ModelProto) -> list[str]:
        compiled = ov.Core().compile_model(ov.Core().read_model(model.SerializeToString(), b""), "CPU")
        ops = compiled.get_runtime_model().get_ordered_ops()
        return [op.get_rt_info()["outputPrecisions"].astype(str) for op in ops
                if op.get_rt_info()["layerType"].astype(str) == "Convolution"]  # fmt: skip

    ort_out, ov_out = conv_outputs(graphs["onnxruntime"]), conv_outputs(graphs["openvino"])
    assert len(ort_out) == len(ov_out) and "i8" not in ort_out
    assert "i8" in ov_out  # the downsample convolutions
