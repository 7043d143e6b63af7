"""Q/DQ placement, one module per backend, found by name in :data:`PLANNERS` (as ONNX Runtime's quantizer finds an
op's quantizer in its ``registry.py``). Each module applies per-op rules found through its own table:

* :mod:`.tensorrt`: NVIDIA's explicit-quantization rules for ResNets, for engines;
* :mod:`.onnxruntime`: the groups ONNX Runtime fuses into int8 kernels, for ``--backend onnxruntime``;
* :mod:`.openvino`: the same sites with signed tensors in int8, the program OpenVINO compiles for NNCF's graphs.

All place from the same calibration (:func:`resnet_deploy.precision.ptq.calibrate_for_placements`). The plan they
return is inserted by :func:`resnet_deploy.passes.qdq.insert_qdq`.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from ...errors import UserError
from ...passes.qdq import QuantPlan
from .common import conv_depth
from .onnxruntime import plan_onnxruntime
from .openvino import plan_openvino
from .tensorrt import plan_tensorrt

#: a placement: the plan of a named float32 graph
Planner = Callable[[onnx.ModelProto], QuantPlan]

# The order is the calibration tensors' order, which the calibration cache's fingerprint records.
# openvino plans the onnxruntime placement's tensors, so it adds none and existing caches stay valid.
PLANNERS: dict[str, Planner] = {"tensorrt": plan_tensorrt, "onnxruntime": plan_onnxruntime, "openvino": plan_openvino}
PLACEMENTS = tuple(PLANNERS)


def plan_qdq(model: onnx.ModelProto, placement: str = "tensorrt") -> QuantPlan:
    """The Q/DQ sites of a named, float32 graph for ``placement``."""
    planner = PLANNERS.get(placement)
    if planner is None:
        raise UserError(f"unknown Q/DQ placement '{placement}' (choose from {', '.join(PLACEMENTS)})")
    nodes = model.graph.node
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in nodes):
        raise UserError("the model is already quantized (it has Q/DQ nodes): give the float32 model")
    if any(not node.name for node in nodes):
        raise ValueError("plan_qdq needs named nodes: call name_nodes() first")
    plan = planner(model)
    depth = conv_depth(model)
    plan.input_tensors = [t for t in plan.tensors if depth.get(t, 0) == 0]
    return plan


def plan_placements(model: onnx.ModelProto) -> dict[str, QuantPlan]:
    """The plan of every placement for a named float32 graph, in :data:`PLACEMENTS` order."""
    return {placement: plan_qdq(model, placement) for placement in PLACEMENTS}


__all__ = ["PLACEMENTS", "PLANNERS", "Planner", "plan_placements", "plan_qdq"]
