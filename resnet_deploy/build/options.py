"""What ``resnet-deploy build`` accepts, and every check that can run before the slow work starts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .._io import check_writable
from ..backends.tensorrt.builder import EngineBuildOptions
from ..errors import UserError
from ..precision.ptq import Int8Options
from ..precision.placement import PLACEMENTS

PRECISIONS = ("fp32", "fp16", "int8")
BACKENDS = ("onnxruntime", "tensorrt", "auto")
RESIDUAL_FUSION = ("native", "plugin", "auto")
DEFAULT_CHECKPOINT = "fmnist_resnet20"
DEFAULT_CALIB_SAMPLES = 512
DEFAULT_EVAL_SAMPLES = 2000  # mixed-precision search subset: affordable on a CPU
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
SYNTHETIC = "synthetic"

# The command-line flag of each option, for messages that name what the user typed.
ENGINE_FLAGS = {
    "min_batch": "--min-batch",
    "opt_batch": "--opt-batch",
    "max_batch": "--max-batch",
    "opt_level": "--opt-level",
    "workspace_mb": "--workspace",
    "timing_cache": "--timing-cache",
    "version_compatible": "--version-compatible",
    "hardware_compat": "--hardware-compat",
    "profiling_verbosity": "--profiling-verbosity",
}
INT8_FLAGS = {
    "placement": "--qdq-placement",
    "method": "--calib-method",
    "percentile": "--calib-percentile",
    "cache_path": "--calib-cache",
    "max_accuracy_drop": "--max-accuracy-drop",
    "batch_size": "--calib-batch",
    "keep_dtype": "--keep-dtype",
}


@dataclass
class BuildOptions:
    """Everything ``resnet-deploy build`` accepts. With no model source, the bundled ``fmnist_resnet20``.

    ``int8`` holds the quantization settings (:class:`~resnet_deploy.precision.ptq.Int8Options`; its placement
    None means the backend's own), ``engine`` the TensorRT builder's
    (:class:`~resnet_deploy.backends.tensorrt.builder.EngineBuildOptions`).
    """

    output: str | Path = "model.onnx"
    arch: str | None = None
    weights: str | Path | None = None
    onnx: str | Path | None = None
    precision: str = "fp32"
    backend: str = "onnxruntime"
    io_dtype: str = "fp32"
    opset: int = 17
    emit_onnx: str | Path | None = None
    residual_fusion: str = "native"
    # INT8: where the calibration and evaluation images come from (the algorithm's settings are in ``int8``)
    calib_data: str | None = None
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    eval_data: str | None = None
    eval_samples: int = DEFAULT_EVAL_SAMPLES
    int8: Int8Options = field(default_factory=Int8Options)
    engine: EngineBuildOptions = field(default_factory=EngineBuildOptions)


def changed(options: Any, flags: dict[str, str]) -> list[str]:
    """The flags of the fields of ``options`` that differ from their defaults."""
    default = type(options)()
    return [flags.get(f.name, f.name) for f in fields(options) if getattr(options, f.name) != getattr(default, f.name)]


def validate(o: BuildOptions) -> None:
    """One-line errors for every contradiction in ``o`` that needs no file read."""
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
    int8_given = [flag for flag, v in (("--calib-data", o.calib_data), ("--eval-data", o.eval_data)) if v is not None]
    int8_given += changed(o.int8, INT8_FLAGS)
    if int8_given and o.precision != "int8":
        raise UserError(f"{int8_given[0]} only applies to --precision int8")
    if o.int8.placement is not None and o.int8.placement not in PLACEMENTS:
        raise UserError(f"unknown Q/DQ placement '{o.int8.placement}' (choose {' or '.join(PLACEMENTS)})")
    if o.calib_samples < 1:
        raise UserError(f"--calib-samples must be at least 1, got {o.calib_samples}")
    if o.eval_samples < 1:
        raise UserError(f"--eval-samples must be at least 1, got {o.eval_samples}")
    if (o.int8.max_accuracy_drop is None) != (o.eval_data is None):
        raise UserError("--max-accuracy-drop and --eval-data go together")
    if o.int8.max_accuracy_drop is not None and not 0 <= o.int8.max_accuracy_drop <= 100:
        raise UserError(f"--max-accuracy-drop must be between 0 and 100 points, got {o.int8.max_accuracy_drop}")


def resolve_backend(o: BuildOptions) -> tuple[str, str | None]:
    """(backend, why) with ``auto`` resolved: TensorRT where a TensorRT runtime and a GPU are usable."""
    if o.backend != "auto":
        return o.backend, None
    from ..backends.tensorrt import tensorrt_status

    st = tensorrt_status()
    if st["can_run"]:
        return "tensorrt", f"auto: TensorRT ({st['flavour']} {st['version']}) with a usable GPU"
    return "onnxruntime", f"auto: ONNX Runtime, because TensorRT cannot run here ({st['reason']})"


def check_outputs(o: BuildOptions, backend: str) -> Path:
    """The output path, after checking that every output can be written and none collides with another."""
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
    if o.int8.cache_path is not None:
        cache = Path(o.int8.cache_path)
        if cache.resolve() in {p.resolve() for p in paths}:
            raise UserError("--calib-cache must differ from the output paths")
        if not cache.exists():
            check_writable(cache)
    if backend == "tensorrt" and o.int8.placement == "onnxruntime":
        raise UserError(
            "--qdq-placement onnxruntime does not parse in TensorRT (uint8 Q/DQ, int32 biases): drop it for engines"
        )
    engine_given = changed(o.engine, ENGINE_FLAGS)
    if backend == "onnxruntime" and engine_given:
        raise UserError(f"{engine_given[0]} only applies to the TensorRT backend")
    return out
