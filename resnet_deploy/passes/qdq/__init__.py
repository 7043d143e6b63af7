"""Q/DQ insertion, cut as ONNX Runtime's quantizer is: the plan data model (:mod:`.plan`), the integer encodings
(:mod:`.encoding`) and the pass that rewrites a graph by a plan (:mod:`.insert`). Where Q/DQ goes is decided one
layer up, by the per-backend placements of :mod:`resnet_deploy.precision.placement`."""

from .encoding import ACTIVATION_DTYPES, INT8_MAX, activation_encoding, quantize_bias, quantize_weight
from .insert import KEEP_DTYPES, insert_qdq
from .plan import ActivationSite, QuantPlan, WeightSite

__all__ = [
    "ACTIVATION_DTYPES",
    "INT8_MAX",
    "KEEP_DTYPES",
    "ActivationSite",
    "QuantPlan",
    "WeightSite",
    "activation_encoding",
    "insert_qdq",
    "quantize_bias",
    "quantize_weight",
]
