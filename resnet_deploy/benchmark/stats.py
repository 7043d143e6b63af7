"""Latency statistics computed the way trtexec reports them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction

PERCENTILES = (90, 95, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """trtexec's percentile: ``sorted[n - 1 - floor((1 - p/100) * n)]`` (clamped to the first element).

    ``floor`` is evaluated exactly (rational arithmetic on the decimal ``p``): trtexec computes it in binary
    floating point, which at an exact boundary (e.g. p90 of 10 samples, where ``0.1 * 10`` evaluates to
    0.99999...) can land one sample higher. ``sorted_values`` must be sorted ascending and non-empty.
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside [0, 100]")
    exclude = math.floor((1 - Fraction(str(p)) / 100) * n)
    return float(sorted_values[max(n - 1 - exclude, 0)])


def median(sorted_values: Sequence[float]) -> float:
    """trtexec's median: the middle sample, or the mean of the two middle samples for an even count."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("median of no samples")
    m = n // 2
    if n % 2:
        return float(sorted_values[m])
    return (float(sorted_values[m - 1]) + float(sorted_values[m])) / 2


@dataclass(frozen=True)
class LatencyStats:
    """min, mean, median, p90, p95, p99, max of one set of samples (same unit as the samples)."""

    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> LatencyStats:
        if not samples:
            raise ValueError("statistics of no samples")
        s = sorted(float(v) for v in samples)
        return cls(
            min=s[0],
            mean=math.fsum(s) / len(s),
            median=median(s),
            p90=percentile(s, 90),
            p95=percentile(s, 95),
            p99=percentile(s, 99),
            max=s[-1],
        )

    def to_dict(self, digits: int = 4) -> dict[str, float]:
        return {k: round(v, digits) for k, v in asdict(self).items()}


def coefficient_of_variation(samples: Sequence[float]) -> float:
    """Standard deviation over mean, in percent, as trtexec reports it (``coeffVar`` in its
    ``samples/common/sampleReporting.cpp``: population standard deviation of the samples, divided by their mean)."""
    if not samples:
        raise ValueError("coefficient of variation of no samples")
    mean = math.fsum(samples) / len(samples)
    if mean == 0:
        return 0.0
    var = math.fsum((float(v) - mean) ** 2 for v in samples) / len(samples)
    return 100.0 * math.sqrt(var) / mean
