"""Calibration methods on synthetic distributions whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.precision.histogram import (
    TensorStats,
    amax_entropy,
    amax_minmax,
    amax_mse,
    amax_percentile,
    compute_amax,
)


def stats_of(*chunks: np.ndarray) -> TensorStats:
    s = TensorStats()
    for c in chunks:
        s.update(c)
    return s


def test_minmax_is_max_abs() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10_000).astype(np.float32) * 3
    x[17] = -41.5
    s = stats_of(*np.array_split(x, 7))
    assert amax_minmax(s) == pytest.approx(41.5)
    assert compute_amax(s, "minmax") == pytest.approx(float(np.abs(x).max()))


def test_streaming_histogram_keeps_every_sample_when_the_range_grows() -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.uniform(-k, k, 5000) for k in (1, 2, 8, 4)]
    s = stats_of(*chunks)
    assert s.hist.sum() == pytest.approx(20_000)
    assert s.hist_max == pytest.approx(max(np.abs(c).max() for c in chunks))
    # median of |x| over the mixture, from the histogram vs exactly
    exact = float(np.median(np.abs(np.concatenate(chunks))))
    assert amax_percentile(s, 50) == pytest.approx(exact, rel=0.02)


def test_percentile_of_uniform() -> None:
    x = np.linspace(0, 1, 100_001, dtype=np.float32)
    s = stats_of(x)
    assert amax_percentile(s, 90) == pytest.approx(0.9, abs=1e-3)
    assert amax_percentile(s, 99.99) == pytest.approx(0.9999, abs=1e-3)
    assert amax_percentile(s, 100) == pytest.approx(1.0)
    with pytest.raises(UserError):
        amax_percentile(s, 0)


def test_entropy_clips_outliers_of_a_gaussian() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(400_000)
    x[:40] = 60.0  # a handful of far outliers stretch the range 15x
    s = stats_of(*np.array_split(x, 4))
    amax = amax_entropy(s)
    assert 2.5 < amax < 10.0, amax  # keeps the bulk of the Gaussian, drops the outliers
    assert amax_minmax(s) == pytest.approx(60.0)


def test_entropy_without_outliers_keeps_most_of_the_range() -> None:
    x = np.random.default_rng(3).uniform(0, 1, 200_000)
    amax = amax_entropy(stats_of(x))
    assert 0.85 < amax <= 1.0


def test_mse_is_close_to_the_optimum_for_a_uniform_distribution() -> None:
    x = np.random.default_rng(4).uniform(-2, 2, 200_000)
    amax = amax_mse(stats_of(x))
    assert 1.9 < amax <= 2.0  # clipping a uniform costs more than rounding: the optimum is near the max


def test_mse_matches_the_known_optimum_for_a_laplace_distribution() -> None:
    # Banner et al. (ACIQ): the MSE-optimal 8-bit clipping of Laplace(0, b) is about 9.89 b.
    x = np.random.default_rng(5).laplace(size=300_000)
    s = stats_of(x)
    assert amax_mse(s) == pytest.approx(9.89, rel=0.12)
    assert amax_mse(s) < amax_minmax(s)


def test_non_finite_activations_are_rejected() -> None:
    s = TensorStats()
    with pytest.raises(UserError, match="non-finite"):
        s.update(np.array([1.0, np.inf]))


def test_unknown_method() -> None:
    with pytest.raises(UserError, match="unknown calibration method"):
        compute_amax(stats_of(np.ones(4)), "magic")


def test_all_zero_tensor_gives_zero_amax() -> None:
    s = stats_of(np.zeros(1000))
    for method in ("minmax", "percentile", "entropy", "mse"):
        assert compute_amax(s, method) == 0.0
