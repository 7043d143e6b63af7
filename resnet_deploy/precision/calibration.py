"""Calibration: run the FP32 graph on ONNX Runtime (CPU) over a stream of images and keep, per tensor to quantize,
only a 2048-bin histogram of ``|x|`` and its exact max: memory does not grow with the number of images.

One pass over the data serves every tensor of both Q/DQ placements. Where the time goes (ResNet-50 at 224, 73
tensors, 17 M activation values per image, 2-core development VM, quiet, ``session.run`` per image):

* plain FP32 inference: 62 ms per image. The same graph with the 73 tensors as extra outputs: 152 ms, before any
  statistics. That gap is structural, and every peer pays it (ONNX Runtime's, ModelOpt's and NNCF's calibrators
  all expose the same tensors): an exposed tensor breaks ONNX Runtime's Conv+Add+ReLU fusion (an unfused Add costs
  14 ms per image) and its NCHWc layout chain (a ``ReorderOutput`` back to NCHW per tensor, 13 ms), and convolutions
  run slower unfused (profile: ``SessionOptions.enable_profiling``, aggregated per op type).
* Handing the activations to numpy cost more again: ``session.run`` copied 68 MB of float32 per image out of ONNX
  Runtime and numpy's ``abs`` / scale / ``astype`` / ``bincount`` passes took ~14 ns per value, 0.23 s per image;
  and all of a batch's outputs were alive at once (2.2 GB at batch 8). Now the graph itself bins each value
  (``Abs -> Mul(num_bins / range) -> Cast(uint16)``, on ONNX Runtime's threads: +7 ms per image) and returns 2 bytes
  per value; numpy only counts them (:func:`.histogram.count_bins`, ~3 ns per value, ~50 ms per image) on this
  thread while ONNX Runtime already runs the next batch, so the counting is hidden: calibration takes the time of
  its ONNX Runtime runs. The bins are the ones :meth:`.histogram.TensorStats.update` computes in numpy, bit for bit
  (tested): same float32 scale, same truncation, same widening when a batch exceeds the range.
* The batch is chosen from a memory budget (:data:`CALIBRATION_BUDGET_BYTES`: two batches of bins in flight), not
  from the number of images: on a CPU a batch of 1 runs ResNet-50 as fast per image as a batch of 8, so the peak
  stays flat whatever ``--calib-samples`` is. Small models (the bundled 28 x 28 ones) keep batch 32.
* Session options: no memory arena (it keeps the largest batch's blocks for the whole run), and ONNX Runtime's
  worker threads do not spin-wait between operators (measured: 4.9 s instead of 3.9 s for 24 images with
  spinning), so the counting thread gets a core.

A graph with a static batch axis (``torch.onnx.export(model, torch.randn(1, 3, 224, 224))``) is calibrated at its
own batch size; images left over from the last full batch are not used (and the count says so).
"""

from __future__ import annotations

import hashlib
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import UserError
from ..passes.qdq import QuantPlan
from .histogram import DEFAULT_PERCENTILE, METHODS, NUM_BINS, TensorStats, compute_amax

# Chosen by measurement (benchmarks/results/precision_accuracy.md): on both bundled checkpoints, in both Q/DQ
# placements, every method is within 0.15 point of FP32 top-1, so the criterion is agreement with the FP32 predictions:
# mse 99.48 %, percentile 99.99 99.47, percentile 99.999 99.44, minmax 99.29, entropy 99.16 (mean of four). mse and
# percentile 99.99 tie (0.02 points: two images in 10,000); percentile stays the default because it costs one CDF
# lookup per tensor where mse tries every threshold, and it is NVIDIA's ResNet-50 PTQ recipe (FP32 76.2 -> 76.1).
DEFAULT_METHOD = "percentile"
#: the largest calibration batch (what small models get)
MAX_BATCH = 32
DEFAULT_BATCH = MAX_BATCH
#: bytes of bins the calibration may hold at once (two batches: one counted while the next runs)
CALIBRATION_BUDGET_BYTES = 64 << 20
_BIN_DTYPE = np.uint16  # num_bins + 1 values fit
_PREFIX = "__resnet_deploy_calib"

Progress = Callable[[int, int], None]  # (images done, images in all)


