"""The stages of ``build``, one function each, in pipeline order. Each takes the graph so far, records what it did
in the :class:`~.result.BuildResult`, and returns the next graph:

load or export -> simplify + fold BN (:data:`EXPORT_PASSES`) -> precision -> residual fusion -> backend build ->
write.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._io import atomic_write_bytes
from .._version import __version__
from ..backends.openvino import openvino_available
from ..errors import UserError
from ..info import RUNTIME_KEY, ModelInfo, has_dynamic_hw
from ..models.bundled import bundled_checkpoints
from ..onnx_io import QDQ_OPS, check_finite_weights, info_from_onnx, load_onnx, set_info, set_metadata
from ..passes import Pass, PassReport, run_passes
from ..passes.fold_bn import fold_batchnorm
from ..passes.simplify import simplify
from .options import (
    DEFAULT_CHECKPOINT,
    DEFAULT_PLACEMENT,
    SHAPE_FLAGS,
    SYNTHETIC,
    BuildOptions,
    parse_shape,
)
from .result import BuildResult

#: The passes every graph goes through before precision: the same list for exported and for given ONNX files.
EXPORT_PASSES: tuple[Pass, ...] = (simplify, fold_batchnorm)

Say = Callable[[str, str], None]  # (stage, detail)


@dataclass
class Source:
    """The FP32 graph a build starts from."""

    model: onnx.ModelProto
    info: ModelInfo | None
    description: str
    exported: bool  # True: we exported it from PyTorch (so it carries our producer name)
    #: what the shape flags changed in the export ("exported at 32x32", "exported with dynamic H and W ..."), or None
    spatial: str | None = None


# ------------------------------------------------------------------------------------------------ load or export


def load_or_export(options: BuildOptions, say: Say) -> Source:
    """The float32 graph of ``--onnx``, or the raw export of ``--arch/--weights`` (the bundled default if neither)."""
    if options.onnx is not None:
        say("load", f"reading {options.onnx}")
        model = load_onnx(options.onnx)
        if any(n.op_type in QDQ_OPS for n in model.graph.node):
            raise UserError(f"{options.onnx} is already quantized (Q/DQ nodes): give the float32 model")
        return Source(model, info_from_onnx(model), str(options.onnx), exported=False)
    weights = options.weights
    if options.arch is None and weights is None:
        if DEFAULT_CHECKPOINT not in bundled_checkpoints():
            raise UserError(
                f"no model given and the bundled checkpoint {DEFAULT_CHECKPOINT} is not installed: "
                "pass --arch/--weights or --onnx"
            )
        weights = DEFAULT_CHECKPOINT
    from ..export import torch_to_onnx
    from ..models.registry import get_arch
    from ..models.weights import load_model
    from .shapes import check_for_export, spatial_profile

    say("export", f"loading {weights or options.arch}")
    net, info = load_model(options.arch, weights)
    source = str(weights if weights is not None else f"{options.arch} (random weights)")
    profile, spatial = spatial_profile(options), None
    if profile is not None and profile.as_tuple() != ((info.input_size, info.input_size),) * 3:
        # Another H x W: traced at the opt size (which the metadata records: images are resized to it), with
        # dynamic H and W axes for a range.
        check_for_export(profile, info.in_channels, get_arch(info.arch).min_input_size, info.arch)
        info = replace(info, input_size=profile.opt[0])
        spatial = (
            f"exported at {profile.describe()}"
            if profile.fixed
            else (f"exported with dynamic H and W ({profile.describe()}); images are resized to the opt size")
        )
    say("export", "torch.onnx export")
    dynamic = profile is not None and spatial is not None and not profile.fixed
    model = torch_to_onnx(net, info, opset=options.opset, dynamic_hw=dynamic)
    return Source(model, info, source, exported=True, spatial=spatial)


def apply_shapes(options: BuildOptions, source: Source, backend: str = "tensorrt") -> BuildOptions:
    """``options`` with the batch and H x W profile that ``--min/--opt/--max-shapes`` give, after checking each
    names the graph's input and its C, and H, W where the graph fixes them (a foreign graph; our export already
    took the flags' size, see :func:`load_or_export`). A batch flag given as well must agree. For the CPU
    backends the flags matter only through H x W (the ONNX graph keeps its dynamic batch axis)."""
    from ..precision.calibration import model_input
    from .shapes import check_square, spatial_profile

    if not options.shapes:
        return options
    model = source.model
    name, shape = model_input(model)
    profile = spatial_profile(options)
    dynamic_hw = has_dynamic_hw(shape)
    if dynamic_hw and profile is not None:
        check_square(profile)
        if source.info is not None and source.info.input_size != profile.opt[0]:
            # a graph of ours with dynamic H and W, built again with another opt size: images follow the new one
            source.info = replace(source.info, input_size=profile.opt[0])
            source.spatial = f"images are resized to the new opt size {profile.opt[0]}x{profile.opt[1]}"
    batches: dict[str, int] = {}
    for key, spec in options.shapes.items():
        flag = SHAPE_FLAGS[key]
        given, dims = parse_shape(spec, flag)
        if given != name:
            raise UserError(f"{flag} '{spec}' names input '{given}'; the model's input is '{name}'")
        if shape[1] is not None and dims[1] != shape[1]:
            raise UserError(f"{flag} '{spec}': the model takes C = {shape[1]} input channel(s), not {dims[1]}")
        fixed = shape[1:]
        if any(f is not None and f != d for f, d in zip(fixed, dims[1:], strict=True)):
            pretty = "x".join("?" if f is None else str(f) for f in fixed)
            raise UserError(
                f"{flag} '{spec}': the graph's C x H x W is fixed at {pretty}; only the batch can vary (export the "
                "model at another input size for another H x W)"
            )
        batches[key] = dims[0]
    if backend != "tensorrt":
        if source.spatial is None and not dynamic_hw:
            first = SHAPE_FLAGS[next(iter(options.shapes))]
            raise UserError(f"{first} only applies to the TensorRT backend (or to set another H x W)")
        return options
    e = options.engine
    for key, flag, value in (("min", "--min-batch", e.min_batch), ("opt", "--opt-batch", e.opt_batch),
                             ("max", "--max-batch", e.max_batch)):  # fmt: skip
        explicit = value is not None and not (key == "min" and value == 1)
        if key in batches and explicit and value != batches[key]:
            raise UserError(f"{flag} {value} contradicts {SHAPE_FLAGS[key]} {options.shapes[key]}")
    engine = replace(
        e,
        min_batch=batches.get("min", e.min_batch),
        opt_batch=batches.get("opt", e.opt_batch),
        max_batch=batches.get("max", e.max_batch),
        hw_profile=profile.as_tuple() if profile is not None and dynamic_hw else None,
    )
    engine.validate()
    return replace(options, engine=engine)


def check_static_batch(options: BuildOptions, model: onnx.ModelProto, backend: str) -> None:
    """A graph with a fixed batch axis builds an engine of that batch only: batch flags that ask for another one
    are refused before any work, rather than pinned and recorded as if the engine had them. (Making the axis
    dynamic is not safe in general: a torchvision export to batch 1 may hold Reshapes to ``[1, -1]``.)"""
    from ..precision.calibration import static_batch

    b = static_batch(model)
    e = options.engine
    asked = [
        (flag, v)
        for flag, v in (("--min-batch", e.min_batch), ("--opt-batch", e.opt_batch), ("--max-batch", e.max_batch))
        if v is not None and not (flag == "--min-batch" and v == 1)
    ]
    if backend != "tensorrt" or b is None or all(v == b for _, v in asked):
        return
    wrong = ", ".join(f"{flag} {v}" for flag, v in asked if v != b)
    raise UserError(
        f"{wrong}: the ONNX input has a fixed batch of {b}, so the engine can only take batch {b}; export it with "
        "a dynamic batch axis (torch.onnx.export(..., dynamic_axes={'input': {0: 'N'}})) or drop the flag"
    )


def with_labels(source: Source, labels: list[str], path: str | Path | None) -> ModelInfo:
    """``source``'s model info with the class names of ``--labels``: they travel in the ONNX metadata and the
    engine's sidecar, and ``infer`` shows them. A graph without resnet-deploy metadata has no info to carry them."""
    from ..data.labels import check_label_count

    if source.info is None:
        raise UserError(
            f"--labels: {source.description} has no resnet-deploy metadata to store class names in; pass them at "
            "run time (infer --labels) instead"
        )
    check_label_count(labels, source.info.num_classes, path or "", source.description)
    return replace(source.info, labels=labels)


