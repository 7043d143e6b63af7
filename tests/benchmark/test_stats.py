"""Latency statistics: trtexec's percentile rule, median, the summary record."""

from __future__ import annotations

import math

import pytest

from resnet_deploy.benchmark import (
    LatencyStats,
    percentile,
)
from resnet_deploy.benchmark.stats import median


def test_percentile_matches_trtexec_definition_by_hand() -> None:
    ten = [float(v) for v in range(1, 11)]
    # n=10: p90 excludes floor(0.1*10)=1 sample -> sorted[10-1-1] = 9; p95/p99 exclude 0 -> the max
    assert percentile(ten, 90) == 9.0
    assert percentile(ten, 95) == 10.0
    assert percentile(ten, 99) == 10.0
    assert percentile(ten, 50) == 5.0  # excludes 5 -> sorted[4]
    hundred = [float(v) for v in range(1, 101)]
    assert (percentile(hundred, 90), percentile(hundred, 95), percentile(hundred, 99)) == (90.0, 95.0, 99.0)
    seven = [float(v) for v in range(1, 8)]
    assert percentile(seven, 90) == 7.0  # floor(0.7) = 0 excluded
    assert percentile(seven, 50) == 4.0  # floor(3.5) = 3 excluded -> sorted[3]
    assert percentile([3.0], 99) == 3.0
    assert percentile(ten, 0) == 1.0  # excludes all 10 -> clamped to the first


def test_percentile_floor_is_exact_at_boundaries() -> None:
    # In binary floating point (1 - 0.9) * 10 = 0.9999999999999998, whose floor would drop nothing (index 9).
    assert math.floor((1 - 0.9) * 10) == 0
    assert percentile([float(v) for v in range(10)], 90) == 8.0


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile([], 90)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        median([])


def test_median_odd_and_even() -> None:
    assert median([1.0, 2.0, 9.0]) == 2.0
    assert median([1.0, 2.0, 4.0, 9.0]) == 3.0


def test_stats_on_a_known_list() -> None:
    s = LatencyStats.of([float(v) for v in [20, 1, 19, 2, 18, 3, 17, 4, 16, 5, 15, 6, 14, 7, 13, 8, 12, 9, 11, 10]])
    assert s.min == 1.0 and s.max == 20.0
    assert s.mean == 10.5
    assert s.median == 10.5
    assert s.p90 == 18.0  # n=20: excludes 2 -> sorted[17]
    assert s.p95 == 19.0  # excludes 1 -> sorted[18]
    assert s.p99 == 20.0  # excludes floor(0.2) = 0
    assert LatencyStats.of([5.0, 1.0, 3.0, 2.0, 4.0]).to_dict() == {
        "min": 1.0,
        "mean": 3.0,
        "median": 3.0,
        "p90": 5.0,
        "p95": 5.0,
        "p99": 5.0,
        "max": 5.0,
    }
    with pytest.raises(ValueError):
        LatencyStats.of([])


def test_coefficient_of_variation_is_trtexecs() -> None:
    """Population standard deviation over the mean, in percent (trtexec's ``coeffVar``)."""
    from resnet_deploy.benchmark.stats import coefficient_of_variation

    assert coefficient_of_variation([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == pytest.approx(40.0)  # sd 2, mean 5
    assert coefficient_of_variation([3.0, 3.0]) == 0.0
    with pytest.raises(ValueError):
        coefficient_of_variation([])