@dataclass
class CalibrationData:
    """Calibration images as a stream: ``batches(n)`` yields float32 batches of at most ``n`` images, ``samples``
    in all, each image of ``sample_shape``. Only the batch being run is in memory."""

    samples: int
    sample_shape: tuple[int, ...]
    batches: Callable[[int], Iterable[np.ndarray]]

    @classmethod
    def from_array(cls, x: np.ndarray) -> CalibrationData:
        """Images already in memory (N x C x H x W)."""
        x = np.asarray(x)
        if x.ndim == 0 or len(x) == 0:
            raise UserError("calibration got zero samples: give calibration data with at least one image")

        def batches(n: int) -> Iterator[np.ndarray]:
            for i in range(0, len(x), n):
                yield x[i : i + n]

        return cls(int(len(x)), tuple(int(d) for d in x.shape[1:]), batches)

    def fingerprint(self, batch_size: int = MAX_BATCH) -> str:
        """sha256 of the images as float32 (what :func:`calibrate` records), reading them once, a batch at a time."""
        digest = DataDigest(self.samples, self.sample_shape)
        for batch in self.batches(batch_size):
            digest.update(batch)
        return digest.hexdigest()


class DataDigest:
    """sha256 of N float32 images fed a batch at a time: equal to hashing the whole N x C x H x W array at once
    (dtype and shape first, then the bytes), so a calibration cache's ``data.sha256`` does not depend on batching."""

    def __init__(self, samples: int, sample_shape: tuple[int, ...]) -> None:
        self._hash = hashlib.sha256(f"{np.dtype(np.float32).str}{(samples, *sample_shape)}".encode())

    def update(self, batch: np.ndarray) -> None:
        self._hash.update(np.ascontiguousarray(batch, dtype=np.float32).data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass
class CalibrationResult:
    """Per-tensor statistics from one calibration run, and how it went."""

    stats: dict[str, TensorStats]
    samples: int
    #: sha256 of the images used (see :class:`DataDigest`); None when they came as a bare iterable of batches
    data_sha256: str | None = None
    batch_size: int = 0
    #: the FP32 graph's top-1 class per image (None when its first output is not N x classes)
    fp32_top1: np.ndarray | None = None
    #: wall seconds: waiting for data, ONNX Runtime's runs, counting bins (overlapping the next run), all
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def amax(
        self,
        method: str = DEFAULT_METHOD,
        percentile: float = DEFAULT_PERCENTILE,
        exact: list[str] | set[str] | tuple[str, ...] = (),
    ) -> dict[str, float]:
        """``amax`` per tensor by ``method``; tensors in ``exact`` get their max (see :func:`plan_amax`)."""
        if method not in METHODS:
            raise UserError(f"unknown calibration method '{method}' (choose from {', '.join(METHODS)})")
        keep = set(exact)
        return {name: s.amax if name in keep else compute_amax(s, method, percentile) for name, s in self.stats.items()}


def plan_amax(
    result: CalibrationResult,
    plan: QuantPlan | list[QuantPlan],
    method: str = DEFAULT_METHOD,
    percentile: float = DEFAULT_PERCENTILE,
) -> dict[str, float]:
    """Ranges for ``plan`` (or several): ``method`` everywhere except the network-input tensors, which get their
    exact max.

    Why: the input of the first conv is a normalised image, not a post-ReLU activation. Its ``|x|`` histogram has a
    spike at the background value, and the KL search (entropy) puts the threshold right on that spike, clipping
    every brighter pixel (seen on fmnist_resnet20: amax 0.81 instead of 2.02, top-1 -9 points). Its range is
    bounded by the preprocessing, so max costs no resolution worth having.
    """
    plans = plan if isinstance(plan, list) else [plan]
    return result.amax(method, percentile, exact={t for p in plans for t in p.input_tensors})


def model_input(model: onnx.ModelProto) -> tuple[str, tuple[int | None, ...]]:
    """Name and shape (None for symbolic axes) of the model's single non-initializer input."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(f"calibration needs a model with one input, this one has {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)


def static_batch(model: onnx.ModelProto) -> int | None:
    """The batch size a graph with a fixed batch axis takes (``1`` for most exports users bring), else None."""
    _, shape = model_input(model)
    return shape[0] if shape else None


def check_data_shape(model: onnx.ModelProto, sample_shape: tuple[int, ...], what: str = "calibration data") -> None:
    """Raise a one-line error when per-image ``sample_shape`` does not fit the model's input."""
    _, shape = model_input(model)
    want = shape[1:]
    if len(want) != len(sample_shape) or any(w is not None and w != g for w, g in zip(want, sample_shape, strict=True)):
        pretty = "(" + ", ".join("?" if w is None else str(w) for w in want) + ")"
        raise UserError(f"{what} has images of shape {tuple(sample_shape)}; the model takes {pretty}")


def with_outputs(model: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``tensors`` (float32, shape left to ONNX Runtime)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    have = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in have:
            model.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    return model


def batches_of(x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> Iterator[np.ndarray]:
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size]


# ---------------------------------------------------------------------------------------------- the binning graph


@dataclass(frozen=True)
class _Probe:
    """The graph inputs and outputs that calibrate one tensor."""

    tensor: str
    range_in: str  # scalar input: the range to bin against (0 before the first batch)
    max_out: str  # scalar: max |x| of the batch
    sum_out: str  # scalar: sum |x| of the batch (NaN or inf when any value is)
    bins_out: str  # uint16 per element: trunc(|x| * num_bins / max(range, batch max))


def _nonnegative(model: onnx.ModelProto) -> set[str]:
    """Tensors that cannot be negative by construction (Relu outputs): their ``|x|`` is ``x``, one pass saved."""
    return {n.output[0] for n in model.graph.node if n.op_type == "Relu" and n.domain in ("", "ai.onnx")}


def binning_graph(model: onnx.ModelProto, tensors: list[str], num_bins: int = NUM_BINS) -> tuple[bytes, list[_Probe]]:
    """The serialized ``model`` with, per tensor, the nodes that bin its values; and what to feed and read.

    The additions are serialized on their own and appended to the model's bytes: concatenated protobuf messages
    parse as their merge (repeated fields append), so the weights are not copied into a second ModelProto.
    """
    extra = onnx.ModelProto()
    graph = extra.graph
    bins_const = f"{_PREFIX}_num_bins"
    graph.initializer.append(numpy_helper.from_array(np.array(num_bins, np.float32), bins_const))
    positive = _nonnegative(model)
    probes: list[_Probe] = []
    for i, tensor in enumerate(tensors):
        p = f"{_PREFIX}_{i}"
        probe = _Probe(tensor, f"{p}_range", f"{p}_max", f"{p}_sum", f"{p}_bins")
        absolute = tensor if tensor in positive else f"{p}_abs"
        nodes = [] if tensor in positive else [helper.make_node("Abs", [tensor], [absolute], name=f"{p}_Abs")]
        nodes += [
            helper.make_node("ReduceMax", [absolute], [probe.max_out], name=f"{p}_ReduceMax", keepdims=0),
            helper.make_node("ReduceSum", [absolute], [probe.sum_out], name=f"{p}_ReduceSum", keepdims=0),
            helper.make_node("Max", [probe.max_out, probe.range_in], [f"{p}_hist_max"], name=f"{p}_Max"),
            helper.make_node("Div", [bins_const, f"{p}_hist_max"], [f"{p}_scale"], name=f"{p}_Div"),
            helper.make_node("Mul", [absolute, f"{p}_scale"], [f"{p}_scaled"], name=f"{p}_Mul"),
            helper.make_node("Cast", [f"{p}_scaled"], [probe.bins_out], name=f"{p}_Cast", to=TensorProto.UINT16),
        ]
        graph.node.extend(nodes)
        graph.input.append(helper.make_tensor_value_info(probe.range_in, TensorProto.FLOAT, []))
        graph.output.extend(
            [
                helper.make_tensor_value_info(probe.max_out, TensorProto.FLOAT, []),
                helper.make_tensor_value_info(probe.sum_out, TensorProto.FLOAT, []),
                helper.make_tensor_value_info(probe.bins_out, TensorProto.UINT16, None),
            ]
        )
        probes.append(probe)
    return model.SerializeToString() + extra.SerializeToString(), probes


def values_per_image(model: onnx.ModelProto, tensors: list[str]) -> int | None:
    """Activation values per image over ``tensors`` (from ONNX shape inference); None when a shape is unknown."""
    from .cache import tensor_shapes

    total = 0
    for dims in tensor_shapes(model, tensors).values():
        per_image = [d for d in dims[1:] if isinstance(d, int) and d > 0]
        if not dims or len(per_image) != len(dims) - 1:
            return None
        total += math.prod(per_image)
    return total


def auto_batch(per_image: int | None, budget: int = CALIBRATION_BUDGET_BYTES) -> int:
    """The calibration batch for ``per_image`` values per image: two batches of uint16 bins within ``budget``."""
    if per_image is None:
        return 1
    return int(max(1, min(MAX_BATCH, budget // (2 * np.dtype(_BIN_DTYPE).itemsize * max(per_image, 1)))))


#: ONNX Runtime's log severity for the calibration and INT8 check sessions (3: errors only); ``build --verbose``
#: sets 0 through :func:`onnxruntime_log` so its log covers every session of the build, not only the last one
LOG_SEVERITY: ContextVar[int] = ContextVar("onnxruntime_log_severity", default=3)


@contextmanager
def onnxruntime_log(severity: int) -> Iterator[None]:
    """ONNX Runtime's log at ``severity`` (0 verbose .. 4 fatal) for the sessions this module opens meanwhile."""
    token = LOG_SEVERITY.set(severity)
    try:
        yield
    finally:
        LOG_SEVERITY.reset(token)


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime options for calibration (see the module docstring for why each)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = LOG_SEVERITY.get()
    opts.enable_cpu_mem_arena = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    return opts


def _prefetch(batches: Iterable[np.ndarray], depth: int = 1) -> Iterator[np.ndarray]:
    """Iterate ``batches`` on a background thread, ``depth`` batches ahead: decoding the next images overlaps the
    run (Pillow and numpy release the GIL)."""
    done = object()
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        q.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    worker = threading.Thread(target=produce, name="calibration-data", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def rebatch(batches: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Exactly ``size`` images per batch (a static batch axis), dropping the incomplete rest."""
    pending: list[np.ndarray] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += len(batch)
        while held >= size:
            whole = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield whole[:size]
            rest = whole[size:]
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)


def calibrate(
    model: onnx.ModelProto,
    tensors: list[str],
    batches: CalibrationData | Iterable[np.ndarray],
    num_bins: int = NUM_BINS,
    threads: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    batch_size: int | None = None,
    on_progress: Progress | None = None,
) -> CalibrationResult:
    """Run ``model`` (float32) over the images and return the statistics of ``tensors``.

    ``batches`` is a :class:`CalibrationData` (streamed ``batch_size`` images at a time; None: chosen by
    :func:`auto_batch`, or the model's own static batch) or any iterable of ready batches. Raises
    :class:`UserError` on zero samples or a batch whose shape does not fit the model.
    """
    import onnxruntime as ort

    name, _ = model_input(model)
    fixed = static_batch(model)
    notes: list[str] = []
    digest: DataDigest | None = None
    total = 0
    if isinstance(batches, CalibrationData):
        check_data_shape(model, batches.sample_shape)
        total = batches.samples
        if fixed is not None:
            if batch_size is not None and batch_size != fixed:
                notes.append(f"the model has a static batch of {fixed}: calibrated {fixed} at a time, not {batch_size}")
            batch_size = fixed
            usable = total - total % fixed
            if usable == 0:
                raise UserError(f"the model takes batches of exactly {fixed} images; calibration has only {total}")
            if usable < total:
                notes.append(f"static batch {fixed}: the last {total - usable} calibration images are not used")
            total = usable
        elif batch_size is None:
            batch_size = auto_batch(values_per_image(model, tensors))
        digest = DataDigest(total, batches.sample_shape)
        stream: Iterable[np.ndarray] = batches.batches(batch_size)
        if fixed is not None:
            stream = rebatch(stream, fixed)
    else:
        stream = batches
    data, probes = binning_graph(model, tensors, num_bins)
    try:
        sess = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"ONNX Runtime cannot load the model for calibration: {first}") from None
    del data
    logits = model.graph.output[0].name if model.graph.output else None
    fetch = [n for p in probes for n in (p.max_out, p.sum_out, p.bins_out)] + ([logits] if logits else [])
    stats = {t: TensorStats(num_bins) for t in tensors}
    # The range each tensor's next batch is binned against; it moves on as soon as a run returns its maxima, so the
    # next run can start before this one's bins are counted (the same rule TensorStats.add_binned applies).
    ranges = {t: 0.0 for t in tensors}
    top1: list[np.ndarray] = []
    seconds = {"data": 0.0, "run": 0.0, "count": 0.0, "wait": 0.0}
    samples = 0
    used_batch = 0
    start = time.perf_counter()

    def run(feed: dict[str, Any]) -> list[Any]:
        t0 = time.perf_counter()
        try:
            outs: list[Any] = sess.run(fetch, feed)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            shape = tuple(feed[name].shape)
            raise UserError(f"ONNX Runtime failed on a calibration batch of shape {shape}: {first}") from None
        seconds["run"] += time.perf_counter() - t0
        return outs

    def feed_for(x: np.ndarray) -> dict[str, Any]:
        feed: dict[str, Any] = {name: x}
        for p in probes:
            feed[p.range_in] = np.array(ranges[p.tensor], dtype=np.float32)
        return feed

    def advance_ranges(outs: list[Any]) -> None:
        for k, p in enumerate(probes):
            batch_max = float(outs[3 * k])
            if not np.isfinite(batch_max) or outs[3 * k + 2].size == 0:
                continue  # reported (or skipped) when the batch is counted
            before = ranges[p.tensor]
            ranges[p.tensor] = (batch_max if batch_max > 0 else 1.0) if before == 0.0 else max(before, batch_max)

    def count(x_len: int, outs: list[Any]) -> None:
        t0 = time.perf_counter()
        for k, p in enumerate(probes):
            batch_max, batch_sum, bins = outs[3 * k], outs[3 * k + 1], outs[3 * k + 2]
            if not (np.isfinite(batch_max) and np.isfinite(batch_sum)):
                raise UserError(
                    f"calibration produced non-finite activations (inf/NaN) at tensor '{p.tensor}': check the "
                    "model's weights and the data"
                )
            stats[p.tensor].add_binned(float(batch_max), bins)
        if logits is not None:
            out = np.asarray(outs[-1])
            if out.ndim == 2 and out.shape[0] == x_len:
                top1.append(np.argmax(out, axis=1))
        seconds["count"] += time.perf_counter() - t0

    def checked(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        check_data_shape(model, tuple(x.shape[1:]))
        if fixed is not None and len(x) != fixed:
            raise UserError(f"the model takes batches of exactly {fixed} images, got {len(x)}")
        return x

    # ONNX Runtime runs batch k+1 on the worker thread (it releases the GIL) while this thread counts batch k's bins,
    # and the next images are decoded on the prefetch thread meanwhile.
    source = _prefetch(stream) if isinstance(batches, CalibrationData) else iter(stream)
    with ThreadPoolExecutor(1, thread_name_prefix="calibration-run") as runner:
        pending: tuple[int, Future[list[Any]]] | None = None
        while True:
            t0 = time.perf_counter()
            raw = next(source, None)
            while raw is not None and (np.ndim(raw) < 1 or len(raw) == 0):
                raw = next(source, None)
            seconds["data"] += time.perf_counter() - t0
            outs: list[Any] | None = None
            if pending is not None:
                t0 = time.perf_counter()
                outs = pending[1].result()
                seconds["wait"] += time.perf_counter() - t0
                advance_ranges(outs)
            submitted: tuple[int, Future[list[Any]]] | None = None
            if raw is not None:
                x = checked(raw)
                if digest is not None:
                    digest.update(x)
                used_batch = max(used_batch, len(x))
                submitted = (len(x), runner.submit(run, feed_for(x)))
            if pending is not None and outs is not None:
                count(pending[0], outs)
                samples += pending[0]
                if on_batch is not None:
                    on_batch(pending[0])
                if on_progress is not None:
                    on_progress(samples, total or samples)
            pending = submitted
            if pending is None:
                break
    if samples == 0:
        raise UserError("calibration got zero samples: give calibration data with at least one image")
    seconds["all"] = time.perf_counter() - start
    return CalibrationResult(
        stats=stats,
        samples=samples,
        data_sha256=digest.hexdigest() if digest is not None else None,
        batch_size=used_batch,
        fp32_top1=np.concatenate(top1) if top1 and sum(len(t) for t in top1) == samples else None,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        notes=notes,
    )
