"""`resnet-deploy bench`: latency, throughput, arithmetic rate and accuracy of models and their baselines."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench",
        help="measure latency/throughput (trtexec-style) and accuracy, with baselines",
        description=(
            "Measure each MODEL (.onnx, TensorRT engine, or a checkpoint run in PyTorch eager) at each batch size: "
            "warm-up, then at least --min-iterations iterations and --duration seconds; latency min/mean/median/"
            "p90/p95/p99/max (trtexec's percentiles), throughput, MACs x 2 x images/s against the machine's peak."
        ),
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx, .engine/.plan, checkpoint file or bundled name")
    p.add_argument("--batch", default="1", help="batch sizes, comma-separated (default 1)")
    p.add_argument("--duration", type=float, default=3.0, metavar="S", help="seconds per model and batch (default 3)")
    p.add_argument("--warmup", type=float, default=200.0, metavar="MS", help="warm-up in milliseconds (default 200)")
    p.add_argument("--min-iterations", type=int, default=10, metavar="N", help="iterations at least (default 10)")
    p.add_argument("--threads", type=int, default=None, metavar="T", help="CPU threads (default: all cores)")
    p.add_argument("--data", default=None, metavar="SPEC", help="also measure accuracy, e.g. fashion-mnist:test")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="accuracy on the first N images only")
    p.add_argument(
        "--baselines",
        action="store_true",
        help="add ONNX Runtime FP32 and PyTorch eager FP32 on the same weights (and PyTorch CUDA FP32/FP16 on a GPU)",
    )
    p.add_argument("--weights", default=None, help="checkpoint for the baselines when the model's metadata has none")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device for PyTorch models (default auto: cuda when usable)",
    )
    p.add_argument("--no-cuda-graphs", action="store_true", help="GPU: enqueue every iteration instead of a graph")
    p.add_argument("--no-interleave", action="store_true", help="measure models back to back, not in chunks")
    p.add_argument("--note", default=None, help="free text stored in the report's machine block")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write the JSON report")
    p.add_argument("--markdown", default=None, metavar="OUT", help="write a Markdown table")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="write latency/throughput/accuracy plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table on stdout")
    p.set_defaults(func=run)


class _RichProgress:
    """Progress bar on stderr, shown only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not (enabled and console.is_terminal),
            transient=True,
        )
        self.task: Any = None

    def begin(self, total_s: float) -> None:
        self.bar.start()
        self.task = self.bar.add_task("benchmark", total=total_s)

    def update(self, description: str, advance_s: float) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=description, advance=advance_s)

    def end(self) -> None:
        self.bar.stop()


def run(args: argparse.Namespace) -> int:
    from ..api import BenchConfig, BenchOutputs, bench, parse_batches
    from ..benchmark.report import to_markdown

    config = BenchConfig(
        batches=parse_batches(args.batch),
        duration_s=args.duration,
        warmup_ms=args.warmup,
        min_iterations=args.min_iterations,
        threads=args.threads,
        data=args.data,
        data_limit=args.limit,
        interleave=not args.no_interleave,
        note=args.note,
    )
    result = bench(
        args.models,
        config,
        baselines=args.baselines,
        weights=args.weights,
        device=args.device,
        cuda_graphs=not args.no_cuda_graphs,
        outputs=BenchOutputs(json=args.json_out, markdown=args.markdown, plot=args.plot),
        progress=_RichProgress(not args.quiet),
    )
    if not args.quiet:
        print(to_markdown(result.report, title="resnet-deploy bench"))
    if result.interrupted:
        print("resnet-deploy bench: interrupted; partial results written", file=sys.stderr)
        return 130
    return 0
