"""`resnet-deploy eval`: accuracy of a checkpoint, ONNX graph or engine on a dataset, optionally vs a reference."""

from __future__ import annotations

import argparse
import json
import sys

MODEL_HELP = "a PyTorch checkpoint (path or bundled name), an .onnx file, or a TensorRT engine"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "eval",
        help="measure top-1/top-5 accuracy on a dataset",
        description="Measure top-1, top-5 and per-class accuracy of MODEL on a dataset; with --reference, also "
        "the share of images where both models predict the same class.",
    )
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--arch", help="architecture of a checkpoint that does not name it (e.g. torchvision .pth)")
    p.add_argument(
        "--data",
        metavar="SPEC",
        help="fashion-mnist:test, fashion-mnist:train, a folder with one subfolder per class, or a .npz with x/y "
        "(default: the model's own test set when it is a Fashion-MNIST model)",
    )
    p.add_argument("--reference", metavar="MODEL", help=f"compare top-1 predictions with this model ({MODEL_HELP})")
    p.add_argument("--reference-arch", help="architecture of the reference checkpoint, when it does not name it")
    p.add_argument(
        "--runtime",
        choices=("onnxruntime", "openvino"),
        default=None,
        help="what runs an .onnx MODEL (default: the runtime build --backend auto recorded in it, else onnxruntime)",
    )
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="images per inference call (default 256)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate N images only (a class-spread subset of folders)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--output", "-o", metavar="OUT.json", help="also write the JSON report to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it only shows on a terminal anyway)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import evaluate_model

    report = evaluate_model(
        args.model,
        args.data,
        reference=args.reference,
        arch=args.arch,
        reference_arch=args.reference_arch,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=not args.no_progress,
        output=args.output,
        runtime=args.runtime,
    )
    for warning in report.warnings:  # on stderr, so a piped report stays clean
        print(f"WARNING: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
        if args.output:
            print(f"report written to {args.output}")
    return 0
