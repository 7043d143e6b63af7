"""Benchmarks: latency, throughput, arithmetic rate and accuracy of compiled models and their baselines.

Python API::

    from resnet_deploy.benchmark import BenchConfig, load_target, add_baselines, run_benchmark, write_json

    targets, notes = add_baselines([load_target("resnet20_int8.onnx")])
    report = run_benchmark(targets, BenchConfig(batches=[1, 8], data="fashion-mnist:test"))
    write_json(report, "bench.json")
"""

from .core import (
    BenchConfig,
    BenchmarkInterrupted,
    BenchReport,
    HostRunner,
    Target,
    parse_batches,
    run_benchmark,
)
from .machine import machine_info
from .macs import MacCount, count_macs_onnx, count_macs_torch
from .report import load_json, plot, to_markdown, validate_report, write_json, write_markdown
from .stats import LatencyStats, median, percentile
from .targets import add_baselines, load_target

__all__ = [
    "BenchConfig",
    "BenchReport",
    "BenchmarkInterrupted",
    "HostRunner",
    "LatencyStats",
    "MacCount",
    "Target",
    "add_baselines",
    "count_macs_onnx",
    "count_macs_torch",
    "load_json",
    "load_target",
    "machine_info",
    "median",
    "parse_batches",
    "percentile",
    "plot",
    "run_benchmark",
    "to_markdown",
    "validate_report",
    "write_json",
    "write_markdown",
]
