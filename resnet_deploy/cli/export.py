"""`resnet-deploy export`: PyTorch weights -> ONNX (dynamic batch) -> onnxsim -> BatchNorm folding."""

from __future__ import annotations

import argparse
import json

from ._progress import StageProgress, add_progress_option


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export",
        help="export a ResNet to ONNX (simplified, BatchNorm folded)",
        description="Export a ResNet to ONNX with a dynamic batch axis (input 'input' NCHW float32, output "
        "'logits'), simplify it with onnxsim and fold every BatchNormalization into its Conv. The output is "
        "written atomically: on any error no file is left behind.",
    )
    p.add_argument("--arch", help="architecture (see `resnet-deploy models`); optional for resnet-deploy checkpoints")
    p.add_argument(
        "--weights",
        metavar="PATH|NAME",
        help=".pth/.pt state dict (torchvision format), .safetensors, or a bundled checkpoint name; "
        "random weights when omitted",
    )
    p.add_argument("--num-classes", type=int, metavar="N", help="classes (default: read off the weights, else 1000)")
    p.add_argument("--in-channels", type=int, metavar="C", help="input channels (default: from the weights, else 3)")
    p.add_argument("--input-size", type=int, metavar="S", help="input height = width (default: the architecture's)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="where to write the ONNX model")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary")
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import export_model

    with StageProgress("export", args.progress, enabled=not args.json) as progress:
        result = export_model(
            args.arch,
            args.weights,
            args.output,
            num_classes=args.num_classes,
            in_channels=args.in_channels,
            input_size=args.input_size,
            opset=args.opset,
            progress=progress,
        )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0
