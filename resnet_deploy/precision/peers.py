"""The peer our INT8 is measured against: ONNX Runtime's own ``quantize_static`` (QDQ, per-channel weights)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from .calibration import CalibrationData, model_input, rebatch, static_batch


def ort_quantize_static(
    fp32: onnx.ModelProto,
    calib: np.ndarray | CalibrationData,
    *,
    method: str = "minmax",
    symmetric: bool = True,
    percentile: float = 99.99,
    batch: int = 32,
) -> onnx.ModelProto:
    """Quantize ``fp32`` with ``onnxruntime.quantization.quantize_static`` on the images ``calib``.

    ``method`` is "minmax" or "percentile"; ``symmetric`` False gives ORT's default uint8 activations. ``calib`` is
    fed ``batch`` images at a time (the model's own batch when its batch axis is static), whatever the graph's
    input is called.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    data = calib if isinstance(calib, CalibrationData) else CalibrationData.from_array(calib)
    name, _ = model_input(fp32)
    fixed = static_batch(fp32)
    size = fixed or batch

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            stream = data.batches(size)
            self.it = iter(rebatch(stream, fixed) if fixed else stream)

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self.it, None)
            return None if b is None else {name: np.ascontiguousarray(b, dtype=np.float32)}

    extra: dict[str, object] = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        onnx.save(fp32, str(src))
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax,
            extra_options=extra,
        )
        return onnx.load(str(dst))
