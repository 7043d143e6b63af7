"""Per-tensor statistics and the four ways to turn them into an ``amax`` (the clipping threshold of int8).

:class:`TensorStats` keeps the exact running ``max |x|`` and a streaming histogram of ``|x|`` over a fixed number of
bins (2048, as TensorRT's calibrators do). When a batch exceeds the current range, the histogram is widened and its
counts redistributed by linear interpolation of the cumulative distribution (exact for values uniform within a
bin), so memory stays constant whatever the data. Symmetric int8 uses ``scale = amax / 127``.

Calibration does not hand this module the activations themselves: ONNX Runtime computes each element's bin in
the graph (:mod:`.calibration`) and :meth:`TensorStats.add_binned` counts them. :meth:`TensorStats.update` is the
same arithmetic in numpy, the reference the in-graph binning is tested against bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..passes.qdq.encoding import INT8_MAX

NUM_BINS = 2048
METHODS = ("minmax", "percentile", "entropy", "mse")
DEFAULT_PERCENTILE = 99.99


@dataclass
class TensorStats:
    """Streaming statistics of one tensor: exact ``amax`` and a histogram of ``|x|`` on ``[0, hist_max]``."""

    num_bins: int = NUM_BINS
    amax: float = 0.0
    hist_max: float = 0.0
    count: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def update(self, x: np.ndarray) -> None:
        a = np.abs(np.asarray(x, dtype=np.float32)).ravel()
        if a.size == 0:
            return
        if not np.isfinite(a).all():
            raise UserError("calibration produced non-finite activations (inf/NaN): check the model and the data")
        m = float(a.max())
        self.amax = max(self.amax, m)
        self.count += a.size
        if self.hist.size == 0:
            self.hist = np.zeros(self.num_bins, dtype=np.float64)
            self.hist_max = m if m > 0 else 1.0
        elif m > self.hist_max:
            self._widen(m)
        idx = (a * (self.num_bins / self.hist_max)).astype(np.int64)
        np.minimum(idx, self.num_bins - 1, out=idx)
        self.hist += np.bincount(idx, minlength=self.num_bins)

    def range_for_next(self) -> float:
        """The ``hist_max`` the next batch is binned against before its own max is known: 0 before the first batch
        (the batch's max then sets the range), else the current range (which a larger batch max widens)."""
        return self.hist_max if self.hist.size else 0.0

    def add_binned(self, batch_max: float, bins: np.ndarray) -> None:
        """Count a batch whose elements were binned outside numpy as ``trunc(|x| * (num_bins / h))`` in float32,
        ``h = max(batch_max, range_for_next())``: the same counts :meth:`update` makes from the values.

        ``bins`` holds integers in ``[0, num_bins]`` (the maximum itself lands on ``num_bins`` and is counted in the
        last bin, as :meth:`update` clips it).
        """
        size = int(bins.size)
        if size == 0:
            return
        if not np.isfinite(batch_max):
            raise UserError("calibration produced non-finite activations (inf/NaN): check the model and the data")
        self.amax = max(self.amax, batch_max)
        self.count += size
        if self.hist.size == 0:
            self.hist = np.zeros(self.num_bins, dtype=np.float64)
            self.hist_max = batch_max if batch_max > 0 else 1.0
            if batch_max == 0:  # all zeros: the graph divided by a zero range, the bins are meaningless
                self.hist[0] += size
                return
        elif batch_max > self.hist_max:
            self._widen(batch_max)
        counts = count_bins(bins, self.num_bins + 1)
        self.hist += counts[: self.num_bins]
        self.hist[-1] += counts[self.num_bins]

    def _widen(self, new_max: float) -> None:
        old_edges = np.linspace(0.0, self.hist_max, self.num_bins + 1)
        new_edges = np.linspace(0.0, new_max, self.num_bins + 1)
        cum = np.concatenate([[0.0], np.cumsum(self.hist)])
        self.hist = np.diff(np.interp(new_edges, old_edges, cum))
        self.hist_max = new_max

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(0.0, self.hist_max, self.num_bins + 1)


_CHUNK = 1 << 16  # elements per bincount call: the intp copy it needs stays in the L2 cache


def count_bins(bins: np.ndarray, length: int) -> np.ndarray:
    """``np.bincount`` of a small-integer array (uint16 from ONNX Runtime) without an 8-byte copy of all of it:
    bincount converts its input to intp, so it is fed 64 k elements at a time through one reused buffer."""
    flat = bins.reshape(-1)
    counts = np.zeros(length, dtype=np.int64)
    buf = np.empty(min(_CHUNK, flat.size), dtype=np.intp)
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK]
        part = buf[: chunk.size]
        part[...] = chunk
        counts += np.bincount(part, minlength=length)[:length]
    return counts


