"""The integer encodings the Q/DQ pass writes: per-tensor activation scale and zero point, symmetric per-channel
int8 weights, int32 biases (the counterpart of ONNX Runtime's ``quantization/quant_utils.py``)."""

from __future__ import annotations

import numpy as np

from ...errors import UserError

INT8_MAX = 127  # symmetric int8: [-127, 127], zero point 0
UINT8_MAX = 255
UINT8_MIDPOINT = 128  # the zero point that makes uint8 symmetric around 0
#: "int8": symmetric, zero point 0; "uint8": zero point 0 for tensors that cannot be negative, 128 for the others
ACTIVATION_DTYPES = ("int8", "uint8")


def activation_encoding(amax: float, dtype: str, unsigned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(float32 scale, zero point) of a per-tensor activation with range ``[-amax, amax]`` (``[0, amax]`` when
    ``unsigned``); the zero point's dtype is the quantized type. A zero range gets scale 1."""
    if not np.isfinite(amax) or amax < 0:
        raise UserError(f"invalid calibration range {amax}")
    if dtype == "int8":
        return np.array(amax / INT8_MAX if amax > 0 else 1.0, np.float32), np.array(0, np.int8)
    if dtype != "uint8":
        raise ValueError(f"unknown activation dtype '{dtype}' (choose from {', '.join(ACTIVATION_DTYPES)})")
    if unsigned:
        return np.array(amax / UINT8_MAX if amax > 0 else 1.0, np.float32), np.array(0, np.uint8)
    return np.array(amax / INT8_MAX if amax > 0 else 1.0, np.float32), np.array(UINT8_MIDPOINT, np.uint8)


def quantize_weight(w: np.ndarray, axis: int, qmax: int = INT8_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 on ``[-qmax, qmax]``: (int8 weights, float32 scales); all-zero channels get
    scale 1."""
    w = np.asarray(w, dtype=np.float32)
    other = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=other) if other else np.abs(w)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    return q, scale


def quantize_bias(bias: np.ndarray, input_scale: np.ndarray, weight_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 bias with per-channel scale ``input scale x weight scale``, the scale of the integer accumulator an
    int8 conv adds it to: (int32 bias, float32 scales). Out-of-range values saturate."""
    scale = (input_scale * weight_scale).astype(np.float32)
    info = np.iinfo(np.int32)
    exact = np.asarray(bias).astype(np.float64) / scale.astype(np.float64)
    return np.clip(np.round(exact), info.min, info.max).astype(np.int32), scale
