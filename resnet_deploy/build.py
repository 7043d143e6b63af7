"""``build``: the whole pipeline, checkpoint or ONNX in, deployable model out.

export (torch.onnx) -> onnxsim -> BatchNorm folding -> precision (FP16 pass, or INT8 calibration + Q/DQ) ->
optional residual add+ReLU plugin rewrite -> ONNX file for ONNX Runtime, or TensorRT engine + sidecar.

Every input is validated and the output paths are checked before the slow work; the outputs are written
atomically at the end, the calibration cache last, so an error leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ._io import atomic_write_bytes, check_writable
from .errors import UserError
from .models.weights import ModelInfo
from .passes import PassReport

PRECISIONS = ("fp32", "fp16", "int8")
BACKENDS = ("onnxruntime", "tensorrt", "auto")
RESIDUAL_FUSION = ("native", "plugin", "auto")
DEFAULT_CHECKPOINT = "fmnist_resnet20"
DEFAULT_CALIB_SAMPLES = 512
DEFAULT_EVAL_SAMPLES = 2000  # mixed-precision search subset: affordable on a CPU
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
SYNTHETIC = "synthetic"

Progress = Callable[[str, str], None]  # (stage, detail)


@dataclass
class BuildOptions:
    """Everything ``resnet-deploy build`` accepts. With no model source, the bundled ``fmnist_resnet20``."""

    output: str | Path = "model.onnx"
    arch: str | None = None
    weights: str | Path | None = None
    onnx: str | Path | None = None
    precision: str = "fp32"
    backend: str = "onnxruntime"
    io_dtype: str = "fp32"
    opset: int = 17
    calib_data: str | None = None
    #: Q/DQ placement; None: the backend's own (precision.qdq: "onnxruntime" for ONNX Runtime, "tensorrt" for engines)
    qdq_placement: str | None = None
    calib_method: str | None = None
    calib_percentile: float | None = None
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    calib_cache: str | Path | None = None
    max_accuracy_drop: float | None = None
    eval_data: str | None = None
    eval_samples: int = DEFAULT_EVAL_SAMPLES
    emit_onnx: str | Path | None = None
    residual_fusion: str = "native"
    # TensorRT engine settings (None: the builder's defaults); only with the TensorRT backend
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    opt_level: int | None = None
    workspace_mb: int | None = None
    timing_cache: str | Path | None = None
    version_compatible: bool = False
    hardware_compat: str | None = None

    def trt_settings(self) -> dict[str, Any]:
        names = ("min_batch", "opt_batch", "max_batch", "opt_level", "workspace_mb", "timing_cache", "hardware_compat")
        out = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        if self.version_compatible:
            out["version_compatible"] = True
        return out


@dataclass
class BuildResult:
    """What was built, by which passes, and where it went."""

    output: Path
    backend: str
    precision: str
    info: ModelInfo | None
    source: str
    reports: list[PassReport] = field(default_factory=list)
    int8: Any = None  # precision.ptq.Int8Result
    engine: Any = None  # backends.tensorrt.EngineBuildReport
    emitted_onnx: Path | None = None
    calib_cache_written: Path | None = None
    calibration_data: str | None = None
    residual_fusion: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output_bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "backend": self.backend,
            "precision": self.precision,
            "source": self.source,
            "model": self.info.to_metadata() if self.info else None,
            "passes": [r.to_dict() for r in self.reports],
            "int8": self.int8.to_dict() if self.int8 is not None else None,
            "engine": self.engine.to_dict() if self.engine is not None else None,
            "emitted_onnx": str(self.emitted_onnx) if self.emitted_onnx else None,
            "calib_cache_written": str(self.calib_cache_written) if self.calib_cache_written else None,
            "calibration_data": self.calibration_data,
            "residual_fusion": self.residual_fusion,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "output_bytes": self.output_bytes,
            "seconds": round(self.seconds, 3),
        }


def _validate(o: BuildOptions) -> None:
    if o.precision not in PRECISIONS:
        raise UserError(f"unknown precision '{o.precision}' (choose from {', '.join(PRECISIONS)})")
    if o.backend not in BACKENDS:
        raise UserError(f"unknown backend '{o.backend}' (choose from {', '.join(BACKENDS)})")
    if o.io_dtype not in ("fp32", "fp16"):
        raise UserError(f"unknown io dtype '{o.io_dtype}' (choose fp32 or fp16)")
    if o.io_dtype == "fp16" and o.precision != "fp16":
        raise UserError("--io-dtype fp16 only applies to --precision fp16")
    if o.residual_fusion not in RESIDUAL_FUSION:
        raise UserError(f"unknown residual fusion '{o.residual_fusion}' (choose from {', '.join(RESIDUAL_FUSION)})")
    if o.onnx is not None and (o.arch is not None or o.weights is not None):
        raise UserError("give either --onnx or --arch/--weights, not both")
    int8_only = {
        "--calib-data": o.calib_data,
        "--qdq-placement": o.qdq_placement,
        "--calib-method": o.calib_method,
        "--calib-percentile": o.calib_percentile,
        "--calib-cache": o.calib_cache,
        "--max-accuracy-drop": o.max_accuracy_drop,
        "--eval-data": o.eval_data,
    }
    given = [k for k, v in int8_only.items() if v is not None]
    if given and o.precision != "int8":
        raise UserError(f"{given[0]} only applies to --precision int8")
    from .precision.qdq import PLACEMENTS

    if o.qdq_placement is not None and o.qdq_placement not in PLACEMENTS:
        raise UserError(f"unknown Q/DQ placement '{o.qdq_placement}' (choose {' or '.join(PLACEMENTS)})")
    if o.calib_samples < 1:
        raise UserError(f"--calib-samples must be at least 1, got {o.calib_samples}")
    if o.eval_samples < 1:
        raise UserError(f"--eval-samples must be at least 1, got {o.eval_samples}")
    if (o.max_accuracy_drop is None) != (o.eval_data is None):
        raise UserError("--max-accuracy-drop and --eval-data go together")
    if o.max_accuracy_drop is not None and not 0 <= o.max_accuracy_drop <= 100:
        raise UserError(f"--max-accuracy-drop must be between 0 and 100 points, got {o.max_accuracy_drop}")


def _resolve_backend(o: BuildOptions, say: Progress) -> tuple[str, str | None]:
    """(backend, why) with ``auto`` resolved: TensorRT where a TensorRT runtime and a GPU are usable."""
    if o.backend != "auto":
        return o.backend, None
    from .backends.tensorrt import tensorrt_status

    st = tensorrt_status()
    if st["can_run"]:
        return "tensorrt", f"auto: TensorRT ({st['flavour']} {st['version']}) with a usable GPU"
    return "onnxruntime", f"auto: ONNX Runtime, because TensorRT cannot run here ({st['reason']})"


def _check_outputs(o: BuildOptions, backend: str) -> Path:
    out = Path(o.output)
    suffix = out.suffix.lower()
    if backend == "onnxruntime" and suffix in ENGINE_SUFFIXES:
        raise UserError(f"{out} looks like a TensorRT engine, but the backend is ONNX Runtime: name it .onnx")
    if backend == "tensorrt" and suffix == ".onnx":
        raise UserError(f"{out}: the TensorRT backend writes an engine (.engine); use --emit-onnx for the ONNX")
    check_writable(out)
    if backend == "tensorrt":
        check_writable(out.with_name(out.name + ".json"))
    paths = [out]
    if o.emit_onnx is not None:
        emit = check_writable(o.emit_onnx)
        if emit.resolve() in {p.resolve() for p in paths}:
            raise UserError("--emit-onnx must differ from the output path")
        paths.append(emit)
    if o.calib_cache is not None:
        cache = Path(o.calib_cache)
        if cache.resolve() in {p.resolve() for p in paths}:
            raise UserError("--calib-cache must differ from the output paths")
        if not cache.exists():
            check_writable(cache)
    if backend == "tensorrt" and o.qdq_placement == "onnxruntime":
        raise UserError(
            "--qdq-placement onnxruntime does not parse in TensorRT (uint8 Q/DQ, int32 biases): drop it for engines"
        )
    if backend == "onnxruntime" and o.trt_settings():
        first = next(iter(o.trt_settings())).replace("_", "-")
        raise UserError(f"--{first} only applies to the TensorRT backend")
    return out


def _load_model(o: BuildOptions, say: Progress) -> tuple[onnx.ModelProto, ModelInfo | None, str, list[PassReport]]:
    """FP32 graph (exported, simplified, BN-folded), its info, and a description of where it came from."""
    from .export import export_onnx, info_from_onnx, load_onnx, set_info, simplify
    from .passes.fold_bn import fold_batchnorm

    if o.onnx is not None:
        say("load", f"reading {o.onnx}")
        model = load_onnx(o.onnx)
        info = info_from_onnx(model)
        reports: list[PassReport] = []
        if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
            raise UserError(f"{o.onnx} is already quantized (Q/DQ nodes): give the float32 model")
        say("simplify", "onnxsim")
        model, rep = simplify(model)
        reports.append(rep)
        model, rep = fold_batchnorm(model)
        reports.append(rep)
        if info is not None:
            set_info(model, info)
        return model, info, str(o.onnx), reports
    from .models.weights import bundled_checkpoints, load_model

    weights = o.weights
    if o.arch is None and weights is None:
        if DEFAULT_CHECKPOINT not in bundled_checkpoints():
            raise UserError(
                f"no model given and the bundled checkpoint {DEFAULT_CHECKPOINT} is not installed: "
                "pass --arch/--weights or --onnx"
            )
        weights = DEFAULT_CHECKPOINT
    say("export", f"loading {weights or o.arch}")
    net, info = load_model(o.arch, weights)
    say("export", "torch.onnx export, onnxsim, BatchNorm folding")
    model, reports = export_onnx(net, info, opset=o.opset)
    return model, info, str(weights if weights is not None else f"{o.arch} (random weights)"), reports


def is_bundled(info: ModelInfo | None) -> bool:
    from .models.weights import bundled_checkpoints

    return info is not None and info.name is not None and info.name in bundled_checkpoints()


def _input_chw(model: onnx.ModelProto) -> tuple[int, ...]:
    from .precision.calibration import model_input

    _, shape = model_input(model)
    if any(d is None for d in shape[1:]):
        raise UserError(f"the model input has dynamic image dimensions {shape}: cannot make synthetic data")
    return tuple(int(d) for d in shape[1:] if d is not None)


def _calibration_data(
    o: BuildOptions, model: onnx.ModelProto, info: ModelInfo | None, result: BuildResult, say: Progress
) -> tuple[np.ndarray | None, dict[str, Any]]:
    from .data import open_dataset
    from .precision.calibration import check_data_shape

    if o.calib_cache is not None and Path(o.calib_cache).exists() and o.calib_data is None:
        return None, {}
    spec = o.calib_data
    if spec is None:
        if not is_bundled(info):
            raise UserError(
                "INT8 needs calibration data for this model: pass --calib-data SPEC (a folder of training images, "
                "a .npz, fashion-mnist:train) or --calib-data synthetic for a speed-only build"
            )
        spec = "fashion-mnist:train"
        result.notes.append(f"calibration data: first {o.calib_samples} images of {spec} (bundled checkpoint)")
    if spec == SYNTHETIC:
        msg = (
            "calibrating on SYNTHETIC random images: the INT8 scales do not reflect real data and ACCURACY WILL BE "
            "MEANINGLESS; use this build for speed measurements only"
        )
        result.warnings.append(msg)
        say("warning", msg)
        rng = np.random.default_rng(0)
        x = rng.random((o.calib_samples, *_input_chw(model)), dtype=np.float32)
        return x, {"spec": SYNTHETIC, "seed": 0}
    say("calibrate", f"loading {o.calib_samples} images from {spec}")
    ds = open_dataset(spec, info)
    n = min(o.calib_samples, len(ds))
    if n < 1:
        raise UserError(f"calibration data {spec} holds zero samples")
    x, _ = ds.take(n)
    check_data_shape(model, tuple(x.shape[1:]), f"calibration data {spec}")
    if n < o.calib_samples:
        result.notes.append(f"calibration data {spec} holds only {n} images (asked for {o.calib_samples})")
    return x, {"spec": spec}


def _eval_data(o: BuildOptions, model: onnx.ModelProto, info: ModelInfo | None) -> tuple[np.ndarray, np.ndarray]:
    from .data import open_dataset
    from .precision.calibration import check_data_shape

    assert o.eval_data is not None
    ds = open_dataset(o.eval_data, info)
    x, y = ds.take(min(o.eval_samples, len(ds)))
    check_data_shape(model, tuple(x.shape[1:]), f"evaluation data {o.eval_data}")
    return x, y


def _can_time_engines() -> tuple[bool, str]:
    """Whether ``--residual-fusion auto`` can build and time both engines here (full TensorRT, a GPU,
    cuda-python), and why not."""
    from .backends.tensorrt import tensorrt_status
    from .plugins import residual_add_relu_trt as plug

    st = tensorrt_status()
    if not st["can_run"]:
        return False, str(st["reason"])
    if not plug.tensorrt_available():
        return False, f"the plugin needs the full tensorrt module ({st['flavour']} {st['version']} is loaded)"
    return True, ""


def _residual_fusion(
    o: BuildOptions, model: onnx.ModelProto, backend: str, result: BuildResult, say: Progress
) -> onnx.ModelProto:
    choice = o.residual_fusion
    record: dict[str, Any] = {"requested": choice}
    if choice == "auto":
        # Choosing honestly means timing both engines on the GPU that will run them.
        if backend != "tensorrt":
            choice, why = "native", "auto: the plugin only matters to TensorRT; ONNX Runtime builds stay native"
        else:
            ok, reason = _can_time_engines()
            if ok:
                choice, why = "timed", "auto: both engines built and timed on this GPU"
            else:
                choice, why = "native", f"auto: cannot time engines here ({reason}); native chosen"
        record["reason"] = why
        if choice != "timed":
            result.notes.append(why)
    record["chosen"] = choice
    if choice == "plugin":
        from .passes.residual_fusion import fuse_residual_add_relu

        say("fuse", "residual Add+ReLU -> ResidualAddRelu")
        model, rep = fuse_residual_add_relu(model)
        result.reports.append(rep)
        if not rep.changes.get("fused"):
            why = ""
            if result.int8 is not None and result.int8.placement == "onnxruntime":
                why = " (the ONNX Runtime INT8 placement folds each ReLU into a uint8 QuantizeLinear)"
            result.warnings.append(f"--residual-fusion plugin found no residual Add+ReLU to rewrite{why}")
    result.residual_fusion = record
    return model


def _build_timed_engines(
    model: onnx.ModelProto,
    out: Path,
    eopts: Any,
    info: ModelInfo | None,
    extra: dict[str, Any],
    result: BuildResult,
    say: Progress,
) -> tuple[Any, onnx.ModelProto]:
    """``--residual-fusion auto`` on a TensorRT GPU: build the native and the plugin engine, time both here, keep
    the faster at ``out``. Returns (engine report, the ONNX that engine was built from).

    NEVER RUN: it needs full TensorRT with a GPU. What surrounds the GPU work (the choice, moving the winner and
    its sidecar into place) is :func:`keep_timed_engine`, tested with TensorRT-RTX engines.
    """
    import tempfile

    from .backends.tensorrt.builder import build_engine
    from .passes.residual_fusion import fuse_residual_add_relu
    from .plugins import residual_add_relu_trt as plug

    plug.register_python_plugin()
    fused, rep = fuse_residual_add_relu(model)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".resnet-deploy-auto-") as d:
        reports = {}
        for name, graph in (("native", model), ("plugin", fused)):
            say("tensorrt", f"building the {name} engine")
            reports[name] = build_engine(
                graph, Path(d) / f"{name}.engine", eopts, info, {**extra, "residual_fusion": name}
            )
        say("tensorrt", "timing both engines on this GPU")
        native_t, plugin_t = plug.time_engines([reports["native"].engine_path, reports["plugin"].engine_path])
        engine = keep_timed_engine(reports, plug.residual_fusion_choice(native_t, plugin_t), out, result)
    if result.residual_fusion["chosen"] == "plugin":
        result.reports.append(rep)
        return engine, fused
    return engine, model


def keep_timed_engine(reports: dict[str, Any], choice: dict[str, Any], out: Path, result: BuildResult) -> Any:
    """Move the engine ``choice`` picked (see ``plugins.residual_add_relu_trt.residual_fusion_choice``) from
    ``reports`` (name -> EngineBuildReport of an engine built elsewhere) to ``out``, recording both timings in
    its sidecar and in ``result``; returns the moved engine's report."""
    import dataclasses
    import os

    from .backends.tensorrt import sidecar as sc

    chosen = str(choice["residual_fusion"])
    report = reports[chosen]
    timing = {
        "residual_fusion": chosen,
        "residual_fusion_reason": "auto: both engines built and timed on this GPU",
        "residual_fusion_native_median_ms": choice["native_median_ms"],
        "residual_fusion_plugin_median_ms": choice["plugin_median_ms"],
        "residual_fusion_plugin_speedup": choice["plugin_speedup"],
    }
    meta = sc.read(report.sidecar_path)
    meta["engine"]["file"] = out.name
    meta["extra"].update(timing)
    side = sc.sidecar_path(out)
    sc.write(report.sidecar_path, meta)
    os.replace(report.engine_path, out)
    os.replace(report.sidecar_path, side)
    result.residual_fusion.update(chosen=chosen, measurement=choice)
    result.notes.append(
        f"auto: native {choice['native_median_ms']:.3f} ms, plugin {choice['plugin_median_ms']:.3f} ms median on "
        f"this GPU; kept {chosen}"
    )
    return dataclasses.replace(report, engine_path=out, sidecar_path=side)


