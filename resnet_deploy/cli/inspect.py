"""`resnet-deploy inspect`: what is inside an ONNX model, an OpenVINO IR or a TensorRT engine."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "inspect",
        help="describe an ONNX model, OpenVINO IR or TensorRT engine",
        description="Describe an ONNX model (op counts, inputs/outputs, opset, resnet-deploy metadata, precision, "
        "weight bytes, Q/DQ and plugin nodes), an OpenVINO IR written by build -o M.xml (read by OpenVINO: "
        "inputs/outputs, precision, metadata, op counts, .bin size; needs the openvino extra) or a TensorRT engine "
        "built by resnet-deploy (from its sidecar, and live when a GPU is usable).",
    )
    p.add_argument("model", metavar="MODEL", help="an .onnx file, an OpenVINO IR .xml, or an .engine/.plan file")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument(
        "--layers", type=int, default=0, metavar="N", help="engines: also list the first N layers (default 0: none)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import format_summary, inspect_model

    result = inspect_model(args.model)
    print(json.dumps(result, indent=2, default=str) if args.json else format_summary(result, max_layers=args.layers))
    return 0
