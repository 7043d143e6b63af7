"""Writing a benchmark report: JSON, a Markdown table and PNG plots, each naming the machine."""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_path, atomic_write_text, check_writable, read_json
from ..errors import UserError
from .spec import BenchReport

REQUIRED_ROW_KEYS = ("model", "backend", "precision", "batch", "latency_ms", "throughput_ips")
LATENCY_KEYS = ("min", "mean", "median", "p90", "p95", "p99", "max")


def validate_report(data: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` when ``data`` does not follow the report schema (used by tests and on load)."""
    if not isinstance(data.get("machine"), dict):
        raise ValueError("report has no 'machine' object")
    results = data.get("results")
    if not isinstance(results, list):
        raise ValueError("report has no 'results' list")
    for i, row in enumerate(results):
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"results[{i}] lacks {missing}")
        lat = row["latency_ms"]
        if not isinstance(lat, dict) or any(not isinstance(lat.get(k), (int, float)) for k in LATENCY_KEYS):
            raise ValueError(f"results[{i}].latency_ms must hold numbers {LATENCY_KEYS}")
        if not lat["min"] <= lat["median"] <= lat["max"] or not lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]:
            raise ValueError(f"results[{i}].latency_ms is not ordered")
        if not isinstance(row["batch"], int) or row["batch"] < 1:
            raise ValueError(f"results[{i}].batch must be a positive integer")
        if not isinstance(row["throughput_ips"], (int, float)) or row["throughput_ips"] < 0:
            raise ValueError(f"results[{i}].throughput_ips must be a non-negative number")


def machine_line(machine: Mapping[str, Any]) -> str:
    """One line naming the machine: CPU, cores, ISA, RAM, GPU, software versions."""
    isa = machine.get("isa") or {}
    flags = ", ".join(k for k in ("avx512_vnni", "avx512f", "avx2", "amx_int8") if isa.get(k)) or "no AVX2"
    parts = [
        f"{machine.get('cpu')} ({machine.get('cores')} cores, {flags}"
        + (", VM" if machine.get("hypervisor") else "")
        + f", {machine.get('ram_gib')} GiB RAM)"
    ]
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    parts.append(f"{machine.get('os')}")
    parts.append(
        f"Python {machine.get('python')}, ONNX Runtime {machine.get('onnxruntime')}, torch {machine.get('torch')}"
    )
    return "; ".join(parts)


def write_json(report: BenchReport | Mapping[str, Any], path: str | Path) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    data = report.to_dict() if isinstance(report, BenchReport) else dict(report)
    validate_report(data)
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


TIMES_FORMAT = "resnet-deploy-times/1"


def write_times(report: BenchReport, path: str | Path) -> Path:
    """Every measured iteration, per model and batch, as JSON (trtexec's ``--exportTimes`` per-inference records:
    ``startMs`` from the first measured iteration, ``latencyMs`` host wall time, GPU ``computeMs``/``h2dMs``/
    ``d2hMs`` where measured), written atomically."""
    data = {"format": TIMES_FORMAT, "unit": "ms", "started": report.started, "runs": report.times}
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def load_json(path: str | Path) -> dict[str, Any]:
    """Read a report written by :func:`write_json` and check its schema."""
    data = read_json(path, "benchmark report", max_depth=16)
    try:
        validate_report(data)
    except ValueError as exc:
        raise UserError(f"{path} is not a benchmark report: {exc}") from None
    return dict(data)


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def speedup_cell(row: Mapping[str, Any]) -> str:
    """``2.00x`` = twice as fast as the group's FP32 reference at the same batch (its median latency over this
    row's); ``1.00x (ref)`` for the reference itself, ``-`` without one."""
    vs = row.get("vs_reference")
    if not vs:
        return "-"
    if vs["reference"] == row["model"]:
        return "1.00x (ref)"
    speedup = vs.get("speedup")
    if speedup is None and vs.get("median_latency_ratio"):  # reports written before the speed-up was stored
        speedup = 1 / vs["median_latency_ratio"]
    return "-" if speedup is None else f"{speedup:.2f}x"


def result_table(report: BenchReport | Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the latency/throughput table, one row per model and batch, grouped by model: what the
    Markdown page and the terminal table both show."""
    data = report.to_dict() if isinstance(report, BenchReport) else dict(report)
    has_gpu = any("gpu" in r for r in data["results"])
    headers = ["model", "backend", "precision", "batch", "median ms", "mean ms", "p90 ms", "p99 ms", "CV %",
               "images/s", "GOPS (peak)", "speed-up vs FP32"]  # fmt: skip
    if has_gpu:
        headers += ["GPU compute ms", "H2D ms", "D2H ms"]
    rows = []
    for r in data["results"]:
        lat = r["latency_ms"]
        gops = r.get("achieved_gops")
        peak = r.get("peak_gops")
        rate = "-" if gops is None else f"{gops:.1f}" + (f" ({100 * gops / peak:.0f} % of {peak:g})" if peak else "")
        cells = [
            r["model"],
            str(r["backend"]),
            str(r["precision"]),
            str(r["batch"]),
            _fmt(lat["median"], 3),
            _fmt(lat["mean"], 3),
            _fmt(lat["p90"], 3),
            _fmt(lat["p99"], 3),
            _fmt(r.get("latency_cv_percent"), 1),
            _fmt(r["throughput_ips"], 1),
            rate,
            speedup_cell(r),
        ]
        if has_gpu:
            g = r.get("gpu") or {}
            cells += [_fmt((g.get(k) or {}).get("median"), 3) for k in ("compute_ms", "h2d_ms", "d2h_ms")]
        rows.append(cells)
    return headers, rows


def to_markdown(report: BenchReport | Mapping[str, Any], title: str = "Benchmark") -> str:
    """A Markdown page: machine, method, the latency/throughput table, the accuracy table and notes."""
    data = report.to_dict() if isinstance(report, BenchReport) else dict(report)
    m, cfg = data["machine"], data.get("config", {})
    lines = [f"# {title}", "", f"Machine: {machine_line(m)}", ""]
    if m.get("note"):
        lines += [f"Note: {m['note']}", ""]
    lines += [
        f"Method: warm-up {cfg.get('warmup_ms')} ms, then at least {cfg.get('min_iterations')} iterations and "
        f"{cfg.get('duration_s')} s per model and batch; "
        + ("interleaved round-robin chunks in one process" if cfg.get("interleave") else "back to back")
        + f"; percentiles {cfg.get('percentile_definition', 'trtexec')}. Load average at start "
        f"{m.get('loadavg_at_start')}, at end {m.get('loadavg_at_end')}.",
        "",
    ]
    if not data.get("complete", True):
        lines += ["**Interrupted: partial results.**", ""]
    headers, rows = result_table(data)
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    acc = data.get("accuracy") or []
    if acc:
        lines += [
            "",
            f"Accuracy on {acc[0]['dataset']} ({acc[0]['count']} images):",
            "",
            "| model | backend | precision | top-1 % | top-5 % | top-1 agreement with FP32 % |",
            "|---|---|---|---|---|---|",
        ]
        for a in acc:
            agree = "(reference)" if a.get("is_reference") else _fmt(a.get("agreement_top1"))
            cells = [a["model"], str(a["backend"]), str(a["precision"]), _fmt(a["top1"]), _fmt(a["top5"]), agree]
            lines.append("| " + " | ".join(cells) + " |")
    peaks = sorted({f"{r['peak_source']}" for r in data["results"] if r.get("peak_source")})
    notes = list(data.get("notes") or [])
    if peaks:
        notes.append("peak rates: " + " | ".join(peaks))
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    if data.get("warnings"):
        lines += ["", *[f"- **Warning:** {w}" for w in data["warnings"]]]
    return "\n".join(lines) + "\n"


def write_markdown(report: BenchReport | Mapping[str, Any], path: str | Path, title: str = "Benchmark") -> Path:
    return atomic_write_text(path, to_markdown(report, title))


#: One colour per role, the same in every panel and every file: a reader learns it once (matplotlib's tab10).
ROLE_COLOURS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "int8": "#d62728", "baseline": "#7f7f7f", "other": "#9467bd"}


def role(row: Mapping[str, Any], roles: Mapping[str, str] | None = None) -> str:
    """``baseline`` for a baseline target (PyTorch eager, ORT FP32 added by --baselines), else its precision."""
    if (roles or {}).get(row["model"], row.get("role")) == "baseline":
        return "baseline"
    precision = str(row.get("precision"))
    return precision if precision in ROLE_COLOURS else "other"


ACCURACY_SPAN = 10.0  # points on the accuracy axis, at least


def bar_label(model: str, group: str) -> str:
    """A row's name without what its panel's title already says: the model name and the ``[Nt]`` tag."""
    base = group.split("@")[0].split(" ")[0]
    return re.sub(r"\s*\[[^\]]*\]$", "", model.removeprefix(f"{base} ")) or model


def accuracy_limits(values: Sequence[float]) -> tuple[float, float]:
    """Top-1 axis limits (percent): a window of at least :data:`ACCURACY_SPAN` points, so that a 0.1-point
    difference looks like one, within 0..100."""
    top = min(100.0, max(values) + 1.0)
    return max(0.0, min(min(values) - 1.0, top - ACCURACY_SPAN)), top


def plot(
    report: BenchReport | Mapping[str, Any],
    path: str | Path,
    kinds: tuple[str, ...] = ("latency", "throughput", "accuracy"),
) -> Path:
    """PNG with one row per model group: median latency (p90..p99 whiskers) and throughput against batch size,
    plus top-1 by precision when accuracy was measured. Axes are log-scaled; the title names the machine."""
    check_writable(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install matplotlib") from None
    data = report.to_dict() if isinstance(report, BenchReport) else dict(report)
    rows = data["results"]
    if not rows:
        raise UserError("no results to plot")
    groups: list[str] = []
    for r in rows:
        g = r.get("group") or r["model"]
        if g not in groups:
            groups.append(g)
    acc = [a for a in (data.get("accuracy") or []) if "accuracy" in kinds]
    cols: list[str] = [k for k in ("latency", "throughput") if k in kinds]
    if acc:
        cols.append("accuracy")
    if not cols:
        raise UserError(f"nothing to plot for kinds {kinds}")
    if cols == ["accuracy"]:  # accuracy alone: only the groups that have it
        groups = [g for g in groups if any((a.get("group") or a["model"]) == g for a in acc)]
    # One kind alone: groups side by side, two per row; several kinds: one row per group, one column per kind.
    single = len(cols) == 1
    nrows = math.ceil(len(groups) / 2) if single else len(groups)
    ncols = min(2, len(groups)) if single else len(cols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 3.8 * nrows + 0.6), squeeze=False)
    for k in range(len(groups), nrows * ncols if single else 0):
        axes[k // ncols][k % ncols].axis("off")
    markers = "osD^v<>p*h"
    roles = {r["model"]: str(r.get("role")) for r in rows}
    for gi, g in enumerate(groups):
        grows = [r for r in rows if (r.get("group") or r["model"]) == g]
        models = list(dict.fromkeys(r["model"] for r in grows))
        for ci, kind in enumerate(cols):
            ax = axes[gi // ncols][gi % ncols] if single else axes[gi][ci]
            if kind in ("latency", "throughput"):
                for mi, name in enumerate(models):
                    pts = sorted((r for r in grows if r["model"] == name), key=lambda r: r["batch"])
                    xs = [r["batch"] for r in pts]
                    short = name.removeprefix(f"{g} ") if name.startswith(f"{g} ") else name
                    if kind == "latency":
                        ys = [r["latency_ms"]["median"] for r in pts]
                        lo = [y - r["latency_ms"]["min"] for y, r in zip(ys, pts, strict=True)]
                        hi = [r["latency_ms"]["p99"] - y for y, r in zip(ys, pts, strict=True)]
                        ax.errorbar(xs, ys, yerr=[lo, hi], marker=markers[mi % len(markers)], capsize=3, label=short,
                                    color=ROLE_COLOURS[role(pts[0])])  # fmt: skip
                        ax.set_ylabel("latency ms (median, min..p99)")
                    else:
                        ys = [r["throughput_ips"] for r in pts]
                        ax.plot(
                            xs, ys, marker=markers[mi % len(markers)], label=short, color=ROLE_COLOURS[role(pts[0])]
                        )
                        ax.set_ylabel("images/s")
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
                batches = sorted({r["batch"] for r in grows})
                ax.set_xticks(batches, [str(b) for b in batches])
                ax.set_xlabel("batch size")
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=7)
                ax.set_title(f"{g}: {kind} vs batch", fontsize=9)
            else:
                gacc = [a for a in acc if (a.get("group") or a["model"]) == g]
                if not gacc:
                    ax.axis("off")
                    continue
                # the row's own name, wrapped: several int8 bars share precision and backend (ours, peers)
                names = [textwrap.fill(bar_label(a["model"], g), 12, break_long_words=False) for a in gacc]
                vals = [a["top1"] for a in gacc]
                bars = ax.bar(range(len(vals)), vals, color=[ROLE_COLOURS[role(a, roles)] for a in gacc])
                for b, v in zip(bars, vals, strict=True):
                    ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
                ax.set_xticks(range(len(vals)), names, fontsize=6.5)
                ax.set_ylim(*accuracy_limits(vals))
                ax.set_ylabel(f"top-1 % on {gacc[0]['dataset']}")
                ax.set_title(f"{g}: accuracy vs precision", fontsize=9)
                ax.grid(True, axis="y", alpha=0.3)
    width = int(fig.get_figwidth() * 15)  # characters that fit at fontsize 8
    title = textwrap.fill(machine_line(data["machine"]), width)
    fig.suptitle(title, fontsize=8)
    top = 1 - (0.12 * (title.count("\n") + 1)) / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
