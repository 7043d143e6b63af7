"""Post-training quantization: plan every placement, calibrate once, place per backend.

* :func:`calibrate_for_placements` then :func:`place`: one calibration, any placement, method and kept layers
  (what the precision benchmarks compare);
* :func:`quantize_int8`: what ``build`` runs: the same steps with a calibration cache, option checks and
  accuracy-aware mixed precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import UserError
from ..passes import PassReport
from ..passes.graph import name_nodes
from ..passes.qdq import KEEP_DTYPES, QuantPlan, insert_qdq
from .cache import CalibrationCache, check_cache, graph_fingerprint, load_cache
from .calibration import (
    DEFAULT_BATCH,
    DEFAULT_METHOD,
    CalibrationData,
    CalibrationResult,
    Progress,
    calibrate,
    check_data_shape,
    model_input,
    plan_amax,
    rebatch,
    session_options,
    static_batch,
)
from .histogram import DEFAULT_PERCENTILE, METHODS, NUM_BINS
from .mixed import MixedPrecisionResult, search_keep_float
from .placement import PLACEMENTS, plan_placements


@dataclass
class Int8Options:
    """How to quantize. ``method``/``percentile`` None: the default, or whatever a reused cache says."""

    method: str | None = None
    percentile: float | None = None
    cache_path: str | Path | None = None
    #: images per calibration run; None: from a memory budget (:func:`.calibration.auto_batch`), or the model's own
    #: static batch
    batch_size: int | None = None
    max_accuracy_drop: float | None = None
    #: Q/DQ placement (:mod:`.placement`): "tensorrt" (parses in TensorRT, also runs on ONNX Runtime), "onnxruntime"
    #: (int8 kernels on ONNX Runtime; TensorRT cannot parse it) or "openvino" (the same, signed tensors in int8);
    #: None: "tensorrt" here, the backend's own in build
    placement: str | None = None
    #: dtype of layers kept out of int8 by ``max_accuracy_drop``; None: fp16 for TensorRT, fp32 for ONNX Runtime
    keep_dtype: str | None = None
    #: calibration images on which the INT8 graph's top-1 is compared with the FP32 graph's (0: no check)
    check_samples: int = 128

    def resolved_placement(self) -> str:
        return self.placement or "tensorrt"

    def resolved_keep_dtype(self) -> str:
        return self.keep_dtype or ("fp16" if self.resolved_placement() == "tensorrt" else "fp32")

    def resolved_method(self) -> str:
        return self.method or DEFAULT_METHOD

    def validate(self) -> None:
        if self.method is not None and self.method not in METHODS:
            raise UserError(f"unknown calibration method '{self.method}' (choose from {', '.join(METHODS)})")
        if self.percentile is not None and not 0 < self.percentile <= 100:
            raise UserError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.percentile is not None and self.resolved_method() != "percentile":
            raise UserError("--calib-percentile only applies to --calib-method percentile")
        if self.placement is not None and self.placement not in PLACEMENTS:
            raise UserError(f"unknown Q/DQ placement '{self.placement}' (choose from {', '.join(PLACEMENTS)})")
        if self.keep_dtype is not None and self.keep_dtype not in KEEP_DTYPES:
            raise UserError(f"unknown dtype '{self.keep_dtype}' for layers kept out of int8 (choose fp32 or fp16)")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError(f"--calib-batch must be at least 1, got {self.batch_size}")
        if self.check_samples < 0:
            raise UserError(f"--calib-check must be at least 0, got {self.check_samples}")


@dataclass
class Int8Result:
    """The quantized graph and how it was obtained; ``cache_to_write`` is set when a new cache should be saved."""

    model: onnx.ModelProto
    report: PassReport
    method: str
    params: dict[str, Any]
    amax: dict[str, float]
    source: str  # "calibration" | "cache"
    samples: int
    seconds: float
    cache: CalibrationCache
    cache_to_write: Path | None = None
    mixed: MixedPrecisionResult | None = None
    layers: list[str] = field(default_factory=list)
    placement: str = "tensorrt"
    #: images per calibration run (0 when the ranges came from a cache)
    batch_size: int = 0
    #: where the calibration's time went (see :class:`.calibration.CalibrationResult`)
    timing: dict[str, float] = field(default_factory=dict)
    #: INT8 against FP32 top-1 on calibration images (:func:`top1_agreement`), when checked
    agreement: Agreement | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "placement": self.placement,
            "method": self.method,
            "params": self.params,
            "source": self.source,
            "samples": self.samples,
            "batch_size": self.batch_size,
            "seconds": round(self.seconds, 3),
            "timing": self.timing,
            "data": self.cache.data,
            "quantized_tensors": len(self.amax),
            "quantized_layers": len(self.layers) - (len(self.mixed.keep_float) if self.mixed else 0),
            "mixed_precision": self.mixed.to_dict() if self.mixed else None,
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "notes": self.notes,
        }


@dataclass
class Agreement:
    """How often the INT8 graph's top-1 class equals the FP32 graph's, on ``samples`` calibration images."""

    samples: int
    agree: int

    @property
    def percent(self) -> float:
        return 100.0 * self.agree / self.samples if self.samples else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "agree": self.agree, "percent": round(self.percent, 2)}

    def describe(self) -> str:
        return (
            f"INT8 top-1 agrees with FP32 on {self.agree} of {self.samples} calibration images "
            f"({self.percent:.1f} %, ONNX Runtime)"
        )


def quantize_int8(
    model: onnx.ModelProto,
    calib: np.ndarray | CalibrationData | None,
    options: Int8Options | None = None,
    data_desc: dict[str, Any] | None = None,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_progress: Progress | None = None,
) -> Int8Result:
    """INT8 Q/DQ version of the float32 ``model``.

    ``calib`` (a :class:`.calibration.CalibrationData` stream, or N x C x H x W float32 images in memory) is needed
    unless ``options.cache_path`` names an existing, matching cache. ``data_desc`` (e.g. ``{"spec":
    "fashion-mnist:train"}``) is recorded in the cache. ``eval_data`` is required with
    ``options.max_accuracy_drop``. ``on_progress(done, total)`` follows the calibration image by image. The cache is
    not written here: the caller saves ``cache_to_write`` once its own output is safely written.
    """
    options = options or Int8Options()
    options.validate()
    start = time.perf_counter()

    def say(msg: str) -> None:
        if on_step is not None:
            on_step(msg)

    named = _named(model)
    plans = plan_placements(named)
    placement = options.resolved_placement()
    plan = plans[placement]
    if not plan.layers:
        raise UserError("the model has no Conv/Gemm layer with float32 weights to quantize")
    # One calibration serves both placements, so one cache serves both backends.
    tensors = calibration_tensors(plans.values())
    fingerprint = graph_fingerprint(named, tensors)
    cache_path = Path(options.cache_path) if options.cache_path is not None else None
    cache_to_write: Path | None = None
    data = _calibration_data(named, calib) if calib is not None else None

    params: dict[str, Any]
    result: CalibrationResult | None = None
    if cache_path is not None and cache_path.exists():
        cache = load_cache(cache_path)
        check_cache(cache, fingerprint, cache_path, options.method, options.percentile)
        if data is not None and cache.data.get("sha256") is not None:
            say("checking the calibration data against the cache")
            if cache.data["sha256"] != data.fingerprint():
                raise UserError(
                    f"calibration cache {cache_path} was made from other calibration data than the data given now; "
                    "drop --calib-data to reuse it, or point --calib-cache at a new file"
                )
        amax = {t: cache.amax[t] for t in tensors}
        method, params, source = cache.method, dict(cache.params), "cache"
        samples = int(cache.data.get("samples", 0) or 0)
        say(f"reusing calibration cache {cache_path} ({method})")
    else:
        if data is None:
            raise UserError("INT8 needs calibration data (--calib-data) or an existing --calib-cache")
        method = options.resolved_method()
        percentile = options.percentile if options.percentile is not None else DEFAULT_PERCENTILE
        params = {"num_bins": NUM_BINS, "input_tensors": "max"}
        if method == "percentile":
            params["percentile"] = percentile
        say(f"calibrating on {data.samples} images")
        result = calibrate(named, tensors, data, batch_size=options.batch_size, on_progress=on_progress)
        say(f"computing ranges ({method})")
        amax = plan_amax(result, list(plans.values()), method, percentile)
        samples, source = result.samples, "calibration"
        described = {**(data_desc or {}), "samples": samples, "sha256": result.data_sha256}
        cache = CalibrationCache(graph=fingerprint, method=method, params=params, data=described, amax=amax)
        if cache_path is not None:
            cache_to_write = cache_path

    mixed: MixedPrecisionResult | None = None
    keep: set[str] = set()
    if options.max_accuracy_drop is not None:
        if eval_data is None:
            raise UserError("--max-accuracy-drop needs evaluation data (--eval-data)")
        ex, ey = eval_data
        check_data_shape(named, tuple(ex.shape[1:]), "evaluation data")
        mixed = search_keep_float(
            named, plan, amax, ex, ey, options.max_accuracy_drop, on_step=say, keep_dtype=options.resolved_keep_dtype()
        )
        keep = set(mixed.keep_float)

    say(f"inserting Q/DQ ({placement} placement)")
    quantized, report = insert_qdq(named, plan, amax, keep, options.resolved_keep_dtype())
    report.notes.append(f"ranges: {method} ({source}, {samples} samples)")
    agreement = None
    if result is not None and data is not None and result.fp32_top1 is not None and options.check_samples > 0:
        n = min(options.check_samples, len(result.fp32_top1))
        say(f"comparing INT8 with FP32 top-1 on {n} calibration images")
        agreement = top1_agreement(quantized, data, result.fp32_top1[:n])
    return Int8Result(
        model=quantized,
        report=report,
        method=method,
        params=params,
        amax=amax,
        source=source,
        samples=samples,
        seconds=time.perf_counter() - start,
        cache=cache,
        cache_to_write=cache_to_write,
        mixed=mixed,
        layers=list(plan.layers),
        placement=placement,
        batch_size=result.batch_size if result is not None else 0,
        timing=dict(result.seconds) if result is not None else {},
        agreement=agreement,
        notes=list(result.notes) if result is not None else [],
    )


def top1_agreement(quantized: onnx.ModelProto, data: CalibrationData, fp32_top1: np.ndarray) -> Agreement:
    """Run ``quantized`` on ONNX Runtime over the first ``len(fp32_top1)`` images of ``data`` (at the model's
    static batch, if it has one) and count where its top-1 equals ``fp32_top1``."""
    import onnxruntime as ort

    name, _ = model_input(quantized)
    fixed = static_batch(quantized)
    batch = fixed or DEFAULT_BATCH
    wanted = len(fp32_top1) - len(fp32_top1) % batch if fixed else len(fp32_top1)
    opts = session_options()
    opts.enable_cpu_mem_arena = True  # a short run of one batch shape: the arena is the faster choice here
    try:
        sess = ort.InferenceSession(quantized.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"ONNX Runtime cannot load the INT8 graph: {first}") from None
    output = sess.get_outputs()[0].name
    stream = data.batches(batch)
    if fixed is not None:
        stream = rebatch(stream, fixed)
    agree = done = 0
    for x in stream:
        x = np.ascontiguousarray(x[: wanted - done], dtype=np.float32)
        if len(x) == 0:
            break
        pred = np.argmax(np.asarray(sess.run([output], {name: x})[0]), axis=1)
        agree += int((pred == fp32_top1[done : done + len(x)]).sum())
        done += len(x)
    return Agreement(samples=done, agree=agree)


def calibration_tensors(plans: Iterable[QuantPlan]) -> list[str]:
    """The tensors to calibrate for all of ``plans`` (graph order of the first plan, then the others')."""
    return list(dict.fromkeys(t for p in plans for t in p.tensors))


@dataclass
class Calibration:
    """One calibration of a float32 graph that serves every placement: the graph with its nodes named, each
    placement's plan, and the statistics of all their tensors."""

    model: onnx.ModelProto
    plans: dict[str, QuantPlan]
    result: CalibrationResult

    @property
    def samples(self) -> int:
        return self.result.samples

    def amax(self, method: str = DEFAULT_METHOD, percentile: float = DEFAULT_PERCENTILE) -> dict[str, float]:
        """The ranges by ``method`` of every placement's tensors (network-input tensors by max: see
        :func:`.calibration.plan_amax`)."""
        return plan_amax(self.result, list(self.plans.values()), method, percentile)


def calibrate_for_placements(
    model: onnx.ModelProto, calib: np.ndarray | CalibrationData, batch_size: int | None = DEFAULT_BATCH
) -> Calibration:
    """Plan every placement of the float32 ``model`` and calibrate all their tensors in one run over ``calib``
    (N x C x H x W float32, or a stream) on ONNX Runtime CPU, ``batch_size`` images at a time (None: from the
    memory budget)."""
    named = _named(model)
    plans = plan_placements(named)
    if not any(plan.layers for plan in plans.values()):
        raise UserError("the model has no Conv/Gemm layer with float32 weights to quantize")
    data = _calibration_data(named, calib)
    result = calibrate(named, calibration_tensors(plans.values()), data, batch_size=batch_size)
    return Calibration(named, plans, result)


def place(
    calibration: Calibration,
    placement: str,
    method: str = DEFAULT_METHOD,
    percentile: float = DEFAULT_PERCENTILE,
    keep_float: set[str] | frozenset[str] = frozenset(),
    keep_dtype: str = "fp32",
) -> tuple[onnx.ModelProto, PassReport]:
    """The INT8 graph for ``placement`` with ranges by ``method`` from ``calibration``; the layers in
    ``keep_float`` stay in ``keep_dtype`` (see :func:`resnet_deploy.passes.qdq.insert_qdq`)."""
    if placement not in calibration.plans:
        raise UserError(f"unknown Q/DQ placement '{placement}' (choose from {', '.join(calibration.plans)})")
    plan = calibration.plans[placement]
    return insert_qdq(calibration.model, plan, calibration.amax(method, percentile), keep_float, keep_dtype)


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` itself when its nodes already have unique names (every exporter's graph), else a named copy: a
    ResNet-50 is 100 MB, and calibration is where memory is tight."""
    names = [n.name for n in model.graph.node]
    if all(names) and len(set(names)) == len(names):
        return model
    return name_nodes(model)


def _calibration_data(named: onnx.ModelProto, calib: np.ndarray | CalibrationData) -> CalibrationData:
    """``calib`` as a stream, checked to hold at least one image of the shape the model takes."""
    data = calib if isinstance(calib, CalibrationData) else CalibrationData.from_array(calib)
    if data.samples < 1:
        raise UserError("calibration got zero samples: give calibration data with at least one image")
    check_data_shape(named, data.sample_shape)
    return data
