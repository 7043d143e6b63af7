"""What ``resnet-deploy build`` accepts, and every check that can run before the slow work starts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .._io import check_no_collisions, check_writable
from ..backends.openvino import openvino_available
from ..backends.tensorrt.builder import EngineBuildOptions
from ..errors import UserError
from ..models.bundled import bundled_checkpoints
from ..precision.placement import PLACEMENTS
from ..precision.ptq import Int8Options

PRECISIONS = ("fp32", "fp16", "int8")
BACKENDS = ("onnxruntime", "openvino", "tensorrt", "auto")
#: the Q/DQ placement each backend gets by default. OpenVINO reads the ONNX Runtime placement as it is and runs every
#: convolution of it as u8 int8 kernels (issue 17: all 53 of ResNet-50 as jit_avx2_I8), so both CPU runtimes share
#: one graph and one calibration.
DEFAULT_PLACEMENT = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}
OPENVINO_SUFFIXES = (".onnx", ".xml")
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
    "plugin_impl": "--plugin-impl",
}
INT8_FLAGS = {
    "placement": "--qdq-placement",
    "method": "--calib-method",
    "percentile": "--calib-percentile",
    "cache_path": "--calib-cache",
    "max_accuracy_drop": "--max-accuracy-drop",
    "batch_size": "--calib-batch",
    "check_samples": "--calib-check",
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
    # None: from the output's suffix (.engine/.plan/.trt: TensorRT, anything else: ONNX Runtime), as trtexec users
    # expect of ``-o m.engine``; "auto": TensorRT where a TensorRT GPU runtime is usable
    backend: str | None = None
    io_dtype: str = "fp32"
    opset: int = 17
    emit_onnx: str | Path | None = None
    residual_fusion: str = "native"
    labels: str | Path | None = None  # class names, one per line: stored in the ONNX metadata / engine sidecar
    # trtexec's --minShapes/--optShapes/--maxShapes: {"min"|"opt"|"max": "input:8x3x224x224"}; they set the batch
    # profile, C must be the graph's, and another H x W re-exports a checkpoint at that size (a range: dynamic H
    # and W axes); a foreign ONNX takes another H x W only where its graph has dynamic H/W axes
    shapes: dict[str, str] = field(default_factory=dict)
    # INT8: where the calibration and evaluation images come from (the algorithm's settings are in ``int8``)
    calib_data: str | None = None
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    eval_data: str | None = None
    eval_samples: int = DEFAULT_EVAL_SAMPLES
    int8: Int8Options = field(default_factory=Int8Options)
    engine: EngineBuildOptions = field(default_factory=EngineBuildOptions)
    #: report TensorRT's builder log (every severity) and ONNX Runtime's session log as ``progress("log", line)``;
    #: without it their warnings are summarised in the result
    verbose: bool = False


def changed(options: Any, flags: dict[str, str]) -> list[str]:
    """The flags of the fields of ``options`` that differ from their defaults."""
    default = type(options)()
    return [flags.get(f.name, f.name) for f in fields(options) if getattr(options, f.name) != getattr(default, f.name)]


SHAPE_FLAGS = {"min": "--min-shapes", "opt": "--opt-shapes", "max": "--max-shapes"}


def parse_shape(spec: str, flag: str) -> tuple[str, tuple[int, ...]]:
    """trtexec's ``name:NxCxHxW`` (the name may be quoted) as (name, dims); one input only."""
    name, sep, dims = spec.strip().rpartition(":")
    name = name.strip().strip("'\"")
    if not sep or not name or "," in spec:
        raise UserError(f"{flag} '{spec}': expected INPUT_NAME:NxCxHxW for the model's one input (trtexec syntax)")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise UserError(f"{flag} '{spec}': dimensions must be integers separated by x, like 8x3x224x224") from None
    if len(shape) != 4 or any(d < 1 for d in shape):
        raise UserError(f"{flag} '{spec}': expected 4 positive dimensions N x C x H x W")
    return name, shape


