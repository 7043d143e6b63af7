"""The integer encodings of the Q/DQ pass: activation scale and zero point, per-channel weights, int32 biases."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.passes.qdq.encoding import (
    MAX_RANGE,
    MIN_RANGE,
    activation_encoding,
    quantize_bias,
    quantize_weight,
)


def test_int8_activations_are_symmetric() -> None:
    scale, zp = activation_encoding(2.54, "int8")
    assert scale.dtype == np.float32 and float(scale) == pytest.approx(0.02)
    assert zp.dtype == np.int8 and int(zp) == 0
    assert activation_encoding(2.54, "int8", unsigned=True)[1].dtype == np.int8  # int8 ignores the sign


def test_uint8_activations_use_the_full_range_when_they_cannot_be_negative() -> None:
    scale, zp = activation_encoding(5.1, "uint8", unsigned=True)
    assert float(scale) == pytest.approx(0.02) and zp.dtype == np.uint8 and int(zp) == 0
    scale, zp = activation_encoding(2.54, "uint8")
    assert float(scale) == pytest.approx(0.02) and zp.dtype == np.uint8 and int(zp) == 128


def test_zero_and_unrepresentable_ranges_are_refused_never_scale_one() -> None:
    # A range of 0 used to become scale 1.0 silently; 1e300 and 1e-300 gave scales float32 cannot hold (inf, 0).
    for dtype in ("int8", "uint8"):
        with pytest.raises(UserError, match="range of tensor 't' is 0"):
            activation_encoding(0.0, dtype, tensor="t")
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UserError, match="invalid calibration range"):
            activation_encoding(bad, "int8")
    for bad in (1e300, 1e-300, MAX_RANGE * 1.01, MIN_RANGE / 1.01):
        with pytest.raises(UserError, match="float32 cannot carry"):
            activation_encoding(bad, "int8")
    with pytest.raises(ValueError, match="unknown activation dtype"):
        activation_encoding(1.0, "int4")


def test_the_range_bounds_keep_every_scale_and_every_product_of_two_normal_float32() -> None:
    tiny, big = np.finfo(np.float32).tiny, np.finfo(np.float32).max
    for amax, dtype, unsigned in ((MIN_RANGE, "uint8", True), (MIN_RANGE, "int8", False), (MAX_RANGE, "int8", False)):
        scale = activation_encoding(amax, dtype, unsigned)[0]
        product = np.float32(scale) * np.float32(scale)
        assert tiny <= float(scale) < big and tiny <= float(product) < big and np.isfinite(product)


def test_weight_quantization_is_symmetric_per_channel() -> None:
    w = np.array([[1.0, -0.5], [0.0, 0.0], [-3.0, 1.5]], dtype=np.float32)
    q, scale = quantize_weight(w, 0)
    assert q.dtype == np.int8
    np.testing.assert_allclose(scale, [1 / 127, 1.0, 3 / 127], rtol=1e-6)
    np.testing.assert_array_equal(q, [[127, -64], [0, 0], [-127, 64]])


def test_weight_quantization_on_fewer_levels_and_another_axis() -> None:
    w = np.array([[1.0, -4.0], [0.5, 2.0]], dtype=np.float32)
    q, scale = quantize_weight(w, 1, qmax=64)
    np.testing.assert_allclose(scale, [1 / 64, 4 / 64], rtol=1e-6)
    np.testing.assert_array_equal(q, [[64, -64], [32, 32]])


def test_bias_scale_is_input_times_weight_scale() -> None:
    q, scale = quantize_bias(
        np.array([1.0, -2.0, 1e5], np.float32), np.array(0.5, np.float32), np.array([0.1, 0.2, 1e-3], np.float32)
    )
    assert q.dtype == np.int32 and scale.dtype == np.float32
    np.testing.assert_allclose(scale, [0.05, 0.1, 5e-4], rtol=1e-6)
    assert list(q[:2]) == [20, -20] and abs(int(q[2]) - 200_000_000) <= 50  # 5e-4 is not exact in float32


def test_a_bias_int32_cannot_hold_or_a_scale_float32_cannot_is_refused_not_saturated() -> None:
    # Saturating used to shift the layer's output silently (a tiny calibration range in a cache does that).
    with pytest.raises(UserError, match="bias of conv7 .* beyond int32"):
        quantize_bias(np.array([1e12], np.float32), np.array(0.5, np.float32), np.array([1e-3], np.float32), "conv7")
    with pytest.raises(UserError, match="float32 cannot represent"):
        quantize_bias(np.array([1.0], np.float32), np.array(1e-20, np.float32), np.array([1e-20], np.float32))
