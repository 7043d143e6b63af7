"""`resnet-deploy infer`: top-k classes for images or a preprocessed .npy batch, with any backend."""

from __future__ import annotations

import argparse
import json
import sys

from ._progress import StageProgress, add_progress_option


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "infer",
        help="classify images or an .npy batch",
        description="Run MODEL (an .onnx file on ONNX Runtime, a TensorRT engine, or a PyTorch checkpoint) on "
        "image files (preprocessed as the model's metadata says) or on a preprocessed float .npy array of shape "
        "(N, C, H, W) or (C, H, W), and print the top-k classes.",
    )
    p.add_argument("model", metavar="MODEL", help=".onnx, .engine/.plan, or a checkpoint (path or bundled name)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--input", metavar="X.npy", help="a preprocessed float array instead of images")
    p.add_argument("--arch", help="architecture of a checkpoint that does not name it (e.g. torchvision .pth)")
    p.add_argument(
        "--input-size", type=int, metavar="S", help="checkpoints: input height = width (default: the checkpoint's)"
    )
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="classes to show per input (default 5)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=256,
        metavar="B",
        help="inputs per inference call (default 256); images are decoded batch by batch too",
    )
    p.add_argument("--save-logits", metavar="OUT.npy", help="write the (N, classes) float32 logits here")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line (default: the model's own, if any)")
    p.add_argument(
        "--runtime",
        choices=("onnxruntime", "openvino"),
        default=None,
        help="what runs an .onnx MODEL (default: the runtime build --backend auto recorded in it, else onnxruntime)",
    )
    add_progress_option(p)
    p.set_defaults(func=run, intermixed="images")


def run(args: argparse.Namespace) -> int:
    from ..api import infer
    from ..errors import UserError

    if args.input is not None and args.images:
        raise UserError("give either --input X.npy or image files, not both")
    if args.input is None and not args.images:
        raise UserError("nothing to classify: give image files or --input X.npy")
    with StageProgress("infer", args.progress) as progress:
        preds = infer(
            args.model,
            npy=args.input,
            images=args.images,
            top_k=args.top_k,
            arch=args.arch,
            input_size=args.input_size,
            save_logits=args.save_logits,
            batch_size=args.batch_size,
            labels=args.labels,
            progress=progress,
            runtime=args.runtime,
        )
    for warning in preds.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if args.json:
        out = preds.to_dict()
        if args.save_logits:
            out["logits_file"] = args.save_logits
        print(json.dumps(out, indent=2))
        return 0
    print(f"{preds.model} ({preds.backend}, {preds.precision})")
    for row, src in enumerate(preds.sources):
        best = ", ".join(
            (f"{preds.label(int(i))} ({int(i)})" if preds.labels else preds.label(int(i))) + f" {100 * float(p):.1f} %"
            for p, i in zip(preds.probs[row], preds.indices[row], strict=True)
        )
        print(f"{src}: {best}")
    if args.save_logits:
        print(f"logits {preds.logits.shape} saved to {args.save_logits}")
    return 0
