"""`resnet-deploy build`: checkpoint or ONNX -> FP32/FP16/INT8 ONNX for ONNX Runtime, or a TensorRT engine."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ._progress import add_progress_option

if TYPE_CHECKING:
    from ..build import BuildOptions


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "build",
        help="compile a model: export, simplify, fold BN, FP16/INT8, ONNX Runtime or TensorRT",
        description=(
            "Run the whole pipeline: export (torch.onnx), onnxsim, BatchNorm folding, precision (FP16 pass, or INT8 "
            "calibration + Q/DQ), then write an ONNX model (ONNX Runtime) or a TensorRT engine. With no model "
            "argument, builds the bundled fmnist_resnet20 checkpoint."
        ),
    )
    src = p.add_argument_group("model (default: the bundled fmnist_resnet20)")
    src.add_argument("--arch", help="architecture (see `resnet-deploy models`)")
    src.add_argument("--weights", help="checkpoint file (.pth/.pt/.safetensors) or bundled checkpoint name")
    src.add_argument("--onnx", help="a float32 ONNX model instead of a checkpoint")
    src.add_argument("--opset", type=int, default=17, help="ONNX opset for the export (default 17)")
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default="fp32",
        help="fp32 (default), fp16 (FP16 graph), or int8 (calibrated Q/DQ graph; see the INT8 options)",
    )
    p.add_argument(
        "--backend",
        choices=("onnxruntime", "openvino", "tensorrt", "auto"),
        help="default: from -o (.engine/.plan/.trt: tensorrt, .xml: openvino, else onnxruntime); openvino: an .onnx "
        "or .xml IR for OpenVINO; auto: tensorrt where a GPU runs it, else the CPU graph, timed on ONNX Runtime and "
        "OpenVINO",
    )
    p.add_argument(
        "--io-dtype", choices=("fp32", "fp16"), default="fp32", help="FP16 graph input/output dtype (default fp32)"
    )
    p.add_argument("-o", "--output", required=True, help="output .onnx (ONNX Runtime) or .engine (TensorRT)")
    p.add_argument("--emit-onnx", metavar="PATH", help="also write the final ONNX graph here")
    p.add_argument("--json", action="store_true", help="print the build result as JSON")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line: stored with the model, shown by infer")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print TensorRT's builder log (every severity) and ONNX Runtime's log of every session it opens "
        "(calibration, the INT8 check, the final load) on stderr (default: TensorRT warnings summarised, ONNX "
        "Runtime errors only)",
    )
    add_progress_option(p)
    q = p.add_argument_group("INT8")
    q.add_argument(
        "--qdq-placement",
        choices=("tensorrt", "onnxruntime", "openvino"),
        help=(
            "where Q/DQ goes (default: the backend's own, tensorrt, onnxruntime or openvino): 'onnxruntime' runs int8 "
            "kernels on ONNX Runtime but does not parse in TensorRT; 'openvino' is the same with signed tensors in "
            "int8 (what OpenVINO compiles for NNCF's graphs); 'tensorrt' follows TensorRT's fusion rules and also "
            "runs (slower) on CPUs"
        ),
    )
    q.add_argument(
        "--calib-data",
        metavar="SPEC",
        help="fashion-mnist:train, an image folder (one subfolder per class), a .npz/.npy, or 'synthetic' (speed "
        "only); default: fashion-mnist:train for bundled checkpoints, required otherwise",
    )
    q.add_argument(
        "--calib-method",
        choices=("minmax", "percentile", "entropy", "mse"),
        help="how activation ranges are chosen from the calibration histograms (default: percentile, or the "
        "method a reused --calib-cache records)",
    )
    q.add_argument(
        "--calib-percentile",
        type=float,
        metavar="P",
        help="percentile of |activation| kept, in percent, for --calib-method percentile (default 99.99)",
    )
    q.add_argument("--calib-samples", type=int, default=512, metavar="N", help="calibration images (default 512)")
    q.add_argument("--calib-cache", metavar="FILE", help="reuse this calibration cache, or write it after calibrating")
    q.add_argument(
        "--calib-batch",
        type=int,
        metavar="N",
        help="images per calibration run (default: from a 64 MiB budget, or the model's static batch)",
    )
    q.add_argument(
        "--calib-check", type=int, metavar="N", help="compare INT8 with FP32 top-1 on N images (default 128; 0: skip)"
    )
    q.add_argument(
        "--max-accuracy-drop",
        type=float,
        metavar="PTS",
        help="largest top-1 loss allowed, in percentage points (0.3 = 0.3 %% of the images), measured on "
        "--eval-data; the most sensitive layers stay in float until it fits (default: no search, all int8)",
    )
    q.add_argument(
        "--eval-data",
        metavar="SPEC",
        help="labelled data for --max-accuracy-drop (a folder with one subfolder per class, a .npz with x/y, "
        "fashion-mnist:test); default: fashion-mnist:test for bundled checkpoints, required otherwise",
    )
    q.add_argument("--eval-samples", type=int, default=2000, metavar="N", help="images for the search (default 2000)")
    t = p.add_argument_group("TensorRT")
    t.add_argument(
        "--residual-fusion",
        choices=("native", "plugin", "auto"),
        default="native",
        help="residual Add+ReLU: native (default: TensorRT fuses it itself), plugin (the ResidualAddRelu CUDA "
        "plugin), auto (build both on a TensorRT GPU, keep the faster)",
    )
    t.add_argument(
        "--plugin-impl",
        choices=("aot", "python"),
        help="plugin engines: 'aot' embeds the kernel (runs without Python; TensorRT 10.9+, the default there), "
        "'python' needs resnet-deploy at run time",
    )
    t.add_argument("--min-batch", type=int, metavar="N", help="batch profile: smallest batch, in images (default 1)")
    t.add_argument(
        "--opt-batch", type=int, metavar="N", help="batch profile: batch the kernels are tuned for (default: max)"
    )
    t.add_argument("--max-batch", type=int, metavar="N", help="batch profile: largest batch, in images (default 32)")
    for which in ("min", "opt", "max"):
        t.add_argument(
            f"--{which}-shapes",
            metavar="NAME:NxCxHxW",
            help=f"trtexec-style {which} shape of the input: sets --{which}-batch and the {which} H x W (see "
            "--shapes); one not given is filled as trtexec fills it",
        )
    t.add_argument(
        "--shapes",
        metavar="NAME:NxCxHxW",
        help="trtexec-style: min = opt = max shape of the input. C must be the graph's. Another H x W exports a "
        "checkpoint at that size; a range (--min/--max-shapes) exports dynamic H and W axes (the engine's profile "
        "gets the range), calibrated and evaluated at the opt size, which must be square; a foreign ONNX takes "
        "another H x W only through dynamic H/W axes. ONNX Runtime/OpenVINO take them for the H x W alone",
    )
    t.add_argument(
        "--opt-level",
        type=int,
        metavar="0-5",
        help="builder optimization level 0..5 (default 3; higher: slower builds)",
    )
    t.add_argument(
        "--workspace",
        type=int,
        metavar="MIB",
        help="workspace memory limit in MiB (default: TensorRT's, device memory)",
    )
    t.add_argument("--timing-cache", metavar="FILE", help="load (if valid) and save TensorRT's timing cache here")
    t.add_argument(
        "--version-compatible", action="store_true", help="engine that later TensorRT versions load (default: off)"
    )
    t.add_argument(
        "--hardware-compat",
        choices=("none", "ampere_plus", "same_compute_capability"),
        help="GPUs the engine runs on besides the one it was built on (default: none)",
    )
    p.set_defaults(func=run)


def shapes_from_args(args: argparse.Namespace) -> dict[str, str]:
    """``--shapes`` (all three) and ``--min/--opt/--max-shapes`` as BuildOptions.shapes; both kinds is one line."""
    from ..errors import UserError

    shapes = {k: v for k in ("min", "opt", "max") if (v := getattr(args, f"{k}_shapes")) is not None}
    if args.shapes is not None:
        if shapes:
            raise UserError("give --shapes or --min/--opt/--max-shapes, not both")
        shapes = dict.fromkeys(("min", "opt", "max"), args.shapes)
    return shapes


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    """The :class:`BuildOptions` the command line asks for; options not given keep their library defaults."""
    from ..backends.tensorrt.builder import EngineBuildOptions
    from ..build import BuildOptions
    from ..precision.ptq import Int8Options

    def given(**values: object) -> dict[str, object]:
        return {k: v for k, v in values.items() if v is not None and v is not False}

    int8 = Int8Options(
        **given(  # type: ignore[arg-type]
            placement=args.qdq_placement,
            method=args.calib_method,
            percentile=args.calib_percentile,
            cache_path=args.calib_cache,
            max_accuracy_drop=args.max_accuracy_drop,
            batch_size=args.calib_batch,
            check_samples=args.calib_check,
        )
    )
    engine = EngineBuildOptions(
        **given(  # type: ignore[arg-type]
            min_batch=args.min_batch,
            opt_batch=args.opt_batch,
            max_batch=args.max_batch,
            opt_level=args.opt_level,
            workspace_mb=args.workspace,
            timing_cache=args.timing_cache,
            version_compatible=args.version_compatible,
            hardware_compat=args.hardware_compat,
            plugin_impl=args.plugin_impl,
        )
    )
    return BuildOptions(
        output=args.output,
        arch=args.arch,
        weights=args.weights,
        onnx=args.onnx,
        opset=args.opset,
        precision=args.precision,
        backend=args.backend,
        io_dtype=args.io_dtype,
        calib_data=args.calib_data,
        calib_samples=args.calib_samples,
        eval_data=args.eval_data,
        eval_samples=args.eval_samples,
        emit_onnx=args.emit_onnx,
        residual_fusion=args.residual_fusion,
        labels=args.labels,
        shapes=shapes_from_args(args),
        int8=int8,
        engine=engine,
        verbose=args.verbose,
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..api import build
    from ._progress import StageProgress

    options = options_from_args(args)
    with StageProgress("build", args.progress, enabled=not args.json) as stages:

        def progress(stage: str, detail: str) -> None:
            if stage == "log":  # --verbose: the libraries' own log lines, above the spinner
                stages.err.print(detail, highlight=False, markup=False, soft_wrap=True)
                return
            stages(stage, detail)

        result = build(options, progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    out = Console(soft_wrap=True)
    for line in result.summary_lines():
        if line.startswith("WARNING"):
            out.print(f"[bold red]{line}[/]", highlight=False)
        else:
            out.print(line, highlight=False, markup=False)
    sys.stdout.flush()
    return 0
