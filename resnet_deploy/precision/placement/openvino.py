"""The ``openvino`` placement, for ``--backend openvino``: the :mod:`.onnxruntime` placement's sites and scales,
with the tensors that can be negative (a residual branch's Conv output before its Add, the downsample output) as
int8 with zero point 0 instead of uint8 with zero point 128.

The two encodings hold the same values (``q - 128`` in uint8 is ``q`` in int8, same scale), so the graph computes
exactly what the ONNX Runtime placement computes. What changes is the program OpenVINO's CPU plugin compiles: its
convolutions then write int8 where a signed tensor leaves them, as they do for NNCF's graphs (OpenVINO 2026.4,
AVX2: the same kernels and precisions node for node, ``benchmarks/int8_peer_check.py``), instead of uint8 with a
zero point the next fused Add must take off. ONNX Runtime fuses only same-typed QLinear groups, so this graph is
for OpenVINO; ``--backend onnxruntime`` keeps uint8 throughout.
"""

from __future__ import annotations

import onnx

from ...passes.qdq import QuantPlan
from .onnxruntime import plan_onnxruntime


def plan_openvino(model: onnx.ModelProto) -> QuantPlan:
    """The OpenVINO plan of a named float32 graph: ONNX Runtime's, signed tensors in int8 (module docstring)."""
    plan = plan_onnxruntime(model)
    plan.placement, plan.activation_dtype = "openvino", "int8+uint8"
    return plan
