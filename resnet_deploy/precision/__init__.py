"""INT8 post-training quantization as explicit Q/DQ in the ONNX (TensorRT 11 has no INT8 flag or calibrator).

The pipeline, one module per step:

1. :mod:`.placement` ``plan_qdq``: where Q/DQ goes, one module per backend (TensorRT's ResNet fusion rules for
   engines, or the groups ONNX Runtime fuses into int8 kernels);
2. :mod:`.calibration` ``calibrate``: run the FP32 graph on ONNX Runtime, stream per-tensor histograms;
3. :mod:`.histogram`: ``amax`` per tensor by ``minmax``, ``percentile``, ``entropy`` (TensorRT's KL search) or
   ``mse``;
4. :mod:`.cache`: the ranges as a JSON calibration cache tied to the graph and the data;
5. :mod:`.mixed` (optional): keep the most sensitive layers in float to meet an accuracy budget;
6. :func:`resnet_deploy.passes.qdq.insert_qdq`: the Q/DQ graph pass.

:mod:`.ptq` runs them in order: :func:`.ptq.calibrate_for_placements` and :func:`.ptq.place` (calibrate once,
place per backend), and :func:`.ptq.quantize_int8` for ``build``.
"""

from ..passes.graph import name_nodes
from ..passes.qdq import QuantPlan, insert_qdq
from .calibration import DEFAULT_METHOD, CalibrationResult, calibrate
from .histogram import METHODS, TensorStats, compute_amax
from .placement import PLACEMENTS, plan_placements, plan_qdq
from .ptq import Calibration, Int8Options, Int8Result, calibrate_for_placements, place, quantize_int8

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "PLACEMENTS",
    "Calibration",
    "CalibrationResult",
    "Int8Options",
    "Int8Result",
    "QuantPlan",
    "TensorStats",
    "calibrate",
    "calibrate_for_placements",
    "compute_amax",
    "insert_qdq",
    "name_nodes",
    "place",
    "plan_placements",
    "plan_qdq",
    "quantize_int8",
]
