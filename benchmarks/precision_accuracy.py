"""FP32 vs FP16 vs INT8 (each calibration method) vs ONNX Runtime's own ``quantize_static``, top-1 on all 10,000
Fashion-MNIST test images through ONNX Runtime CPU.

    python benchmarks/precision_accuracy.py                       # the bundled checkpoints
    python benchmarks/precision_accuracy.py --weights a.safetensors --weights b.safetensors

Every INT8 variant uses the same calibration images: the first ``--calib-samples`` (512) of the training split.
Our INT8 graphs come in both Q/DQ placements: ``onnxruntime`` (what ``build --precision int8`` writes for ONNX
Runtime) and ``tensorrt`` (what TensorRT engines are built from), each run here on ONNX Runtime. ORT's
``quantize_static`` runs with QuantFormat.QDQ, per_channel=True, int8 activations and weights, both symmetric
(ActivationSymmetric/WeightSymmetric), MinMax and Percentile calibration, default op selection (it quantizes biases
to int32, which TensorRT's parser rejects; it is here for accuracy only).

Writes benchmarks/results/precision_accuracy.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.benchmark.machine import machine_info
from resnet_deploy.build import export_onnx
from resnet_deploy.data import load_fashion_mnist
from resnet_deploy.models.bundled import bundled_checkpoints
from resnet_deploy.models.weights import load_model
from resnet_deploy.passes.fp16 import to_fp16
from resnet_deploy.precision.calibration import DEFAULT_METHOD
from resnet_deploy.precision.peers import ort_quantize_static
from resnet_deploy.precision.placement import PLACEMENTS
from resnet_deploy.precision.ptq import calibrate_for_placements, place

ROOT = Path(__file__).resolve().parent
METHODS: list[tuple[str, str, float]] = [
    ("minmax", "minmax", 0.0),
    ("percentile 99.9", "percentile", 99.9),
    ("percentile 99.99", "percentile", 99.99),
    ("percentile 99.999", "percentile", 99.999),
    ("entropy", "entropy", 0.0),
    ("mse", "mse", 0.0),
]


def predict(model: onnx.ModelProto, x: np.ndarray, batch: int = 500) -> np.ndarray:
    m = OnnxRuntimeModel(model)
    out = [m.predict(np.ascontiguousarray(x[i : i + batch], dtype=m.input_dtype)) for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float32).argmax(1)


def run_checkpoint(weights: str, calib: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    net, info = load_model(None, weights)
    fp32, _ = export_onnx(net, info)
    rows: list[dict[str, Any]] = []
    ref = predict(fp32, x)

    def add(name: str, kind: str, pred: np.ndarray, seconds: float, **extra: Any) -> None:
        top1 = 100.0 * float((pred == y).mean())
        rows.append(
            {
                "variant": name,
                "kind": kind,
                "top1": round(top1, 2),
                "delta_vs_fp32": round(top1 - 100.0 * float((ref == y).mean()), 2),
                "agreement_with_fp32": round(100.0 * float((pred == ref).mean()), 2),
                "build_seconds": round(seconds, 2),
                **extra,
            }
        )
        print(f"  {name:<34} top-1 {top1:6.2f}  ({rows[-1]['delta_vs_fp32']:+.2f})", flush=True)

    print(f"{weights}: {info.arch}", flush=True)
    add("FP32", "fp32", ref, 0.0)
    t = time.perf_counter()
    fp16, _ = to_fp16(fp32)
    add("FP16 (fp32 io)", "fp16", predict(fp16, x), time.perf_counter() - t)

    t = time.perf_counter()
    calibration = calibrate_for_placements(fp32, calib, batch_size=32)
    calib_seconds = time.perf_counter() - t
    for placement in PLACEMENTS:
        for name, method, pct in METHODS:
            t = time.perf_counter()
            q, _ = place(calibration, placement, method, pct or 99.99)
            add(
                f"INT8 ours ({placement} placement), {name}",
                "int8_ours",
                predict(q, x),
                calib_seconds + time.perf_counter() - t,
                method=method,
                placement=placement,
                default=(method == DEFAULT_METHOD and (method != "percentile" or pct == 99.99)),
            )
    for method in ("minmax", "percentile"):
        t = time.perf_counter()
        q = ort_quantize_static(fp32, calib, method=method)
        label = "MinMax" if method == "minmax" else "Percentile 99.99"
        add(f"INT8 ORT quantize_static, {label}", "int8_ort", predict(q, x), time.perf_counter() - t)
    return {"weights": weights, "arch": info.arch, "name": info.name, "rows": rows}


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Precision accuracy: Fashion-MNIST test set (10,000 images), ONNX Runtime CPU",
        "",
        f"Machine: {m.get('cpu')} ({m.get('cores')} cores), ONNX Runtime {m.get('onnxruntime')}. "
        f"Calibration: first {report['calib_samples']} images of fashion-mnist:train, the same for every INT8 row. "
        f"Default method: `{report['default_method']}`.",
        "",
    ]
    for ck in report["checkpoints"]:
        lines += [
            f"## {ck['name'] or ck['weights']} ({ck['arch']})",
            "",
            "| variant | top-1 % | vs FP32 (pts) | agrees with FP32 % |",
            "|---|---:|---:|---:|",
        ]
        for r in ck["rows"]:
            mark = " (default)" if r.get("default") else ""
            cells = [f"{r['variant']}{mark}", f"{r['top1']:.2f}", f"{r['delta_vs_fp32']:+.2f}"]
            lines.append("| " + " | ".join([*cells, f"{r['agreement_with_fp32']:.2f}"]) + " |")
        lines.append("")
    lines += [report["notes"], "", "## Choosing the default method", "", default_choice(report), ""]
    return "\n".join(lines)


def default_choice(report: dict[str, Any]) -> str:
    """The calibration method with the highest mean agreement with FP32 predictions over checkpoints and placements.

    Agreement is the criterion because top-1 differences between methods are a few images out of 10,000 (noise),
    while agreement counts every prediction quantization changed, right or wrong.
    """
    scores: dict[str, list[float]] = {}
    for ck in report["checkpoints"]:
        for r in ck["rows"]:
            if r["kind"] == "int8_ours":
                scores.setdefault(r["variant"].split(", ", 1)[1], []).append(r["agreement_with_fp32"])
    ranked = sorted(scores.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))
    table = ", ".join(f"{name} {sum(v) / len(v):.2f}" for name, v in ranked)
    mean = {name: sum(v) / len(v) for name, v in ranked}
    default = "percentile 99.99" if report["default_method"] == "percentile" else report["default_method"]
    gap = mean[ranked[0][0]] - mean.get(default, float("nan"))
    return (
        "Mean agreement with the FP32 predictions over the checkpoints and both placements (higher is better; top-1 "
        f"differences between methods are within a few images): {table}. Best: {ranked[0][0]}; the default "
        f"({default}) is {gap:.2f} points behind it (see resnet_deploy/precision/calibration.py for why it stays)."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", action="append", help="checkpoint(s); default: every bundled fmnist_* checkpoint")
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--test-samples", type=int, default=10_000)
    ap.add_argument("--out", default=str(ROOT / "results" / "precision_accuracy"))
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from an existing .json")
    args = ap.parse_args()
    if args.render:
        out = Path(args.out)
        out.with_suffix(".md").write_text(to_markdown(json.loads(out.with_suffix(".json").read_text())))
        return
    weights = args.weights or [n for n in bundled_checkpoints() if n.startswith("fmnist_")]
    if not weights:
        raise SystemExit(
            "no bundled fmnist_* checkpoints: train them (benchmarks/train_reference.py) or pass --weights"
        )
    xt, _ = load_fashion_mnist("train")
    calib = xt[: args.calib_samples]
    x, y = load_fashion_mnist("test")
    x, y = x[: args.test_samples], y[: args.test_samples]
    report: dict[str, Any] = {
        "machine": machine_info(),
        "calib_samples": len(calib),
        "test_samples": len(x),
        "default_method": DEFAULT_METHOD,
        "checkpoints": [],
        "notes": (
            "INT8 ours, tensorrt placement: symmetric int8, per-channel weights, TensorRT's ResNet Q/DQ placement "
            "(Conv/Gemm inputs, residual identity inputs, nothing on biases or Conv outputs). onnxruntime placement: "
            "uint8 activations on every Conv/Add input and output (zero point 0 after Relu, 128 otherwise), "
            "per-channel 7-bit weights, int32 biases, Relus folded into the Qs; ONNX Runtime runs it as QLinearConv/"
            "QLinearAdd. Ranges from one calibration pass, amax by each method (the network-input tensor always by "
            "max: see precision.calibration.plan_amax). "
            "ORT quantize_static: QDQ, per_channel, int8 activations+weights, symmetric, same images."
        ),
    }
    out = Path(args.out)
    for w in weights:  # written after each checkpoint, so a long run keeps what it finished
        report["checkpoints"].append(run_checkpoint(w, calib, x, y))
        out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(to_markdown(report))
    print(f"wrote {out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