def export_passes(source: Source, say: Say) -> tuple[onnx.ModelProto, list[PassReport]]:
    """Run :data:`EXPORT_PASSES` (onnxsim, BatchNorm folding), then stamp producer and model info.

    The raw graph is released from ``source`` once the passes have copied it: a ResNet-50 is 100 MB, and the
    build's peak memory comes later, during calibration.
    """
    say("simplify", "onnxsim, BatchNorm folding")
    model, reports = run_passes(source.model, EXPORT_PASSES)
    check_finite_weights(model, source.description)  # NaN weights, or BatchNorm folding that overflowed
    source.model = onnx.ModelProto()
    if source.exported:
        model.producer_name = "resnet-deploy"
        model.producer_version = __version__  # not the torch version the exporter left there
    if source.info is not None:
        set_info(model, source.info)
    if source.exported:
        onnx.checker.check_model(model)
    return model, reports


# ------------------------------------------------------------------------------------------------------ precision


def is_bundled(info: ModelInfo | None) -> bool:
    return info is not None and info.name is not None and info.name in bundled_checkpoints()


def input_shape_at_opt(model: onnx.ModelProto, options: BuildOptions | None) -> tuple[int | None, ...]:
    """The graph's input shape, with dynamic H and W set to the opt H x W of the shape flags (if given): the size
    calibration and evaluation images are resized to."""
    from ..precision.calibration import model_input
    from .shapes import spatial_profile

    _, shape = model_input(model)
    profile = spatial_profile(options) if options is not None else None
    if profile is not None and has_dynamic_hw(shape):
        return (shape[0], shape[1], *profile.opt)
    return shape


