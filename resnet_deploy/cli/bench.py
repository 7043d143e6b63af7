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
    p.add_argument(
        "--threads", type=int, default=None, metavar="T", help="CPU threads (default: the cores affinity/cgroup grant)"
    )
    p.add_argument(
        "--runtime",
        choices=("onnxruntime", "openvino"),
        default=None,
        help="what runs each .onnx MODEL (default: the runtime build --backend auto recorded in it, else onnxruntime)",
    )
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
    p.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=None,
        metavar="OUT.json",
        help="print the JSON report on stdout instead of the table, as every command's --json does "
        "(the old form --json OUT.json still writes the file, with a deprecation line: use --output)",
    )
    p.add_argument("-o", "--output", default=None, metavar="OUT.json", help="write the JSON report to this file")
    p.add_argument("--markdown", default=None, metavar="OUT.md", help="write the tables as Markdown to this file")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="write latency/throughput/accuracy plots")
    p.add_argument(
        "--export-times",
        default=None,
        metavar="FILE.json",
        help="write every measured iteration's start and latency in ms, per model and batch (trtexec's --exportTimes)",
    )
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


def _json_flag(args: argparse.Namespace) -> tuple[bool, str | None]:
    """(print JSON on stdout, the file to write it to). ``--json`` alone is the flag every command has; the old
    ``--json OUT`` still writes the file, with a deprecation line once the run is done (so that a bad argument
    stays one line)."""
    value = args.json
    if value is None or value is True:
        return value is True, args.output
    if args.output is not None:
        from ..errors import UserError

        raise UserError("give the JSON file once: --output OUT.json (--json OUT.json is its deprecated form)")
    args.deprecated = f"--json {value} is deprecated: use --output {value} (--json alone prints JSON)"
    return False, value


def print_report(report: Any, console: Any) -> None:
    """The run for the terminal: machine line, the latency table and the accuracy table fitted to its width."""
    from ..benchmark.report import machine_line, result_table
    from ._table import print_table

    data = report.to_dict()
    console.print(f"Machine: {machine_line(data['machine'])}", highlight=False, markup=False)
    load = (data["machine"].get("loadavg_at_start"), data["machine"].get("loadavg_at_end"))
    console.print(f"Load average at start {load[0]}, at end {load[1]}", highlight=False, markup=False)
    headers, rows = result_table(data)
    right = {"batch", "median ms", "mean ms", "p90 ms", "p99 ms", "CV %", "images/s", "speed-up vs FP32"}
    cols = [(h, "right" if h in right or h.endswith(" ms") else "left") for h in headers]
    print_table(
        console,
        "Latency and throughput",
        cols,
        rows,
        droppable=["GOPS (peak)", "backend", "precision", "mean ms", "p90 ms"],
    )
    acc = data.get("accuracy") or []
    if acc:
        acc_cols = [("model", "left"), ("backend", "left"), ("precision", "left"), ("top-1 %", "right"),
                    ("top-5 %", "right"), ("agreement with FP32 %", "right")]  # fmt: skip
        acc_rows = [
            [a["model"], str(a["backend"]), str(a["precision"]), f"{a['top1']:.2f}", f"{a['top5']:.2f}",
             "(reference)" if a.get("is_reference") else f"{a.get('agreement_top1') or 0:.2f}"]
            for a in acc
        ]  # fmt: skip
        title = f"Accuracy on {acc[0]['dataset']} ({acc[0]['count']} images)"
        print_table(console, title, acc_cols, acc_rows)  # type: ignore[arg-type]
    for note in data.get("notes") or []:
        console.print(f"note: {note}", highlight=False, markup=False)


def run(args: argparse.Namespace) -> int:
    import json

    from ..api import BenchConfig, BenchOutputs, bench, parse_batches
    from ._table import terminal_console

    as_json, json_file = _json_flag(args)
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
        outputs=BenchOutputs(
            json=json_file,
            markdown=args.markdown,
            plot=args.plot,
            times=args.export_times,
            json_flag="--json" if getattr(args, "deprecated", None) else "--output",
        ),
        progress=_RichProgress(not args.quiet and not as_json),
        runtime=args.runtime,
    )
    if as_json:
        print(json.dumps(result.report.to_dict(), indent=2))
    elif not args.quiet:
        print_report(result.report, terminal_console())
    sys.stdout.flush()  # the table before the warnings when both go to one terminal or log
    if getattr(args, "deprecated", None):
        print(f"resnet-deploy bench: {args.deprecated}", file=sys.stderr)
    for warning in result.report.warnings:  # on stderr, so a piped table or JSON stays clean
        print(f"resnet-deploy bench: WARNING: {warning}", file=sys.stderr)
    if result.interrupted:
        print("resnet-deploy bench: interrupted; partial results written", file=sys.stderr)
        return 130
    return 0
