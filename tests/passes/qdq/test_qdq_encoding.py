"""The integer encodings of the Q/DQ pass: activation scale and zero point, per-channel weights, int32 biases."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.passes.qdq.encoding import activation_encoding, quantize_bias, quantize_weight


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


def test_zero_range_gets_scale_one_and_bad_ranges_are_refused() -> None:
    for dtype in ("int8", "uint8"):
        assert float(activation_encoding(0.0, dtype)[0]) == 1.0
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UserError, match="invalid calibration range"):
            activation_encoding(bad, "int8")
    with pytest.raises(ValueError, match="unknown activation dtype"):
        activation_encoding(1.0, "int4")


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


def test_bias_scale_is_input_times_weight_scale_and_saturates() -> None:
    q, scale = quantize_bias(
        np.array([1.0, -2.0, 1e12], np.float32), np.array(0.5, np.float32), np.array([0.1, 0.2, 1e-3], np.float32)
    )
    assert q.dtype == np.int32 and scale.dtype == np.float32
    np.testing.assert_allclose(scale, [0.05, 0.1, 5e-4], rtol=1e-6)
    np.testing.assert_array_equal(q, [20, -20, np.iinfo(np.int32).max])
