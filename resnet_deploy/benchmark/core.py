"""Measuring latency and throughput the way trtexec does, for several models in one process.

Per batch size, every target is warmed up (``warmup_ms``, at least one iteration), then the targets are measured
in round-robin chunks: each round gives each target about ``duration / rounds`` seconds, until every target has at
least ``min_iterations`` iterations and ``duration`` seconds of measurement. Interleaving spreads the machine's
slow phases (other jobs, thermal or turbo changes) over all targets, so ratios between them hold on a noisy
machine. After switching targets one iteration is run and discarded (caches and thread pools belong to the
previous target). Latency is the host wall time of one synchronous inference; throughput is images divided by
the summed wall time of the target's chunks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError
from .accuracy import evaluate_targets
from .groups import add_ratios, group_rows
from .machine import available_memory_bytes, machine_info, peak_gops
from .spec import BenchConfig, BenchmarkInterrupted, BenchReport, Progress, Runner, Target
from .stats import LatencyStats, coefficient_of_variation

#: Host memory one image needs while a CPU model runs, in units of its largest activation (4 bytes a value): ONNX
#: Runtime measured 1.1x (ResNet-18, 224x224) to 3.6x (CIFAR ResNet-20, 28x28) of it, input included (peak RSS
#: growth per image at batch 1000-4000); 4x keeps a margin.
ACTIVATION_FACTOR = 4
#: The share of the available memory a benchmark may plan to use: the interpreter, ONNX Runtime's arenas and the
#: report need the rest.
MEMORY_SHARE = 0.8


def estimate_bytes(target: Target, batch: int) -> int:
    """Host memory ``target`` needs at ``batch``: its input, and on the CPU its activations (see
    :data:`ACTIVATION_FACTOR`). Targets that do not know their activations count their input only."""
    dims = [int(d) for d in target.model.sized_input_shape()[1:] if d is not None]
    per_image = math.prod(dims) * target.model.input_dtype.itemsize
    if target.device != "cuda" and target.activation_values:
        per_image += ACTIVATION_FACTOR * target.activation_values * 4
    return batch * per_image


def check_memory(targets: list[Target], batches: list[int], available: int | None) -> None:
    """Refuse a batch whose estimated memory (every target's at once: each keeps its input and, on ONNX Runtime,
    its arena while the others run) exceeds :data:`MEMORY_SHARE` of ``available`` bytes, instead of running until
    the kernel kills the process."""
    if available is None:
        return
    budget = MEMORY_SHARE * available
    for b in sorted(set(batches), reverse=True):
        need = sum(estimate_bytes(t, b) for t in targets)
        if need > budget:
            per_image = need / b
            fits = int(budget // per_image)
            raise UserError(
                f"batch {b} needs about {need / 1e9:.1f} GB of memory (estimated: inputs and activations of "
                f"{len(targets)} model(s)), more than the {budget / 1e9:.1f} GB this machine can spare; use a "
                f"smaller --batch (about {fits} at most)"
            )


def check_batches(targets: list[Target], batches: list[int], available: int | None = None) -> None:
    """Refuse, before measuring anything, batches a model cannot take (engine profile max, fixed batch axis) or
    this machine cannot hold (``available`` bytes, see :func:`check_memory`)."""
    for t in targets:
        fixed = t.model.input_shape[0] if t.model.input_shape else None
        for b in batches:
            if t.model.max_batch is not None and b > t.model.max_batch:
                raise UserError(f"batch {b} is above the maximum batch {t.model.max_batch} of {t.label}")
            low = getattr(t.model, "min_batch", None)  # a TensorRT profile's minimum
            if isinstance(low, int) and b < low:
                raise UserError(f"batch {b} is below the minimum batch {low} of {t.label}")
            if fixed is not None and b != fixed:
                raise UserError(f"{t.label} has a fixed batch of {fixed}; batch {b} cannot run on it")
        if any(d is None for d in t.model.sized_input_shape()[1:]):
            raise UserError(f"{t.label} has dynamic image dimensions {t.model.describe_shape()}; cannot make input")
    check_memory(targets, batches, available)


def _timed(
    runner: Runner, seconds: float, min_iters: int, starts: list[float] | None = None
) -> tuple[list[float], list[dict[str, float]], float]:
    """Iterate until both ``min_iters`` and ``seconds`` are reached: (latencies s, GPU timings, wall s). Each
    iteration's start (``time.perf_counter``) is appended to ``starts`` when given (``--export-times``)."""
    lat: list[float] = []
    gpu: list[dict[str, float]] = []
    clock = time.perf_counter
    start = clock()
    while True:
        t0 = clock()
        g = runner.step()
        t1 = clock()
        lat.append(t1 - t0)
        if starts is not None:
            starts.append(t0)
        if g:
            gpu.append(g)
        if len(lat) >= min_iters and t1 - start >= seconds:
            return lat, gpu, t1 - start