def _metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    meta = {p.key: p.value for p in model.metadata_props}
    meta.update(values)
    onnx.helper.set_model_props(model, meta)


def build(options: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Run the pipeline described by ``options``; see the module docstring."""
    start = time.perf_counter()
    o = options

    def say(stage: str, detail: str) -> None:
        if progress is not None:
            progress(stage, detail)

    _validate(o)
    backend, why = _resolve_backend(o, say)
    out = _check_outputs(o, backend)
    model, info, source, reports = _load_model(o, say)
    result = BuildResult(output=out, backend=backend, precision=o.precision, info=info, source=source)
    result.reports.extend(reports)
    if why:
        result.notes.append(why)
        say("backend", why)

    if o.precision == "fp16":
        from .passes.fp16 import to_fp16

        say("fp16", f"converting to float16 (io {o.io_dtype})")
        model, rep = to_fp16(model, o.io_dtype)
        result.reports.append(rep)
    elif o.precision == "int8":
        from .precision.ptq import Int8Options, quantize_int8

        calib_x, desc = _calibration_data(o, model, info, result, say)
        result.calibration_data = desc.get("spec")
        eval_data = _eval_data(o, model, info) if o.eval_data is not None else None
        opts = Int8Options(
            placement=o.qdq_placement or backend,
            method=o.calib_method,
            percentile=o.calib_percentile,
            cache_path=o.calib_cache,
            max_accuracy_drop=o.max_accuracy_drop,
        )
        r8 = quantize_int8(model, calib_x, opts, desc, eval_data, on_step=lambda m: say("int8", m))
        model = r8.model
        result.int8 = r8
        result.reports.append(r8.report)
        if r8.mixed is not None:
            m = r8.mixed
            kept = ", ".join(m.keep_float) or "none"
            result.notes.append(
                f"mixed precision on {m.samples} eval images: FP32 {m.fp32_top1:.2f}%, all-INT8 {m.int8_top1:.2f}%, "
                f"final {m.final_top1:.2f}% with {len(m.keep_float)} layer(s) kept in {m.keep_dtype}: {kept}"
            )
            if not m.within_budget:
                result.warnings.append(f"could not meet --max-accuracy-drop {m.max_drop}: every layer is in float")

    model = _residual_fusion(o, model, backend, result, say)
    tags = {"resnet_deploy.precision": o.precision}
    if result.int8 is not None:
        tags["resnet_deploy.calibration"] = f"{result.int8.method}:{result.int8.samples}"
        tags["resnet_deploy.qdq_placement"] = result.int8.placement
    _metadata(model, tags)
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    if backend == "onnxruntime":
        say("verify", "loading the result in ONNX Runtime")
        from .backends.onnxruntime import OnnxRuntimeModel

        OnnxRuntimeModel(model).close()  # a graph ONNX Runtime cannot load is never written
        if o.emit_onnx is not None:
            result.emitted_onnx = atomic_write_bytes(o.emit_onnx, data)
        say("write", str(out))
        atomic_write_bytes(out, data)
    else:
        from .backends.tensorrt.builder import EngineBuildOptions, build_engine

        eopts = EngineBuildOptions(**o.trt_settings())
        if result.int8 is not None:
            eopts.calibration_method = result.int8.method
        say("tensorrt", "building the engine")
        extra: dict[str, str | int | float | bool | None] = {
            "source": source,
            "precision": o.precision,
            "residual_fusion": result.residual_fusion.get("chosen"),
            "residual_fusion_reason": result.residual_fusion.get("reason"),
        }
        if result.int8 is not None:
            eopts.calibration_cache_sha256 = result.int8.cache.sha256()
            extra["calibration_samples"] = result.int8.samples
            extra["calibration_data"] = result.calibration_data
            extra["qdq_placement"] = result.int8.placement
        if result.residual_fusion.get("chosen") == "timed":
            result.engine, model = _build_timed_engines(model, out, eopts, info, extra, result, say)
            data = model.SerializeToString()
        else:
            result.engine = build_engine(model, out, eopts, info, extra)
        if o.emit_onnx is not None:
            result.emitted_onnx = atomic_write_bytes(o.emit_onnx, data)
    result.output_bytes = out.stat().st_size
    if result.int8 is not None and result.int8.cache_to_write is not None:
        result.int8.cache.save(result.int8.cache_to_write)
        result.calib_cache_written = result.int8.cache_to_write
    result.seconds = time.perf_counter() - start
    return result


def summary_lines(result: BuildResult) -> list[str]:
    """Human summary: what each pass changed, calibration, output."""
    lines = [f"source: {result.source}"]
    for r in result.reports:
        lines.append(f"pass {r}")
    if result.int8 is not None:
        r8 = result.int8
        params = ", ".join(f"{k}={v}" for k, v in r8.params.items())
        how = "reused from cache" if r8.source == "cache" else f"{r8.samples} images of {result.calibration_data}"
        lines.append(f"calibration: {r8.method} ({params}); {how}; Q/DQ placement: {r8.placement}")
    if result.residual_fusion:
        lines.append(f"residual fusion: {result.residual_fusion.get('chosen')}")
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"WARNING: {w}" for w in result.warnings]
    what = "engine" if result.backend == "tensorrt" else "ONNX"
    lines.append(
        f"wrote {what} {result.output} ({result.output_bytes / 1e6:.2f} MB, {result.precision}, {result.backend}) "
        f"in {result.seconds:.1f} s"
    )
    if result.engine is not None:
        lines.append(f"sidecar: {result.engine.sidecar_path}")
    if result.emitted_onnx:
        lines.append(f"ONNX: {result.emitted_onnx}")
    if result.calib_cache_written:
        lines.append(f"calibration cache: {result.calib_cache_written}")
    return lines
