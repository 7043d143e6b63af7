"""The committed CPU run: FP32 vs INT8 on ONNX Runtime, PyTorch eager as baseline, on the development machine.

Models:
- resnet18 and resnet50 at 224 x 224 (torchvision layout) with RANDOM weights: Kaiming-initialised convolutions,
  BatchNorm running statistics estimated from random images (train-mode passes) and randomised BN scale/shift, so
  BN folding produces non-trivial per-channel weights. Latency does not depend on the weight values; accuracy of
  these is meaningless and is not measured. Their INT8 graphs are calibrated on synthetic images (speed only).
- the bundled checkpoints fmnist_resnet20 and fmnist_resnet50_small (Fashion-MNIST, 1 x 28 x 28): INT8 calibrated
  on fashion-mnist:train (the build's default), accuracy on all of fashion-mnist:test.

All FP32 and INT8 graphs come from resnet_deploy.build (export -> onnxsim -> BN folding -> Q/DQ). All targets of one
batch size are measured interleaved in one process (see resnet_deploy.benchmark.core).

    python benchmarks/run_cpu_benchmarks.py                 # writes benchmarks/results/cpu/
    python benchmarks/check_timing.py                       # the independent timing check of the same graphs
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.benchmark import BenchConfig, BenchmarkInterrupted, BenchReport, Target, run_benchmark
from resnet_deploy.benchmark.accuracy import evaluate_targets
from resnet_deploy.benchmark.core import add_ratios, group_rows, noise_warnings
from resnet_deploy.benchmark.macs import count_macs_onnx
from resnet_deploy.benchmark.report import plot, to_markdown, write_json
from resnet_deploy.build import BuildOptions, build
from resnet_deploy.models.bundled import bundled_checkpoints
from resnet_deploy.models.weights import load_model, save_checkpoint
from resnet_deploy.onnx_io import load_onnx

ROOT = Path(__file__).resolve().parent.parent
RANDOM_ARCHS = ("resnet18", "resnet50")
CHECKPOINTS = ("fmnist_resnet20", "fmnist_resnet50_small")
TARGET_RATIO = 0.6  # INT8 ResNet-50 batch-1 median latency at most 0.6x FP32's


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def random_weights(arch: str, seed: int = 0) -> tuple[nn.Module, Any]:
    """Random weights with non-trivial BatchNorm: running stats from random images, random affine parameters."""
    torch.manual_seed(seed)
    module, info = load_model(arch)
    net = module
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the passes below
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(8, info.in_channels, info.input_size, info.input_size))
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
    net.eval()
    return net, info


class Printer:
    """Plain progress lines (the CLI has the rich bar; a log file reads better with lines)."""

    def __init__(self) -> None:
        self.last = ""

    def begin(self, total_s: float) -> None:
        say(f"measuring, about {total_s:.0f} s of timing plus warm-ups")

    def update(self, description: str, advance_s: float) -> None:
        if description != self.last:
            say(description)
            self.last = description

    def end(self) -> None:
        say("timing done")


def build_pair(
    name: str, work: Path, weights: str | Path, arch: str | None, synthetic: bool, reuse: bool
) -> dict[str, Any]:
    """FP32 and INT8 ONNX of one model through resnet_deploy.build; returns paths and build facts."""
    fp32, int8 = work / f"{name}_fp32.onnx", work / f"{name}_int8.onnx"
    facts: dict[str, Any] = {"fp32": str(fp32), "int8": str(int8)}
    src = bundled_checkpoints().get(str(weights), Path(weights))
    if reuse and fp32.exists() and src.exists() and fp32.stat().st_mtime < src.stat().st_mtime:
        reuse = False  # the checkpoint changed since the last build
    if not (reuse and fp32.exists()):
        say(f"build {name} fp32")
        r = build(BuildOptions(output=fp32, arch=arch, weights=weights, precision="fp32"))
        facts["fp32_build_s"] = round(r.seconds, 1)
    if not (reuse and int8.exists()):
        say(f"build {name} int8 ({'synthetic' if synthetic else 'fashion-mnist:train'} calibration)")
        opts = BuildOptions(output=int8, onnx=fp32, precision="int8")
        if synthetic:
            opts.calib_data, opts.calib_samples = "synthetic", 64
        r = build(opts)
        facts["int8_build_s"] = round(r.seconds, 1)
        facts["int8_report"] = r.int8.to_dict() if r.int8 is not None and hasattr(r.int8, "to_dict") else None
        facts["int8_notes"] = r.notes + r.warnings
    return facts


def ort_targets(name: str, built: dict[str, Any], group: str, threads: int | None, evaluate: bool) -> list[Target]:
    """The FP32 and INT8 ONNX Runtime targets of one model built by :func:`build_pair`."""
    out = []
    for prec in ("fp32", "int8"):
        path = Path(built[prec])
        out.append(
            Target(
                label=f"{name} {prec} onnxruntime",
                model=OnnxRuntimeModel(path, threads=threads),
                source=str(path),
                group=group,
                macs_per_image=count_macs_onnx(load_onnx(path, check=False)).total,
                evaluate=evaluate,
            )
        )
    return out


def ort_reference_int8(fp32: Path, out: Path, reuse: bool) -> Path:
    """ONNX Runtime's own quantize_static (QDQ, uint8 asymmetric activations, per-channel int8 weights, MinMax) on
    16 synthetic images: NOT a resnet-deploy graph, a yardstick for what ORT's CPU INT8 kernels reach on this
    machine with the placement its fusions expect."""
    import numpy as np
    import onnx

    from resnet_deploy._io import atomic_write_bytes
    from resnet_deploy.precision.peers import ort_quantize_static

    if reuse and out.exists():
        return out
    say(f"ORT quantize_static reference for {fp32.name}")
    calib = np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32)
    q = ort_quantize_static(onnx.load(str(fp32)), calib, symmetric=False, batch=1)
    atomic_write_bytes(out, q.SerializeToString())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cpu")
    ap.add_argument("--work", type=Path, default=Path("/tmp/resnet-deploy-bench"), help="models are built here")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--batch-224", default=None, help="batch sizes for resnet18/50 at 224 (default: --batch)")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--min-iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data-limit", type=int, default=None, help="accuracy on the first N test images only")
    ap.add_argument("--reuse", action="store_true", help="reuse models already built in --work")
    ap.add_argument("--build-only", action="store_true", help="build the models into --work, measure nothing")
    ap.add_argument(
        "--no-ort-reference", action="store_true", help="skip ONNX Runtime's quantize_static graphs (a yardstick)"
    )
    ap.add_argument("--only", default=None, help="comma-separated subset of models (resnet18,...,fmnist_resnet20)")
    ap.add_argument(
        "--note",
        default="2-core VM that other jobs may share during the run: see the load averages; ratios between models "
        "measured interleaved hold better than absolute figures",
    )
    args = ap.parse_args(argv)
    from resnet_deploy.benchmark import parse_batches

    batches = parse_batches(args.batch)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    t0 = time.time()

    targets: list[Target] = []
    builds: dict[str, Any] = {}
    notes: list[str] = []
    for arch in RANDOM_ARCHS:
        if wanted and arch not in wanted:
            continue
        ckpt = args.work / f"{arch}_random.safetensors"
        net, info = random_weights(arch)
        if not (args.reuse and ckpt.exists()):
            save_checkpoint(ckpt, net, info)
        else:
            net, info = load_model(arch, ckpt)
        builds[arch] = build_pair(arch, args.work, ckpt, arch, synthetic=True, reuse=args.reuse)
        group = f"{arch}@224"
        targets += ort_targets(arch, builds[arch], group, args.threads, evaluate=False)
        macs = targets[-1].macs_per_image
        targets.append(
            Target(
                label=f"{arch} fp32 pytorch",
                model=TorchModel(net, info),
                source=str(ckpt),
                role="baseline",
                group=group,
                macs_per_image=macs,
                evaluate=False,
            )
        )
        if not args.no_ort_reference:
            ref = ort_reference_int8(Path(builds[arch]["fp32"]), args.work / f"{arch}_ortq_u8.onnx", args.reuse)
            targets.append(
                Target(
                    label=f"{arch} int8 onnxruntime (ORT quantize_static u8, not ours)",
                    model=OnnxRuntimeModel(ref, threads=args.threads),
                    source=str(ref),
                    role="reference",
                    group=group,
                    macs_per_image=macs,
                    evaluate=False,
                )
            )
    notes.append(
        "resnet18/resnet50: random weights (BN statistics from random images, random BN affine), INT8 calibrated on "
        "64 synthetic images: speed only, no accuracy"
    )
    bundled = bundled_checkpoints()
    for name in CHECKPOINTS:
        if wanted and name not in wanted:
            continue
        if name not in bundled:
            notes.append(f"{name}: not bundled at the time of the run, skipped")
            say(f"skip {name}: not bundled yet")
            continue
        module, info = load_model(weights=name)
        builds[name] = build_pair(name, args.work, name, None, synthetic=False, reuse=args.reuse)
        digest = hashlib.sha256(bundled[name].read_bytes()).hexdigest()
        builds[name]["checkpoint"] = {"sha256": digest[:16], "top1_recorded": info.top1}
        group = f"{name}@{info.input_size}"
        targets += ort_targets(name, builds[name], group, args.threads, evaluate=True)
        targets.append(
            Target(
                label=f"{name} fp32 pytorch",
                model=TorchModel(module, info),
                source=name,
                role="baseline",
                group=group,
                macs_per_image=targets[-1].macs_per_image,
            )
        )
    say(f"{len(targets)} targets ready after {time.time() - t0:.0f} s")
    if args.build_only:
        return 0
    has_data = any(t.evaluate for t in targets)
    big = {t.label for t in targets if t.group and t.group.endswith("@224")}
    batches_224 = parse_batches(args.batch_224) if args.batch_224 else batches
    cfg = BenchConfig(
        batches=sorted(set(batches) | set(batches_224)),
        duration_s=args.duration,
        min_iterations=args.min_iterations,
        threads=args.threads,
        data="fashion-mnist:test" if has_data else None,
        data_limit=args.data_limit,
        eval_batch=500,
        note=args.note,
    )
    cfg.validate()
    out_json = args.out / "bench.json"

    def save(rep: Any) -> None:
        write_json(rep, out_json)

    # One run_benchmark per batch size, each over the targets that take that batch (224 x 224 models may use a
    # shorter list to keep the run inside its time budget); within a batch size all targets are interleaved.
    code = 0
    report: BenchReport | None = None
    printer = Printer()
    try:
        for b in cfg.batches:
            subset = [t for t in targets if b in (batches_224 if t.label in big else batches)]
            if not subset:
                continue
            part_cfg = dataclasses.replace(cfg, batches=[b], data=None)
            part = run_benchmark(subset, part_cfg, progress=printer)
            if report is None:
                report = part
                report.config = cfg.to_dict()
                report.config["batches_224"] = batches_224
            else:
                report.results.extend(part.results)
                report.machine["loadavg_at_end"] = part.machine.get("loadavg_at_end")
            add_ratios(report.results)
            group_rows(report.results, [t.label for t in targets])  # each model's batches together
            report.warnings = noise_warnings(report.results, report.machine)
            save(report)
        assert report is not None
        if cfg.data:
            say(f"accuracy on {cfg.data}")
            report.accuracy = evaluate_targets(targets, cfg)
            by_label = {a["model"]: a for a in report.accuracy}
            for row in report.results:
                if row["model"] in by_label:
                    row["accuracy"] = by_label[row["model"]]
    except (BenchmarkInterrupted, KeyboardInterrupt) as exc:
        code = 130
        if isinstance(exc, BenchmarkInterrupted) and report is None:
            report = exc.report
        elif isinstance(exc, BenchmarkInterrupted) and report is not None:
            report.results.extend(exc.report.results)
        if report is None:
            return code
        report.interrupted = True
        report.notes.append("interrupted by the user: partial results")
    report.notes.extend(notes)
    report.notes.append(f"models built by resnet_deploy.build: {json.dumps(builds, default=str)}")
    headline = _headline(report.results)
    if headline:
        report.notes.insert(0, headline)
    report.notes.append(f"whole script {time.time() - t0:.0f} s")
    save(report)
    title = "CPU benchmarks: FP32 vs INT8 on ONNX Runtime, PyTorch eager baseline"
    (args.out / "bench.md").write_text(to_markdown(report, title))
    if report.results:
        plot(report, args.out / "latency.png", kinds=("latency",))
        plot(report, args.out / "throughput.png", kinds=("throughput",))
    if report.accuracy:
        plot(report, args.out / "accuracy.png", kinds=("accuracy",))
    say(f"written to {args.out} ({time.time() - t0:.0f} s)")
    print(to_markdown(report, title))
    return code


def _headline(rows: list[dict[str, Any]]) -> str | None:
    fp32 = next((r for r in rows if r["model"] == "resnet50 fp32 onnxruntime" and r["batch"] == 1), None)
    int8 = next((r for r in rows if r["model"] == "resnet50 int8 onnxruntime" and r["batch"] == 1), None)
    if not fp32 or not int8:
        return None
    ratio = int8["latency_ms"]["median"] / fp32["latency_ms"]["median"]
    verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    return (
        f"target (INT8 ResNet-50 batch-1 median latency <= {TARGET_RATIO}x FP32): {verdict}: "
        f"INT8 {int8['latency_ms']['median']:.1f} ms vs FP32 {fp32['latency_ms']['median']:.1f} ms = {ratio:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
