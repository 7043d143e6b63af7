"""Benchmarks: latency, throughput, arithmetic rate and accuracy of compiled models and their baselines.

Python API::

    from resnet_deploy.benchmark import BenchConfig, bench

    result = bench(["resnet20_int8.onnx"], BenchConfig(batches=[1, 8], data="fashion-mnist:test"), baselines=True)
    result.report.to_dict()

:mod:`.spec` is the data model (targets, runners, configuration, report), :mod:`.core` the measuring loop,
:mod:`.accuracy` the accuracy pass, :mod:`.targets` turns model specs into targets, :mod:`.report` writes JSON,
Markdown and plots, :mod:`.bench` composes them for ``resnet-deploy bench``.
"""

from .bench import BenchOutputs, BenchResult, bench
from .core import run_benchmark
from .machine import machine_info
from .macs import MacCount, count_macs_onnx, count_macs_torch
from .report import load_json, plot, to_markdown, validate_report, write_json, write_markdown
from .spec import BenchConfig, BenchmarkInterrupted, BenchReport, HostRunner, Target, parse_batches
from .stats import LatencyStats, median, percentile
from .targets import add_baselines, load_target

__all__ = [
    "BenchConfig",
    "BenchOutputs",
    "BenchReport",
    "BenchResult",
    "BenchmarkInterrupted",
    "HostRunner",
    "LatencyStats",
    "MacCount",
    "Target",
    "add_baselines",
    "bench",
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
