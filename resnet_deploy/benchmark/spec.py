"""What a benchmark measures and what it reports: targets, runners, the configuration and the report record.

The data model of :mod:`resnet_deploy.benchmark`, imported by the measuring loop (:mod:`.core`), the accuracy pass
(:mod:`.accuracy`) and the report writers alike, so none of them imports another.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..backends.base import InferenceModel
from ..errors import UserError

REPORT_FORMAT = "resnet-deploy-bench/1"


class Runner(Protocol):
    """Runs one prepared batch per :meth:`step`; ``step`` may return per-iteration GPU timings in ms."""

    device: str
    cuda_graphs: bool
    notes: list[str]

    def prepare(self, x: np.ndarray) -> None: ...

    def step(self) -> dict[str, float] | None: ...

    def release(self) -> None: ...


class HostRunner:
    """Times ``model.predict`` on a fixed input: the CPU path (and any backend without a CUDA runner)."""

    device = "cpu"
    cuda_graphs = False

    def __init__(self, model: InferenceModel) -> None:
        self.model = model
        self.notes: list[str] = []
        self.x: np.ndarray | None = None

    def prepare(self, x: np.ndarray) -> None:
        self.x = np.ascontiguousarray(x.astype(self.model.input_dtype, copy=False))

    def step(self) -> None:
        self.model.predict(self.x)

    def release(self) -> None:
        self.x = None


@dataclass
class Target:
    """One model to measure, with what the report needs to know about it.

    ``group`` names the architecture + weights: rows of one group are compared with each other (latency ratio to
    the group's FP32 reference, top-1 agreement). ``make_runner`` defaults to a :class:`HostRunner`. Targets with
    ``evaluate=False`` are timed only.
    """

    label: str
    model: InferenceModel
    source: str = ""
    role: str = "model"  # "model" | "baseline"
    group: str | None = None
    macs_per_image: int | None = None
    #: values per image of the model's largest activation (:attr:`.macs.MacCount.largest_activation`), for the
    #: memory estimate that refuses a batch this machine cannot hold
    activation_values: int | None = None
    device: str = "cpu"
    backend: str | None = None
    precision: str | None = None
    make_runner: Callable[[], Runner] | None = None
    notes: list[str] = field(default_factory=list)
    evaluate: bool = True  # False: no accuracy for this target even when the run has data (e.g. random weights)

    def __post_init__(self) -> None:
        self.backend = self.backend or self.model.backend
        self.precision = self.precision or self.model.precision

    def runner(self) -> Runner:
        return self.make_runner() if self.make_runner is not None else HostRunner(self.model)


@dataclass
class BenchConfig:
    """How to measure. Defaults follow trtexec: 200 ms warm-up, >= 10 iterations and >= 3 s."""

    batches: list[int] = field(default_factory=lambda: [1])
    duration_s: float = 3.0
    warmup_ms: float = 200.0
    min_iterations: int = 10
    rounds: int = 3
    interleave: bool = True
    threads: int | None = None
    data: str | None = None
    data_limit: int | None = None
    eval_batch: int = 100
    seed: int = 0
    note: str | None = None

    def validate(self) -> None:
        if not self.batches:
            raise UserError("no batch sizes given")
        for b in self.batches:
            if not isinstance(b, int) or b < 1:
                raise UserError(f"batch sizes must be positive integers, got {b!r}")
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise UserError(f"--duration must be a positive number of seconds, got {self.duration_s}")
        if not (self.warmup_ms >= 0 and math.isfinite(self.warmup_ms)):
            raise UserError(f"--warmup must be >= 0 milliseconds, got {self.warmup_ms}")
        if self.min_iterations < 1:
            raise UserError(f"--min-iterations must be at least 1, got {self.min_iterations}")
        if self.rounds < 1:
            raise UserError(f"rounds must be at least 1, got {self.rounds}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")
        if self.data_limit is not None and self.data_limit < 1:
            raise UserError(f"--limit must be at least 1, got {self.data_limit}")
        if self.eval_batch < 1:
            raise UserError(f"the evaluation batch must be at least 1, got {self.eval_batch}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches": list(self.batches),
            "duration_s": self.duration_s,
            "warmup_ms": self.warmup_ms,
            "min_iterations": self.min_iterations,
            "rounds": self.rounds if self.interleave else 1,
            "interleave": self.interleave,
            "threads": self.threads,
            "data": self.data,
            "data_limit": self.data_limit,
            "percentile_definition": "sorted[n-1-floor((1-p/100)*n)] (trtexec); median averages the middle two",
        }


def parse_batches(text: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]`` (sorted, duplicates dropped), with a one-line error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    out: list[int] = []
    for p in parts:
        if not p.isdigit() or int(p) < 1:
            raise UserError(f"bad batch list '{text}': expected positive integers separated by commas, e.g. 1,8,32")
        out.append(int(p))
    return sorted(set(out))


class BenchmarkInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``report`` holds every batch size that finished (``report.interrupted`` is True)."""

    def __init__(self, report: BenchReport) -> None:
        super().__init__("benchmark interrupted")
        self.report = report


@dataclass
class BenchReport:
    """The JSON report: ``machine``, ``config``, ``results`` (one row per target and batch), ``accuracy``."""

    machine: dict[str, Any]
    config: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: a run too noisy to trust (busy machine, high coefficient of variation): shown by the CLI on stderr
    warnings: list[str] = field(default_factory=list)
    #: every measured iteration per target and batch (``--export-times``); not part of the JSON report
    times: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "started": self.started,
            "complete": not self.interrupted,
            "machine": self.machine,
            "config": self.config,
            "results": self.results,
            "accuracy": self.accuracy,
            "notes": self.notes,
            "warnings": self.warnings,
        }


class Progress(Protocol):
    """What :func:`run_benchmark` reports while it runs (the CLI draws it with rich)."""

    def begin(self, total_s: float) -> None: ...

    def update(self, description: str, advance_s: float) -> None: ...

    def end(self) -> None: ...