def _input_chw(model: onnx.ModelProto, options: BuildOptions) -> tuple[int, ...]:
    shape = input_shape_at_opt(model, options)
    if any(d is None for d in shape[1:]):
        raise UserError(f"the model input has dynamic image dimensions {shape}: cannot make synthetic data")
    return tuple(int(d) for d in shape[1:] if d is not None)


def data_info(model: onnx.ModelProto, info: ModelInfo | None, options: BuildOptions | None = None) -> ModelInfo | None:
    """How to preprocess images for ``model``: its own metadata (whose input size is the opt size of a graph with
    dynamic H and W), else what its input shape tells (a foreign N x C x S x S graph, or dynamic H and W at the
    shape flags' opt S x S: resize to S, ImageNet mean/std for 3 channels, as torchvision's models expect)."""
    from ..info import describe_or_shape

    return describe_or_shape(info, input_shape_at_opt(model, options))


def calibration_data(
    options: BuildOptions, model: onnx.ModelProto, info: ModelInfo | None, result: BuildResult, say: Say
) -> tuple[Any, dict[str, Any]]:
    """The calibration images the options ask for as a stream (a :class:`~..precision.calibration.CalibrationData`;
    a bundled checkpoint defaults to its training set), or None when an existing cache is to be reused. Images
    are decoded a batch at a time when calibration reads them: nothing is loaded here."""
    from ..data import open_dataset
    from ..precision.calibration import CalibrationData, check_data_shape

    if options.int8.cache_path is not None and Path(options.int8.cache_path).exists() and options.calib_data is None:
        return None, {}
    spec = options.calib_data
    if spec is None:
        if not is_bundled(info):
            raise UserError(
                "INT8 needs calibration data for this model: pass --calib-data SPEC (a folder of training images, "
                "a .npz or .npy, fashion-mnist:train) or --calib-data synthetic for a speed-only build"
            )
        spec = "fashion-mnist:train"
        result.notes.append(f"calibration data: first {options.calib_samples} images of {spec} (bundled checkpoint)")
    if spec == SYNTHETIC:
        msg = (
            "calibrating on SYNTHETIC random images: the INT8 scales do not reflect real data and ACCURACY WILL BE "
            "MEANINGLESS; use this build for speed measurements only"
        )
        result.warnings.append(msg)
        say("warning", msg)
        chw, count = _input_chw(model, options), options.calib_samples
        if options.shapes:
            result.notes.append(f"calibration images are at the opt H x W {chw[1]}x{chw[2]}")

        def synthetic(batch: int) -> Any:
            rng = np.random.default_rng(0)  # drawn in chunks, the same images as one rng.random((count, ...))
            for start in range(0, count, batch):
                yield rng.random((min(batch, count - start), *chw), dtype=np.float32)

        return CalibrationData(count, chw, synthetic), {"spec": SYNTHETIC, "seed": 0}
    preprocess = data_info(model, info, options)
    if options.shapes and preprocess is not None:
        size = preprocess.input_size
        result.notes.append(f"calibration images are resized to the opt H x W {size}x{size}")
    if info is None and preprocess is not None:
        norm = "ImageNet mean/std" if preprocess.in_channels == 3 else "no normalisation"
        result.notes.append(
            f"the graph carries no resnet-deploy metadata: calibration images are preprocessed for its input "
            f"{preprocess.in_channels}x{preprocess.input_size}x{preprocess.input_size} ({norm}, as torchvision's)"
        )
    ds = open_dataset(spec, preprocess, need_labels=False)
    n = min(options.calib_samples, len(ds))
    if n < 1:
        raise UserError(f"calibration data {spec} holds zero samples")
    check_data_shape(model, tuple(ds.sample_shape), f"calibration data {spec}")
    if n < options.calib_samples:
        result.notes.append(f"calibration data {spec} holds only {n} images (asked for {options.calib_samples})")
    say("calibrate", f"{n} images from {spec}, decoded a batch at a time")

    def stream(batch: int) -> Any:
        for x, _ in ds.batches(batch, limit=n):
            yield x

    return CalibrationData(n, tuple(ds.sample_shape), stream), {"spec": spec}