def validate(options: BuildOptions) -> None:
    """One-line errors for every contradiction in ``o`` that needs no file read."""
    for key, spec in options.shapes.items():
        if key not in SHAPE_FLAGS:
            raise UserError(f"unknown shape profile '{key}' (min, opt or max)")
        parse_shape(spec, SHAPE_FLAGS[key])
    if options.precision not in PRECISIONS:
        raise UserError(f"unknown precision '{options.precision}' (choose from {', '.join(PRECISIONS)})")
    if options.backend is not None and options.backend not in BACKENDS:
        raise UserError(f"unknown backend '{options.backend}' (choose from {', '.join(BACKENDS)})")
    if options.io_dtype not in ("fp32", "fp16"):
        raise UserError(f"unknown io dtype '{options.io_dtype}' (choose fp32 or fp16)")
    if options.io_dtype == "fp16" and options.precision != "fp16":
        raise UserError("--io-dtype fp16 only applies to --precision fp16")
    if options.residual_fusion not in RESIDUAL_FUSION:
        raise UserError(
            f"unknown residual fusion '{options.residual_fusion}' (choose from {', '.join(RESIDUAL_FUSION)})"
        )
    if options.onnx is not None and (options.arch is not None or options.weights is not None):
        raise UserError("give either --onnx or --arch/--weights, not both")
    int8_given = [
        flag for flag, v in (("--calib-data", options.calib_data), ("--eval-data", options.eval_data)) if v is not None
    ]
    int8_given += changed(options.int8, INT8_FLAGS)
    if int8_given and options.precision != "int8":
        raise UserError(f"{int8_given[0]} only applies to --precision int8")
    if options.int8.placement is not None and options.int8.placement not in PLACEMENTS:
        raise UserError(f"unknown Q/DQ placement '{options.int8.placement}' (choose from {', '.join(PLACEMENTS)})")
    if options.calib_samples < 1:
        raise UserError(f"--calib-samples must be at least 1, got {options.calib_samples}")
    if options.eval_samples < 1:
        raise UserError(f"--eval-samples must be at least 1, got {options.eval_samples}")
    if options.eval_data is not None and options.int8.max_accuracy_drop is None:
        raise UserError("--eval-data only applies with --max-accuracy-drop (the data the accuracy drop is measured on)")
    if options.engine.plugin_impl is not None and options.residual_fusion == "native":
        raise UserError("--plugin-impl only applies to --residual-fusion plugin or auto")
    if options.int8.max_accuracy_drop is not None and not 0 <= options.int8.max_accuracy_drop <= 100:
        raise UserError(f"--max-accuracy-drop must be between 0 and 100 points, got {options.int8.max_accuracy_drop}")


def resolve_backend(options: BuildOptions) -> tuple[str, str | None]:
    """(backend, why) with ``auto`` resolved and no backend resolved from the output's suffix. ``auto``: TensorRT
    where a TensorRT runtime and a GPU are usable, else the ONNX Runtime graph, which OpenVINO runs too: with OpenVINO
    installed, the build then times both runtimes on it and reports the faster
    (:func:`~resnet_deploy.build.stages.cpu_runtime_choice`)."""
    if options.backend is None:
        suffix = Path(options.output).suffix.lower()
        if suffix in ENGINE_SUFFIXES:
            return "tensorrt", f"TensorRT, because -o {Path(options.output).name} names an engine"
        if suffix == ".xml":
            return "openvino", f"OpenVINO, because -o {Path(options.output).name} names OpenVINO IR"
        return "onnxruntime", None
    if options.backend != "auto":
        return options.backend, None
    from ..backends.tensorrt import tensorrt_status

    st = tensorrt_status()
    if st["can_run"]:
        return "tensorrt", f"auto: TensorRT ({st['flavour']} {st['version']}) with a usable GPU"
    if openvino_available():
        return (
            "onnxruntime",
            f"auto: ONNX Runtime or OpenVINO, timed on the result, as TensorRT cannot run here ({st['reason']})",
        )
    return "onnxruntime", f"auto: ONNX Runtime, because TensorRT cannot run here ({st['reason']})"


