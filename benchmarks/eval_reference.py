"""Accuracy of the bundled reference checkpoints after export to ONNX, through ONNX Runtime (CPU), on all 10,000
Fashion-MNIST test images; writes ``benchmarks/results/reference_accuracy.json`` naming the machine.

    python benchmarks/eval_reference.py                      # every bundled checkpoint
    python benchmarks/eval_reference.py fmnist_resnet20      # some of them

Each checkpoint goes through the product's own path: ``load_model`` -> ``export_onnx`` (onnxsim, BatchNorm folding)
-> ``OnnxRuntimeModel`` -> ``evaluate``; the PyTorch eager model is the reference for the agreement figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from resnet_deploy._io import atomic_write_text
from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.build import export_onnx
from resnet_deploy.data import open_dataset
from resnet_deploy.evaluate import evaluate
from resnet_deploy.models.bundled import bundled_checkpoints, resolve_weights
from resnet_deploy.models.weights import load_model

RESULTS = Path(__file__).resolve().parent / "results" / "reference_accuracy.json"
DATA = "fashion-mnist:test"


def cpu_model() -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else whatever platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ["CPUExecutionProvider"],
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def measure(name: str, batch_size: int, limit: int | None = None, threads: int = 1) -> dict[str, Any]:
    module, info = load_model(weights=name)
    proto, _ = export_onnx(module, info)
    dataset = open_dataset(DATA, info)
    with OnnxRuntimeModel(proto, threads=threads) as model:
        report = evaluate(model, dataset, reference=TorchModel(module, info), batch_size=batch_size, limit=limit)
    d = report.to_dict()
    print(f"{name}: top-1 {report.top1:.2f} %  top-5 {report.top5:.2f} %  agreement with PyTorch {report.agreement} %")
    return {
        "name": name,
        "arch": info.arch,
        "checkpoint_sha256": hashlib.sha256(resolve_weights(name).read_bytes()).hexdigest(),
        "dataset": DATA,
        "count": d["count"],
        "top1": d["top1"],
        "top5": d["top5"],
        "correct_top1": d["correct_top1"],
        "per_class": {c["label"]: c["top1"] for c in d["per_class"]},
        "agreement_with_pytorch": d["agreement"],
        "pytorch_top1": d["reference_top1"],
        "checkpoint_top1_metadata": info.top1,
        "confusion": d["confusion"],
        "eval_seconds_incl_pytorch_reference": d["seconds"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="bundled checkpoint names (default: all)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime and PyTorch threads (1: no spinning on a shared machine)"
    )
    ap.add_argument("--limit", type=int, help="first N test images only (smoke runs; the committed file uses all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.names or sorted(bundled_checkpoints())
    if not names:
        print("no bundled checkpoints found", file=sys.stderr)
        return 1
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results = [measure(name, args.batch_size, args.limit, args.threads) for name in names]
    record = {
        "what": "top-1 of the bundled checkpoints exported to ONNX (onnxsim + BN folding), ONNX Runtime CPU, FP32",
        "command": " ".join(["python", "benchmarks/eval_reference.py", *sys.argv[1:]]),
        "date": started,
        "machine": machine(),
        "threads": args.threads,
        "results": results,
    }
    atomic_write_text(args.output, json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
