"""ResNet-50 (torchvision layout, 224x224) latency on ONNX Runtime CPU: FP32 vs our INT8 vs ORT's quantize_static.

    python benchmarks/precision_speed.py [--iters 30] [--warmup 5]

The weights are random (seeded) with non-trivial BatchNorm statistics (running mean/var, affine parameters drawn
per channel), so folding gives realistic per-channel scales; speed does not depend on the values. Calibration uses
32 random images in [0, 1] for both INT8 variants (speed only: accuracy is measured in precision_accuracy.py).

Variants, all batch 1, one process, one machine, timed round-robin (one run of each in turn) so that load changes
on a shared machine hit all of them alike; median latency after warm-up:

- ``fp32``: the exported, BN-folded graph;
- ``int8_ours_onnxruntime``: our INT8 graph with the ONNX Runtime placement (what ``build --precision int8`` writes
  for ``--backend onnxruntime``: uint8 activations, int32 biases, Relus folded into the Qs);
- ``int8_ours_tensorrt``: our INT8 graph with TensorRT's Q/DQ placement (what ``--backend tensorrt`` builds
  engines from), run on ONNX Runtime;
- ``int8_ort_qdq``: ORT ``quantize_static`` (QDQ, per-channel, int8 symmetric activations and weights);
- ``int8_ort_qdq_asym_u8``: the same with ORT's default activations (uint8, asymmetric), for reference: a zero
  point at the bottom of the range makes every Relu redundant, so ORT folds it into QLinearConv/QLinearAdd.

Writes benchmarks/results/precision_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from resnet_deploy.benchmark.machine import machine_info
from resnet_deploy.build import export_onnx
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.models.weights import randomize_batchnorm
from resnet_deploy.precision.peers import ort_quantize_static
from resnet_deploy.precision.placement import PLACEMENTS
from resnet_deploy.precision.ptq import calibrate_for_placements, place

ROOT = Path(__file__).resolve().parent


def resnet50_fp32(seed: int = 0) -> onnx.ModelProto:
    torch.manual_seed(seed)
    net = randomize_batchnorm(build_model("resnet50", 1000, 3), seed).eval()
    return export_onnx(net, ModelInfo(arch="resnet50"))[0]


def session(model: onnx.ModelProto, threads: int | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as d:
        opts.optimized_model_filepath = str(Path(d) / "opt.onnx")
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        optimized = onnx.load(opts.optimized_model_filepath, load_external_data=False)
    sess.optimized_ops = dict(Counter(n.op_type for n in optimized.graph.node).most_common())  # type: ignore[attr-defined]
    return sess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = ORT's default: all cores)")
    ap.add_argument("--out", default=str(ROOT / "results" / "precision_speed.json"))
    ap.add_argument("--note", default="", help="free text stored in the JSON (e.g. how loaded the machine was)")
    args = ap.parse_args()

    fp32 = resnet50_fp32()
    calib = np.random.default_rng(0).random((32, 3, 224, 224), dtype=np.float32)
    calibration = calibrate_for_placements(fp32, calib, batch_size=8)
    ours: dict[str, onnx.ModelProto] = {}
    reports: dict[str, Any] = {}
    for placement in PLACEMENTS:
        ours[placement], report = place(calibration, placement, "percentile")
        reports[placement] = report.to_dict()
    variants = {
        "fp32": fp32,
        "int8_ours_onnxruntime": ours["onnxruntime"],
        "int8_ours_tensorrt": ours["tensorrt"],
        "int8_ort_qdq": ort_quantize_static(fp32, calib, batch=8),
        "int8_ort_qdq_asym_u8": ort_quantize_static(fp32, calib, symmetric=False, batch=8),
    }
    sessions = {k: session(m, args.threads or None) for k, m in variants.items()}
    x = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    for _ in range(args.warmup):
        for s in sessions.values():
            s.run(None, {"input": x})
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(args.iters):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"input": x})
            times[k].append((time.perf_counter() - t) * 1000)
    base = statistics.median(times["fp32"])
    results = {}
    for k, ts in times.items():
        med = statistics.median(ts)
        results[k] = {
            "median_ms": round(med, 2),
            "min_ms": round(min(ts), 2),
            "mean_ms": round(statistics.fmean(ts), 2),
            "speedup_vs_fp32": round(base / med, 3),
            "ops_in_graph": dict(Counter(n.op_type for n in variants[k].graph.node).most_common()),
            "ops_after_ort_optimization": sessions[k].optimized_ops,
        }
        print(f"{k:<22} median {med:8.2f} ms  min {min(ts):8.2f} ms  speedup {base / med:5.2f}x", flush=True)
    doc = {
        "model": "resnet50 (torchvision layout), 224x224, batch 1, random weights with non-trivial BN statistics",
        "machine": machine_info(threads=args.threads or None),
        "iters": args.iters,
        "warmup": args.warmup,
        "results": results,
        "our_qdq_reports": reports,
    }
    if args.note:
        doc["note"] = args.note
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
