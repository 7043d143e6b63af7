"""The integer encodings the Q/DQ pass writes: per-tensor activation scale and zero point, symmetric per-channel
int8 weights, int32 biases (the counterpart of ONNX Runtime's ``quantization/quant_utils.py``).

Every scale written must be a normal float32, and so must the product of two of them: a conv's int32 accumulator
has scale ``input scale x weight scale`` (the int32 bias is stored at that scale, and ONNX Runtime's QLinearConv
and TensorRT's fused int8 kernels multiply the two). So activation scales lie within [sqrt(float32 tiny),
sqrt(float32 max)] = [1.1e-19, 1.8e19], which bounds the calibration ranges a cache may hold
(:data:`MIN_RANGE`, :data:`MAX_RANGE`); a range of 0 has no scale at all and is refused, never replaced by 1.
"""

from __future__ import annotations

import numpy as np

from ...errors import UserError

INT8_MAX = 127  # symmetric int8: [-127, 127], zero point 0
UINT8_MAX = 255
UINT8_MIDPOINT = 128  # the zero point that makes uint8 symmetric around 0
#: "int8": symmetric, zero point 0; "uint8": zero point 0 for tensors that cannot be negative, 128 for the others;
#: "int8+uint8": uint8 for tensors that cannot be negative, int8 for the others, zero point 0 both
ACTIVATION_DTYPES = ("int8", "uint8", "int8+uint8")

_FLOAT32 = np.finfo(np.float32)
MIN_SCALE = float(np.sqrt(_FLOAT32.tiny))  # ~1.08e-19: the product of two such scales is still a normal float32
MAX_SCALE = float(np.sqrt(_FLOAT32.max))  # ~1.84e19: the product of two such scales is still finite
#: The calibration ranges every placement can encode (uint8 divides by 255, int8 by 127).
MIN_RANGE = UINT8_MAX * MIN_SCALE
MAX_RANGE = INT8_MAX * MAX_SCALE


def check_range(amax: float, tensor: str = "a tensor") -> float:
    """``amax`` as a float, refused with one line unless it is a range every placement can encode."""
    if not isinstance(amax, int | float | np.floating) or not np.isfinite(amax) or amax < 0:
        raise UserError(f"invalid calibration range {amax!r} for tensor '{tensor}'")
    if amax == 0:
        raise UserError(
            f"calibration range of tensor '{tensor}' is 0 (it was zero on every calibration image): no int8 scale "
            "fits it; calibrate on data that reaches it"
        )
    if not MIN_RANGE <= amax <= MAX_RANGE:
        raise UserError(
            f"calibration range {float(amax):.3g} of tensor '{tensor}' gives an int8 scale float32 cannot carry "
            f"through a conv (ranges must lie within [{MIN_RANGE:.2g}, {MAX_RANGE:.2g}])"
        )
    return float(amax)


def activation_encoding(
    amax: float, dtype: str, unsigned: bool = False, tensor: str = "a tensor"
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 scale, zero point) of a per-tensor activation with range ``[-amax, amax]`` (``[0, amax]`` when
    ``unsigned``); the zero point's dtype is the quantized type. ``amax`` must pass :func:`check_range`."""
    if dtype not in ACTIVATION_DTYPES:
        raise ValueError(f"unknown activation dtype '{dtype}' (choose from {', '.join(ACTIVATION_DTYPES)})")
    amax = check_range(amax, tensor)
    if dtype == "int8" or (dtype == "int8+uint8" and not unsigned):
        return np.array(amax / INT8_MAX, np.float32), np.array(0, np.int8)
    if unsigned:
        return np.array(amax / UINT8_MAX, np.float32), np.array(0, np.uint8)
    return np.array(amax / INT8_MAX, np.float32), np.array(UINT8_MIDPOINT, np.uint8)


def quantize_weight(w: np.ndarray, axis: int, qmax: int = INT8_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 on ``[-qmax, qmax]``: (int8 weights, float32 scales); all-zero channels get
    scale 1 (every value is exactly 0 whatever the scale)."""
    w = np.asarray(w, dtype=np.float32)
    other = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=other) if other else np.abs(w)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    return q, scale


def quantize_bias(
    bias: np.ndarray, input_scale: np.ndarray, weight_scale: np.ndarray, layer: str = "a layer"
) -> tuple[np.ndarray, np.ndarray]:
    """int32 bias with per-channel scale ``input scale x weight scale``, the scale of the integer accumulator an
    int8 conv adds it to: (int32 bias, float32 scales). A bias int32 cannot hold at that scale, or a scale float32
    cannot represent (a tiny input range behind tiny weights), is refused: saturating it would silently shift the
    layer's output."""
    with np.errstate(over="ignore", under="ignore"):
        scale = (input_scale * weight_scale).astype(np.float32)
    if not (np.isfinite(scale).all() and (scale >= _FLOAT32.tiny).all()):
        raise UserError(
            f"the int32 bias of {layer} needs scale input scale x weight scale = {float(np.min(scale)):.3g}, which "
            "float32 cannot represent: its input's calibration range or its weights are too small for int8"
        )
    info = np.iinfo(np.int32)
    exact = np.round(np.asarray(bias).astype(np.float64) / scale.astype(np.float64))
    if not ((exact >= info.min) & (exact <= info.max)).all():
        worst = float(np.max(np.abs(exact)))
        raise UserError(
            f"the bias of {layer} is {worst:.3g} times its int32 scale, beyond int32: its input's calibration range "
            "is too small for its bias (use --qdq-placement tensorrt, which keeps biases in float)"
        )
    return exact.astype(np.int32), scale