@dataclass
class _Case:
    target: Target
    runner: Runner
    lat: list[float] = field(default_factory=list)
    gpu: list[dict[str, float]] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # perf_counter at each measured iteration's start
    wall: float = 0.0
    chunks: int = 0
    warmup_iterations: int = 0

    def measured(self) -> float:
        return math.fsum(self.lat)

    def done(self, cfg: BenchConfig) -> bool:
        return len(self.lat) >= cfg.min_iterations and self.wall >= cfg.duration_s


def _row(case: _Case, batch: int, cfg: BenchConfig, machine: dict[str, Any]) -> dict[str, Any]:
    t = case.target
    lat_ms = [v * 1e3 for v in case.lat]
    images = len(case.lat) * batch
    throughput = images / case.wall if case.wall > 0 else 0.0
    row: dict[str, Any] = {
        "model": t.label,
        "backend": t.backend,
        "precision": t.precision,
        "batch": batch,
        "latency_ms": LatencyStats.of(lat_ms).to_dict(),
        "latency_cv_percent": round(coefficient_of_variation(lat_ms), 2),
        "throughput_ips": round(throughput, 3),
        "role": t.role,
        "group": t.group,
        "source": t.source,
        "device": case.runner.device,
        "iterations": len(case.lat),
        "wall_s": round(case.wall, 4),
        "chunks": case.chunks,
        "warmup_iterations": case.warmup_iterations,
        "macs_per_image": t.macs_per_image,
    }
    if case.gpu:
        row["gpu"] = {
            key: LatencyStats.of([g[key] for g in case.gpu]).to_dict()
            for key in ("compute_ms", "h2d_ms", "d2h_ms")
            if all(key in g for g in case.gpu)
        }
        if all("compute_ms" in g for g in case.gpu):
            row["gpu"]["compute_cv_percent"] = round(coefficient_of_variation([g["compute_ms"] for g in case.gpu]), 2)
        row["cuda_graphs"] = bool(case.runner.cuda_graphs)
    if t.macs_per_image:
        achieved = 2 * t.macs_per_image * throughput / 1e9
        peak, source = peak_gops(machine, case.runner.device, str(t.precision))
        row["achieved_gops"] = round(achieved, 3)
        row["peak_gops"] = peak
        row["peak_source"] = source
        row["fraction_of_peak"] = round(achieved / peak, 4) if peak else None
    notes = [*t.notes, *case.runner.notes]
    if notes:
        row["notes"] = notes
    return row


def _input(shape: tuple[int | None, ...], batch: int, seed: int) -> np.ndarray:
    # Values do not change the work a ResNet does; [0, 1) suits both normalising and normalised models.
    dims = (batch, *(int(d) for d in shape[1:] if d is not None))
    return np.random.default_rng(seed).random(dims, dtype=np.float32)


