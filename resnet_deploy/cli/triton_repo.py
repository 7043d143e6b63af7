"""`resnet-deploy triton-repo`: a Triton Inference Server model repository from .onnx files and engines."""

from __future__ import annotations

import argparse
import json


def add_repository_options(p: argparse.ArgumentParser) -> None:
    """The options `triton-repo` and `serve` share."""
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx files and resnet-deploy engines (.engine/.plan)")
    p.add_argument(
        "--max-batch", type=int, default=None, metavar="N", help="max_batch_size (ONNX: 32; engines: the profile's max)"
    )
    p.add_argument("--instances", type=int, default=1, metavar="N", help="model instances per model (default 1)")
    p.add_argument(
        "--queue-delay-us",
        type=int,
        default=500,
        metavar="US",
        help="dynamic batching: longest wait for a batch, in microseconds (default 500)",
    )
    p.add_argument(
        "--image-input",
        action="store_true",
        help="also add <name>_image ensembles that take uint8 H x W x C images and preprocess them as the model needs",
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "triton-repo",
        help="write a Triton Inference Server model repository",
        description="Write a model repository in NVIDIA Triton's layout: per model config.pbtxt (ONNX: platform "
        "onnxruntime_onnx; engines: tensorrt_plan; dims, batch limits and class labels from the model's metadata, "
        "dynamic batching, warm-up), configs/cpu.pbtxt for CPU-only servers (--model-config-name=cpu) and "
        "1/model.onnx or 1/model.plan. Every config is checked with Triton's own model_config.proto first. Engines "
        "built by TensorRT-RTX are refused (Triton's tensorrt backend runs full TensorRT).",
    )
    add_repository_options(p)
    p.add_argument("-o", "--output", required=True, metavar="REPO", help="the repository folder (new, or empty)")
    p.add_argument("--no-warmup", action="store_true", help="leave model_warmup out of the configs")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import triton_repo

    result = triton_repo(
        args.models,
        args.output,
        max_batch=args.max_batch,
        instances=args.instances,
        queue_delay_us=args.queue_delay_us,
        image_input=args.image_input,
        warmup=not args.no_warmup,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"wrote Triton model repository {result.path}:")
    for m in result.models:
        batching = f"max_batch_size {m.max_batch}" + (
            f", preferred {m.preferred_batches}" if m.preferred_batches else ""
        )
        print(f"  {m.name:<28} {m.platform:<17} {batching}")
    print(
        f"dynamic batching waits at most {result.queue_delay_us} us; serve it with NVIDIA's container "
        f"(tritonserver --model-repository {result.path}, --model-config-name=cpu without a GPU) "
        "or here with resnet-deploy serve MODEL..."
    )
    return 0