def evaluation_data(
    options: BuildOptions, model: onnx.ModelProto, info: ModelInfo | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``--eval-data`` subset for the mixed-precision search, in memory: the search runs over it many times.
    A bundled checkpoint defaults to its own test set (``fashion-mnist:test``), as calibration defaults to its
    training set; any other model must name its data."""
    from ..data import open_dataset
    from ..precision.calibration import check_data_shape

    spec = options.eval_data
    if spec is None:
        if not is_bundled(info):
            raise UserError(
                "--max-accuracy-drop needs --eval-data SPEC for this model (labelled images: a folder with one "
                "subfolder per class or a .npz with x and y); it defaults to the test set only for bundled checkpoints"
            )
        spec = "fashion-mnist:test"
    ds = open_dataset(spec, data_info(model, info, options))
    x, y = ds.take(min(options.eval_samples, len(ds)))
    check_data_shape(model, tuple(x.shape[1:]), f"evaluation data {spec}")
    return x, y


def progress_line(done: int, total: int, seconds: float, width: int = 24) -> str:
    """``━━━━━━━━━━━━╸           256/512 images  41.3 images/s  6 s left``: what the calibration bar shows."""
    total = max(total, 1)
    filled = width * min(done, total) / total
    bar = "━" * int(filled) + ("╸" if filled - int(filled) >= 0.5 else "")
    rate = done / seconds if seconds > 0 else 0.0
    left = (total - done) / rate if rate > 0 else 0.0
    eta = f"{left:.0f} s left" if left < 120 else f"{left / 60:.1f} min left"
    return f"{bar:<{width}} {done}/{total} images  {rate:.1f} images/s  {eta}"


def precision(
    options: BuildOptions, model: onnx.ModelProto, info: ModelInfo | None, backend: str, result: BuildResult, say: Say
) -> onnx.ModelProto:
    """FP16: the FP16 pass. INT8: calibrate (or reuse the cache) and insert Q/DQ in the backend's placement."""
    if options.precision == "fp16":
        from ..passes.fp16 import to_fp16

        say("fp16", f"converting to float16 (io {options.io_dtype})")
        model, rep = to_fp16(model, options.io_dtype)
        result.reports.append(rep)
    elif options.precision == "int8":
        import time

        from ..precision.calibration import onnxruntime_log
        from ..precision.ptq import quantize_int8

        eval_data = None
        if options.int8.max_accuracy_drop is not None:
            eval_data = evaluation_data(options, model, info)
            if options.eval_data is None:
                result.notes.append(f"evaluation data: first {options.eval_samples} images of fashion-mnist:test "
                                    "(bundled checkpoint)")  # fmt: skip
        # after the evaluation data, whose refusal must come before calibration's synthetic-data warning
        calib, desc = calibration_data(options, model, info, result, say)
        result.calibration_data = desc.get("spec")
        int8 = replace(options.int8, placement=options.int8.placement or DEFAULT_PLACEMENT[backend])
        started = [time.perf_counter()]

        def step(message: str) -> None:
            if message.startswith("calibrating on"):
                started[0] = time.perf_counter()  # the rate counts images, not the planning before them
            say("int8", message)

        def progress(done: int, total: int) -> None:
            say("calibrate", progress_line(done, total, time.perf_counter() - started[0]))

        with onnxruntime_log(0) if options.verbose else nullcontext():  # --verbose: every session's log
            quantized = quantize_int8(model, calib, int8, desc, eval_data, on_step=step, on_progress=progress)
        model = quantized.model
        result.int8 = quantized
        result.reports.append(quantized.report)
        result.notes.extend(quantized.notes)
        if quantized.source == "calibration":
            t = quantized.timing
            result.notes.append(
                f"calibrated {quantized.samples} images in {t.get('all', 0):.1f} s, {quantized.batch_size} per run "
                f"(ONNX Runtime {t.get('run', 0):.1f} s, counting bins {t.get('count', 0):.1f} s alongside, "
                f"waiting for images {t.get('data', 0):.1f} s)"
            )
        if quantized.agreement is not None:
            result.notes.append(quantized.agreement.describe())
        mixed = quantized.mixed
        if mixed is not None:
            kept = ", ".join(mixed.keep_float) or "none"
            result.notes.append(
                f"mixed precision on {mixed.samples} eval images: FP32 {mixed.fp32_top1:.2f}%, all-INT8 "
                f"{mixed.int8_top1:.2f}%, final {mixed.final_top1:.2f}% with {len(mixed.keep_float)} layer(s) kept "
                f"in {mixed.keep_dtype}: {kept}"
            )
    return model


# ------------------------------------------------------------------------------------------------ residual fusion


def residual_fusion(
    options: BuildOptions, model: onnx.ModelProto, backend: str, result: BuildResult, say: Say
) -> onnx.ModelProto:
    """``plugin``: rewrite each residual Add+ReLU into the plugin node. ``auto``: decided in :func:`backend_build`
    by timing both engines where that is possible, else native."""
    choice = options.residual_fusion
    record: dict[str, Any] = {"requested": choice}
    if choice == "auto":
        # Choosing honestly means timing both engines on the GPU that will run them.
        if backend != "tensorrt":
            choice, why = "native", "auto: the plugin only matters to TensorRT; ONNX Runtime builds stay native"
        else:
            from ..backends.tensorrt.autotune import AUTO_REASON, can_time_engines

            ok, reason = can_time_engines()
            if ok:
                choice, why = "timed", AUTO_REASON
            else:
                choice, why = "native", f"auto: cannot time engines here ({reason}); native chosen"
        record["reason"] = why
        if choice != "timed":
            result.notes.append(why)
    record["chosen"] = choice
    if choice == "plugin":
        from ..passes.residual_fusion import fuse_residual_add_relu

        say("fuse", "residual Add+ReLU -> ResidualAddRelu")
        model, rep = fuse_residual_add_relu(model)
        result.reports.append(rep)
        if not rep.changes.get("fused"):
            why = ""
            if result.int8 is not None and result.int8.placement in ("onnxruntime", "openvino"):
                why = f" (the {result.int8.placement} INT8 placement folds each ReLU into a uint8 QuantizeLinear)"
            result.warnings.append(f"--residual-fusion plugin found no residual Add+ReLU to rewrite{why}")
    result.residual_fusion = record
    return model


# ------------------------------------------------------------------------------------------- backend build, write


def tag(model: onnx.ModelProto, options: BuildOptions, result: BuildResult) -> onnx.ModelProto:
    """Record precision (and INT8's calibration and placement) in the graph's metadata, then check it."""
    tags = {"resnet_deploy.precision": options.precision}
    if result.int8 is not None:
        tags["resnet_deploy.calibration"] = f"{result.int8.method}:{result.int8.samples}"
        tags["resnet_deploy.qdq_placement"] = result.int8.placement
    set_metadata(model, tags)
    onnx.checker.check_model(model)
    return model


def cpu_runtime_choice(model: onnx.ModelProto, rounds: int = 5, per_round: int = 6) -> tuple[str, str]:
    """("onnxruntime" or "openvino", why): the runtime whose median batch-1 latency on this graph was lower here,
    timed interleaved (``rounds`` chunks of ``per_round`` runs each, after a warm-up), with both runtimes' default
    threads. Both read the same graph: the ONNX Runtime placement is what OpenVINO runs best too (issue 17), so the
    choice is which runtime to load it with (``--runtime``), not a different graph."""
    import time

    from ..backends.onnxruntime import OnnxRuntimeModel
    from ..backends.openvino import OpenVinoModel

    runtimes = {"onnxruntime": OnnxRuntimeModel(model), "openvino": OpenVinoModel(model)}
    first = runtimes["onnxruntime"]
    shape = tuple(1 if d is None else d for d in first.sized_input_shape())  # dynamic H, W: the recorded size
    x = np.random.default_rng(0).random(shape).astype(first.input_dtype)
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for m in runtimes.values():
        for _ in range(3):
            m.predict(x)
    for _ in range(rounds):
        for name, m in runtimes.items():
            for _ in range(per_round):
                t = time.perf_counter()
                m.predict(x)
                times[name].append(time.perf_counter() - t)
    for m in runtimes.values():
        m.close()
    median = {name: float(np.median(v)) * 1e3 for name, v in times.items()}
    choice = min(median, key=lambda k: median[k])
    other = "onnxruntime" if choice == "openvino" else "openvino"
    names = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
    how = (
        "recorded in the graph, so load, infer, eval and bench run it on OpenVINO (runtime=/--runtime overrides)"
        if choice == "openvino"
        else "recorded in the graph; ONNX Runtime runs it by default"
    )
    note = (
        f"auto: {names[choice]}, measured faster on this machine at batch 1 (median {median[choice]:.2f} ms vs "
        f"{names[other]} {median[other]:.2f} ms, {rounds * per_round} runs each, interleaved); {how}"
    )
    return choice, note


def backend_build(
    options: BuildOptions, model: onnx.ModelProto, info: ModelInfo | None, backend: str, result: BuildResult, say: Say
) -> onnx.ModelProto:
    """ONNX Runtime: load the graph once (one it cannot load is never written). TensorRT: build the engine and
    its sidecar at the output. Returns the graph the output was made from."""
    if backend == "onnxruntime" and options.backend == "auto" and openvino_available():
        say("verify", "auto: timing the result on ONNX Runtime and on OpenVINO")
        choice, note = cpu_runtime_choice(model)
        result.backend = choice
        result.notes.append(note)
        # the choice travels with the graph: resnet_deploy.load runs it on the runtime named here
        return set_metadata(model, {RUNTIME_KEY: choice})
    if backend == "onnxruntime":
        say("verify", "loading the result in ONNX Runtime")
        from ..backends.onnxruntime import OnnxRuntimeModel

        # verbose: ONNX Runtime's own log (session creation, graph optimizations) straight to stderr
        OnnxRuntimeModel(model, log_severity=0 if options.verbose else 4).close()
        return model
    if backend == "openvino":
        say("verify", "compiling the result in OpenVINO")
        from ..backends.openvino import OpenVinoModel

        OpenVinoModel(model).close()
        return model
    from ..backends.tensorrt.builder import build_engine

    say("tensorrt", "building the engine")
    extra: dict[str, str | int | float | bool | None] = {
        "source": result.source,
        "precision": options.precision,
        "residual_fusion": result.residual_fusion.get("chosen"),
        "residual_fusion_reason": result.residual_fusion.get("reason"),
    }
    calibration = None
    if result.int8 is not None:
        calibration = {"method": result.int8.method, "cache_sha256": result.int8.cache.sha256()}
        extra["calibration_samples"] = result.int8.samples
        extra["calibration_data"] = result.calibration_data
        extra["qdq_placement"] = result.int8.placement
    if result.residual_fusion.get("chosen") == "timed":
        from ..backends.tensorrt.autotune import build_timed_engines

        timed = build_timed_engines(
            model, result.output, options.engine, info, extra, calibration, say=lambda m: say("tensorrt", m)
        )
        result.engine = timed.engine
        result.residual_fusion.update(chosen=timed.chosen, measurement=timed.measurement)
        result.notes.append(timed.note)
        if timed.fusion_report is not None:
            result.reports.append(timed.fusion_report)
        return timed.model
    from ..backends.tensorrt.log import capture

    def forward(severity: str, message: str) -> None:
        say("log", f"TensorRT [{severity}] {message}")

    with capture(forward if options.verbose else None):  # the process logger's messages, while the build runs
        result.engine = build_engine(model, result.output, options.engine, info, extra, calibration)
    return result.engine.onnx_model or model  # what TensorRT parsed (the plugin node form of its version)


def write(options: BuildOptions, model: onnx.ModelProto, backend: str, result: BuildResult, say: Say) -> None:
    """The ONNX output (ONNX Runtime) and ``--emit-onnx``; then the calibration cache, last, so an error before
    leaves no cache that claims a build happened."""
    data = model.SerializeToString()
    if options.emit_onnx is not None:
        result.emitted_onnx = atomic_write_bytes(options.emit_onnx, data)
    if backend == "openvino" and Path(result.output).suffix.lower() == ".xml":
        say("write", f"{result.output} (OpenVINO IR)")
        write_openvino_ir(model, Path(result.output))
    elif backend in ("onnxruntime", "openvino"):
        say("write", str(result.output))
        atomic_write_bytes(result.output, data)
    result.output_bytes = Path(result.output).stat().st_size
    if backend == "openvino" and Path(result.output).suffix.lower() == ".xml":
        from ..backends.openvino import ir_weights

        result.output_bytes += ir_weights(Path(result.output)).stat().st_size  # the IR is the .xml and its .bin
    if result.int8 is not None and result.int8.cache_to_write is not None:
        result.int8.cache.save(result.int8.cache_to_write)
        result.calib_cache_written = result.int8.cache_to_write


def write_openvino_ir(model: onnx.ModelProto, xml: Path) -> None:
    """``openvino.save_model`` of the graph as ``xml`` + ``.bin``, both atomically (weights first, so an ``.xml``
    never names weights that are not there yet), FP32 weights as they are (``compress_to_fp16`` would round them),
    the graph's metadata in ``rt_info`` for :class:`~resnet_deploy.backends.openvino.OpenVinoModel`."""
    import io
    import os
    import tempfile

    from .._io import atomic_path
    from ..backends.openvino import PRECISION_KEY, RT_INFO_KEY, ir_weights, require_openvino
    from ..onnx_io import graph_precision

    ov = require_openvino()
    ov_model = ov.Core().read_model(io.BytesIO(model.SerializeToString()))
    for prop in model.metadata_props:
        ov_model.set_rt_info(prop.value, [RT_INFO_KEY, prop.key])
    ov_model.set_rt_info(graph_precision(model), [RT_INFO_KEY, PRECISION_KEY])
    with tempfile.TemporaryDirectory(prefix=".ir.", dir=xml.resolve().parent) as tmp:
        staged = Path(tmp) / "model.xml"
        ov.save_model(ov_model, str(staged), compress_to_fp16=False)
        with atomic_path(ir_weights(xml)) as bin_tmp:
            os.replace(ir_weights(staged), bin_tmp)
        with atomic_path(xml) as xml_tmp:
            os.replace(staged, xml_tmp)