def _times(case: _Case, batch: int) -> dict[str, Any]:
    """Every measured iteration of ``case`` (``--export-times``, like trtexec's ``--exportTimes``): start and host
    latency in ms, start relative to the first measured iteration, plus the GPU timings where every step has them."""
    t = case.target
    origin = case.starts[0] if case.starts else 0.0
    times = [{"startMs": round((s0 - origin) * 1e3, 4), "latencyMs": round(v * 1e3, 4)}
             for s0, v in zip(case.starts, case.lat, strict=True)]  # fmt: skip
    if case.gpu and len(case.gpu) == len(times):
        for entry, g in zip(times, case.gpu, strict=True):
            entry.update({_TIMES_KEYS[k]: round(v, 4) for k, v in g.items() if k in _TIMES_KEYS})
    return {"model": t.label, "backend": t.backend, "precision": t.precision, "batch": batch, "times": times}


#: GPU timing keys -> trtexec's names in its exported times
_TIMES_KEYS = {"compute_ms": "computeMs", "h2d_ms": "h2dMs", "d2h_ms": "d2hMs"}


def _measure_batch(
    targets: list[Target], batch: int, cfg: BenchConfig, machine: dict[str, Any], progress: Progress | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cases: list[_Case] = []
    try:
        for t in targets:
            runner = t.runner()
            runner.prepare(_input(t.model.sized_input_shape(), batch, cfg.seed))
            case = _Case(t, runner)
            cases.append(case)
            if progress:
                progress.update(f"warm-up {t.label} batch {batch}", 0.0)
            lat, _, wall = _timed(runner, cfg.warmup_ms / 1e3, 1)
            case.warmup_iterations = len(lat)
        rounds = cfg.rounds if cfg.interleave and len(cases) > 1 else 1
        chunk_s = cfg.duration_s / rounds
        order = cases if cfg.interleave else []
        if not cfg.interleave:
            for case in cases:  # back to back: each target measured in one go
                lat, gpu, wall = _timed(case.runner, cfg.duration_s, cfg.min_iterations, case.starts)
                case.lat, case.gpu, case.wall, case.chunks = lat, gpu, wall, 1
                if progress:
                    progress.update(f"{case.target.label} batch {batch}", wall)
        while order and not all(c.done(cfg) for c in order):
            for case in order:
                if case.done(cfg):
                    continue
                if case.chunks and len(order) > 1:
                    case.runner.step()  # re-warm after another target ran; not measured
                if case.wall >= cfg.duration_s:
                    seconds, need = 0.0, cfg.min_iterations - len(case.lat)
                else:
                    seconds, need = min(chunk_s, cfg.duration_s - case.wall), 1
                lat, gpu, wall = _timed(case.runner, seconds, need, case.starts)
                case.lat += lat
                case.gpu += gpu
                case.wall += wall
                case.chunks += 1
                if progress:
                    progress.update(f"{case.target.label} batch {batch}", wall)
        return [_row(c, batch, cfg, machine) for c in cases], [_times(c, batch) for c in cases]
    finally:
        for c in cases:
            c.runner.release()


def run_benchmark(
    targets: list[Target],
    config: BenchConfig,
    progress: Progress | None = None,
    on_update: Callable[[BenchReport], None] | None = None,
    gpu: str | None = None,
) -> BenchReport:
    """Measure every target at every batch size (interleaved, see the module docstring), then accuracy if
    ``config.data`` is set. ``on_update`` gets the report after each finished batch size (e.g. to save it).

    Ctrl-C raises :class:`BenchmarkInterrupted` carrying the report of what finished.
    """
    config.validate()
    if not targets:
        raise UserError("nothing to benchmark")
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise UserError(f"two targets share a label: {labels}")
    check_batches(targets, config.batches, available_memory_bytes())
    machine = machine_info(gpu_name=gpu, threads=config.threads, note=config.note)
    report = BenchReport(machine=machine, config=config.to_dict())
    report.notes.append(
        "measurement: per batch size, all models warmed up, then measured in interleaved round-robin chunks "
        f"({config.rounds if config.interleave else 1} per model) in one process"
        if config.interleave
        else "measurement: per batch size, models measured back to back in one process"
    )
    restore_threads = _set_torch_threads(config.threads)
    try:
        if progress:
            progress.begin(len(config.batches) * len(targets) * config.duration_s)
        for batch in config.batches:
            rows, times = _measure_batch(targets, batch, config, machine, progress)
            report.results.extend(rows)
            report.times.extend(times)
            add_ratios(report.results)
            group_rows(report.results, [t.label for t in targets])
            if on_update:
                on_update(report)
        if config.data:
            if progress:
                progress.update(f"accuracy on {config.data}", 0.0)
            report.accuracy = evaluate_targets(targets, config)
            by_label = {a["model"]: a for a in report.accuracy}
            for row in report.results:
                if row["model"] in by_label:
                    row["accuracy"] = by_label[row["model"]]
            if on_update:
                on_update(report)
    except KeyboardInterrupt:
        report.interrupted = True
        report.notes.append("interrupted by the user: only the batch sizes listed finished")
        raise BenchmarkInterrupted(report) from None
    finally:
        restore_threads()
        if progress:
            progress.end()
        try:
            import os

            machine["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
        except OSError:
            pass
        report.warnings = noise_warnings(report.results, machine)
    return report


#: Host latency CV (percent) above which a row is flagged as too noisy to trust. trtexec flags GPU compute time
#: above 1 % (``kUNSTABLE_PERF_REPORTING_THRESHOLD`` in its ``sampleReporting.cpp``); a host-timed CPU inference
#: on a shared machine varies more than a GPU kernel even on a quiet machine, so its bar is 10 %.
HOST_CV_WARN_PERCENT = 10.0
GPU_CV_WARN_PERCENT = 1.0
#: The 1-minute load average, per core, at the start above which other work is taking the machine's cores.
LOAD_WARN_PER_CORE = 0.5


def noise_warnings(rows: list[dict[str, Any]], machine: dict[str, Any]) -> list[str]:
    """Warnings for a run too noisy to trust: a busy machine at the start, rows whose latency varies too much."""
    out = []
    load, cores = machine.get("loadavg_at_start"), machine.get("cores")
    if (
        isinstance(load, list)
        and load
        and isinstance(cores, int)
        and cores > 0
        and load[0] > LOAD_WARN_PER_CORE * cores
    ):
        out.append(
            f"the machine was busy when the run started (load average {load[0]:.2f} on {cores} cores): other work "
            "shared the cores, so latencies and ratios may be off; rerun on a quiet machine"
        )
    noisy = [r for r in rows if isinstance(r.get("latency_cv_percent"), int | float)
             and r["latency_cv_percent"] > HOST_CV_WARN_PERCENT]  # fmt: skip
    if noisy:
        worst = max(noisy, key=lambda r: r["latency_cv_percent"])
        which = (
            f"{worst['model']} batch {worst['batch']}"
            if len(noisy) == 1
            else f"{len(noisy)} of {len(rows)} rows, worst {worst['model']} batch {worst['batch']}"
        )
        out.append(
            f"latency coefficient of variation over {HOST_CV_WARN_PERCENT:g} % ({which}: "
            f"{worst['latency_cv_percent']:.1f} %): too noisy to trust; use a longer --duration or a quieter machine"
        )
    for r in rows:
        gcv = (r.get("gpu") or {}).get("compute_cv_percent")
        if isinstance(gcv, int | float) and gcv > GPU_CV_WARN_PERCENT:
            out.append(
                f"{r['model']} batch {r['batch']}: GPU compute time is unstable (coefficient of variation "
                f"{gcv:.1f} %, over trtexec's {GPU_CV_WARN_PERCENT:g} %); locking the GPU clocks may help"
            )
    return out


def _set_torch_threads(threads: int | None) -> Callable[[], None]:
    if not threads:
        return lambda: None
    try:
        import torch
    except ImportError:
        return lambda: None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return lambda: torch.set_num_threads(before)