def check_outputs(options: BuildOptions, backend: str) -> Path:
    """The output path, after checking that every output can be written and that no two of the files the build
    reads and writes are the same file (resolved symlinks, hard links), before any work starts."""
    out = Path(options.output)
    suffix = out.suffix.lower()
    given = f"--backend {options.backend}" if options.backend is not None else "the backend"
    if backend == "onnxruntime" and suffix in ENGINE_SUFFIXES:
        raise UserError(
            f"-o {out} looks like a TensorRT engine, but {given} is ONNX Runtime: name it .onnx, or drop --backend"
        )
    if backend == "onnxruntime" and suffix == ".xml":
        raise UserError(f"{out}: ONNX Runtime runs .onnx; OpenVINO IR (.xml) needs --backend openvino")
    if backend == "openvino" and suffix not in OPENVINO_SUFFIXES:
        raise UserError(f"{out}: the OpenVINO backend writes .onnx, or OpenVINO IR as .xml (+ .bin beside it)")
    if backend == "openvino" and options.residual_fusion == "plugin":
        raise UserError("--residual-fusion plugin is a TensorRT plugin: OpenVINO cannot run it")
    if backend == "openvino" and options.int8.placement == "tensorrt":
        raise UserError(
            "--qdq-placement tensorrt runs as float convolutions between Q/DQ pairs on CPUs: "
            "drop it for --backend openvino"
        )
    if backend == "tensorrt" and suffix == ".onnx":
        raise UserError(
            f"-o {out} names an ONNX file, but {given} writes an engine (TensorRT: .engine/.plan): rename it, drop "
            "--backend, or use --emit-onnx for the ONNX"
        )
    if backend == "tensorrt" and options.int8.placement in ("onnxruntime", "openvino"):
        raise UserError(
            f"--qdq-placement {options.int8.placement} does not parse in TensorRT (uint8 Q/DQ, int32 biases): drop it "
            "for engines"
        )
    if backend == "tensorrt" and options.engine.timing_cache is not None:
        from ..backends.tensorrt.builder import check_timing_cache_path

        check_timing_cache_path(options.engine.timing_cache)  # a FIFO or device is never read
    if backend == "tensorrt" and options.residual_fusion == "plugin":
        from ..backends.tensorrt.plugin import plugin_impl

        plugin_impl(options.engine.plugin_impl)  # one line where the plugin cannot be built (TensorRT-RTX, < 10.9 AOT)
    # (shape flags: checked once the model is known, as they may set another H x W; stages.apply_shapes)
    engine_given = changed(options.engine, ENGINE_FLAGS)
    if backend in ("onnxruntime", "openvino") and engine_given:
        raise UserError(f"{engine_given[0]} only applies to the TensorRT backend")
    check_writable(out)
    outputs: list[tuple[str, str | Path | None]] = [("-o", out)]
    if backend == "tensorrt":
        sidecar = out.with_name(out.name + ".json")
        outputs.append(("the engine's sidecar", check_writable(sidecar)))
    if backend == "openvino" and suffix == ".xml":
        outputs.append(("the IR's weights", check_writable(out.with_suffix(".bin"))))
    if options.emit_onnx is not None:
        outputs.append(("--emit-onnx", check_writable(options.emit_onnx)))
    cache = options.int8.cache_path
    if cache is not None and not Path(cache).exists():
        check_writable(cache)
    # Read when they exist and written after the build: either way no other file of the build may be them.
    outputs += [("--calib-cache", cache), ("--timing-cache", options.engine.timing_cache)]
    weights = options.weights
    if isinstance(weights, str) and weights in bundled_checkpoints():
        weights = bundled_checkpoints()[weights]
    inputs = [
        (flag, value)
        for flag, value in (
            ("--onnx", options.onnx),
            ("--weights", weights),
            ("--calib-data", options.calib_data),
            ("--eval-data", options.eval_data),
            ("--labels", options.labels),
        )
        if value is not None and Path(value).exists()
    ]
    check_no_collisions(outputs, inputs)
    return out
