"""PyTorch GPU baselines, the figures a TensorRT engine must beat: resnet18/50 at 224, batch 1..256.

Per model and batch: PyTorch FP32 and PyTorch FP16 channels-last, both replayed as CUDA graphs, timed with CUDA
events (H2D, compute, D2H separately) and host wall time per iteration, through resnet_deploy.benchmark (same
statistics and report format as `resnet-deploy bench`). Weights are random (latency does not depend on them).
TensorRT itself is not run here.

Without a CUDA GPU visible to PyTorch this prints why and exits with status 0, writing nothing.

    python benchmarks/gpu_baselines.py [--batch 1,2,4,...,256] [--duration 3] [--out benchmarks/results/gpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BATCHES = "1,2,4,8,16,32,64,128,256"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu")
    ap.add_argument("--batch", default=DEFAULT_BATCHES)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--min-iterations", type=int, default=10)
    ap.add_argument("--archs", default="resnet18,resnet50")
    ap.add_argument("--no-cuda-graphs", action="store_true")
    ap.add_argument("--note", default=None)
    args = ap.parse_args(argv)

    from resnet_deploy.benchmark.gpu import cuda_available, gpu_name

    if not cuda_available():
        print(
            "gpu_baselines: no CUDA GPU is visible to PyTorch on this machine; nothing measured, nothing written",
            file=sys.stderr,
        )
        return 0

    # ---- NEVER RUN below this line (no GPU where it was written) ----
    import torch

    from resnet_deploy.benchmark import BenchConfig, BenchmarkInterrupted, parse_batches, run_benchmark
    from resnet_deploy.benchmark.macs import count_macs_torch
    from resnet_deploy.benchmark.report import plot, to_markdown, write_json
    from resnet_deploy.benchmark.targets import gpu_baselines
    from resnet_deploy.errors import UserError
    from resnet_deploy.models.weights import load_model

    try:
        batches = parse_batches(args.batch)
    except UserError as exc:
        print(f"gpu_baselines: {exc}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    targets = []
    for arch in args.archs.split(","):
        module, info = load_model(arch)
        macs = count_macs_torch(module, (1, info.in_channels, info.input_size, info.input_size)).total
        targets += gpu_baselines(module, info, f"{arch}@224", f"{arch} (random weights)", macs, not args.no_cuda_graphs)
    cfg = BenchConfig(batches=batches, duration_s=args.duration, min_iterations=args.min_iterations, note=args.note)
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / "bench.json"
    t0 = time.time()
    code = 0
    try:
        report = run_benchmark(targets, cfg, on_update=lambda r: write_json(r, out_json), gpu=gpu_name())
    except BenchmarkInterrupted as exc:
        report, code = exc.report, 130
    report.notes.append(
        "PyTorch baselines only: TensorRT engines are measured with `resnet-deploy bench MODEL.engine` on a GPU "
        "TensorRT runs on; random weights; FP32 convolutions may run as TF32 (PyTorch's cuDNN default)"
    )
    report.notes.append(f"whole script {time.time() - t0:.0f} s")
    write_json(report, out_json)
    (args.out / "bench.md").write_text(to_markdown(report, "GPU baselines: PyTorch FP32 and FP16 channels-last"))
    if report.results:
        plot(report, args.out / "latency.png", kinds=("latency",))
        plot(report, args.out / "throughput.png", kinds=("throughput",))
    print(to_markdown(report, "GPU baselines"))
    return code


if __name__ == "__main__":
    sys.exit(main())
