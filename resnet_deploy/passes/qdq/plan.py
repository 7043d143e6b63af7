"""The Q/DQ plan: where per-tensor activation Q/DQ and per-channel weight DQ go in one float32 graph, and how each
tensor is encoded. Placements (:mod:`resnet_deploy.precision.placement`) write plans; :func:`.insert.insert_qdq`
reads them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import UserError
from .encoding import INT8_MAX, activation_encoding


@dataclass(frozen=True)
class ActivationSite:
    """Input ``index`` of node ``node`` reads ``tensor``, which gets per-tensor Q/DQ."""

    tensor: str
    node: str
    index: int
    kind: str  # "conv" | "gemm" | "residual" | "other"
    #: residual: the Conv whose output is the Add's other input; keeping that Conv in float drops this site too
    fused_with: str | None = None


@dataclass(frozen=True)
class WeightSite:
    """Weight initializer ``weight`` of node ``node``, quantized per channel along ``axis``; ``bias`` is the bias
    initializer when the plan quantizes it too (int32)."""

    node: str
    weight: str
    axis: int
    bias: str | None = None


@dataclass
class QuantPlan:
    """Where Q/DQ goes in one FP32 graph. ``layers`` are the quantizable Conv/Gemm node names, in graph order."""

    activations: list[ActivationSite] = field(default_factory=list)
    weights: list[WeightSite] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    skipped_adds: list[str] = field(default_factory=list)
    #: activation tensors upstream of every Conv (the network input, or its in-graph normalisation): their range
    #: is calibrated by max whatever the method, see :func:`resnet_deploy.precision.calibration.plan_amax`
    input_tensors: list[str] = field(default_factory=list)
    #: the placement that wrote the plan (reported by the pass)
    placement: str = ""
    #: encoding of the activations, one of :data:`.encoding.ACTIVATION_DTYPES`
    activation_dtype: str = "int8"
    #: uint8 activations: tensors that cannot be negative (zero point 0)
    unsigned: set[str] = field(default_factory=set)
    #: tensor -> tensor whose scale it reuses (output of a range-preserving op)
    tied: dict[str, str] = field(default_factory=dict)
    #: Relu output -> Relu input; the Relu goes and the Q reads its input
    relu_inputs: dict[str, str] = field(default_factory=dict)
    #: weights are quantized to ``[-weight_qmax, weight_qmax]``
    weight_qmax: int = INT8_MAX

    @property
    def tensors(self) -> list[str]:
        """Distinct activation tensors to calibrate, in graph order."""
        return list(dict.fromkeys(s.tensor for s in self.activations if s.tensor not in self.tied))

    def root(self, tensor: str) -> str:
        """The tensor whose range ``tensor`` takes (itself unless tied)."""
        while tensor in self.tied:
            tensor = self.tied[tensor]
        return tensor

    def encoding(self, tensor: str, amax: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(scale float32, zero point) of ``tensor``'s per-tensor quantization with ranges ``amax``; the zero
        point's dtype is the quantized type."""
        root = self.root(tensor)
        if root not in amax:
            raise UserError(f"no calibration range for tensor '{root}'")
        return activation_encoding(amax[root], self.activation_dtype, root in self.unsigned, root)
