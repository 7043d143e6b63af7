"""`resnet-deploy eval`: accuracy of a checkpoint, ONNX graph or engine on a dataset, optionally vs a reference."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from ..backends.base import InferenceModel
    from ..models.weights import ModelInfo

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
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="images per inference call (256)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate N images only (a class-spread subset of folders)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--output", "-o", metavar="OUT.json", help="also write the JSON report to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it only shows on a terminal anyway)")
    p.set_defaults(func=run)


def _info_for(model: InferenceModel) -> ModelInfo | None:
    """The model's ModelInfo, or one read off a foreign graph's static input shape (for image preprocessing)."""
    from ..models.weights import ModelInfo

    if model.info is not None:
        return model.info
    shape = model.input_shape
    if len(shape) == 4 and shape[1] is not None and shape[2] is not None and shape[2] == shape[3]:
        return ModelInfo(arch="unknown", in_channels=int(shape[1]), input_size=int(shape[2]))
    return None


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_text, check_writable
    from ..api import load_runtime_model
    from ..data.datasets import open_dataset
    from ..evaluate import evaluate

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if args.output:
        check_writable(args.output)  # fail before a long evaluation, not after
    model = load_runtime_model(args.model, args.arch)
    reference = None
    try:
        info = _info_for(model)
        spec = args.data
        if spec is None:
            if info is not None and info.dataset == "fashion-mnist":
                spec = "fashion-mnist:test"
            else:
                raise UserError(f"--data is required: {args.model} does not name the dataset it was trained on")
        dataset = open_dataset(spec, info)
        if args.reference:
            reference = load_runtime_model(args.reference, args.reference_arch)
        report = evaluate(
            model,
            dataset,
            reference=reference,
            batch_size=args.batch_size,
            limit=args.limit,
            progress=not args.no_progress,
        )
    finally:
        model.close()
        if reference is not None:
            reference.close()
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
    if args.json:
        print(text, end="")
    else:
        print(report.summary())
        if args.output:
            print(f"report written to {args.output}")
    return 0