def amax_minmax(stats: TensorStats) -> float:
    """The largest ``|x|`` seen: no clipping, coarsest resolution."""
    return stats.amax


def amax_percentile(stats: TensorStats, percentile: float = DEFAULT_PERCENTILE) -> float:
    """The ``percentile`` of ``|x|`` (upper edge of the bin where the CDF reaches it), never above ``amax``."""
    if not 0 < percentile <= 100:
        raise UserError(f"percentile must be in (0, 100], not {percentile}")
    total = stats.hist.sum()
    if total == 0:
        return stats.amax
    cdf = np.cumsum(stats.hist) / total
    idx = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(stats.edges[min(idx + 1, stats.num_bins)], stats.amax))


def amax_entropy(stats: TensorStats, start_bin: int = 128, stride: int = 1, levels: int = INT8_MAX + 1) -> float:
    """TensorRT's entropy calibration: the threshold whose 128-level quantized distribution has the least KL
    divergence from the reference distribution (the histogram clipped there, outliers folded into the last bin).

    Follows NVIDIA's pytorch-quantization ``_compute_amax_entropy``: bin 0 (the ReLU zero spike) is replaced by
    bin 1 before the search; among equal divergences the largest threshold wins.
    """
    hist = stats.hist.astype(np.float64).copy()
    n = hist.size
    if n == 0 or hist.sum() == 0:
        return stats.amax
    if n > 1:
        hist[0] = hist[1]
    start = min(max(start_bin, levels), n)
    candidates = list(range(start, n + 1, stride))
    if candidates[-1] != n:
        candidates.append(n)
    suffix = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # suffix[i] = hist[i:].sum()
    best_i, best_kl = n, np.inf
    for i in candidates:
        ref = hist[:i].copy()
        ref[i - 1] += suffix[i]
        src = hist[:i]
        qidx = (np.arange(i) * levels) // i
        nonzero = src != 0
        sums = np.bincount(qidx, weights=src, minlength=levels)
        counts = np.bincount(qidx, weights=nonzero, minlength=levels)
        avg = sums / np.maximum(counts, 1)
        q = np.where(nonzero, avg[qidx], 0.0)
        ps, qs = ref.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p = ref / ps
        q = q / qs
        mask = p > 0
        if np.any(q[mask] == 0):
            continue  # infinite divergence
        kl = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if kl <= best_kl:
            best_i, best_kl = i, kl
    return float(min(stats.edges[best_i], stats.amax)) if stats.amax > 0 else 0.0


def amax_mse(stats: TensorStats, start_bin: int = 128, stride: int = 1) -> float:
    """The threshold minimising the expected squared quantization error over the histogram (bin centres)."""
    hist = stats.hist
    if hist.size == 0 or hist.sum() == 0:
        return stats.amax
    edges = stats.edges
    centers = (edges[:-1] + edges[1:]) / 2
    cand = edges[min(start_bin, hist.size) :: stride][1:] if start_bin >= hist.size else edges[start_bin::stride]
    cand = np.unique(np.concatenate([cand, [edges[-1]]]))
    cand = cand[cand > 0]
    best, best_err = float(edges[-1]), np.inf
    for chunk in np.array_split(cand, max(1, len(cand) // 256)):
        scale = chunk[:, None] / INT8_MAX
        q = np.minimum(np.round(centers[None, :] / scale), INT8_MAX) * scale
        err = ((centers[None, :] - q) ** 2 * hist[None, :]).sum(axis=1)
        k = int(np.argmin(err))
        if err[k] < best_err:
            best, best_err = float(chunk[k]), float(err[k])
    return float(min(best, stats.amax))


def compute_amax(stats: TensorStats, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
    """Dispatch on ``method`` (one of :data:`METHODS`)."""
    if method == "minmax":
        return amax_minmax(stats)
    if method == "percentile":
        return amax_percentile(stats, percentile)
    if method == "entropy":
        return amax_entropy(stats)
    if method == "mse":
        return amax_mse(stats)
    raise UserError(f"unknown calibration method '{method}' (choose from {', '.join(METHODS)})")
