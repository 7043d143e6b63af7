"""Independent check of `resnet-deploy bench`: time the same ONNX graphs with a bare ONNX Runtime loop.

For every ONNX Runtime row of a bench report (default benchmarks/results/cpu/bench.json) this script times the
same file, at the same batch size and thread count, with nothing but ``onnxruntime.InferenceSession.run`` in a
``time.perf_counter`` loop (same warm-up, iteration and duration rules), and compares medians. No resnet-deploy
code is in that timing path: the function ``bare_median`` uses onnxruntime, numpy and time only.

Two comparisons are recorded:
- ``vs_report``: the bare median against the median stored in the report (measured earlier, possibly under a
  different load on a shared machine);
- ``same_time`` (unless --no-same-time): bare loop and the tool's own API (``resnet_deploy.benchmark``) timed
  alternately in this process, so both see the same load; this is the fair test of the tool's timing code.

Pass: |tool / bare - 1| <= 30 % (the issue's tolerance).

    python benchmarks/check_timing.py [--report benchmarks/results/cpu/bench.json] [--duration 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.30


def bare_session(path: str, threads: int | None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def bare_samples(
    sess: ort.InferenceSession, batch: int, duration_s: float, min_iters: int, warmup_s: float = 0.2
) -> list[float]:
    """Latencies in ms of ``sess.run`` on one fixed random batch (after ``warmup_s`` of unmeasured runs)."""
    inp = sess.get_inputs()[0]
    shape = [batch, *[int(d) for d in inp.shape[1:]]]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    x = np.random.default_rng(0).random(shape, dtype=np.float32).astype(dtype)
    feed = {inp.name: x}
    t_end = time.perf_counter() + warmup_s
    sess.run(None, feed)
    while time.perf_counter() < t_end:
        sess.run(None, feed)
    out: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        sess.run(None, feed)
        t1 = time.perf_counter()
        out.append((t1 - t0) * 1e3)
        if len(out) >= min_iters and t1 - start >= duration_s:
            return out


def tool_median(path: str, batch: int, threads: int | None, duration_s: float, min_iters: int) -> float:
    """The tool's own median for the same file, through its public API."""
    from resnet_deploy.benchmark import BenchConfig, load_target, run_benchmark

    target = load_target(path, threads=threads)
    cfg = BenchConfig(batches=[batch], duration_s=duration_s, min_iterations=min_iters, threads=threads)
    rep = run_benchmark([target], cfg)
    return float(rep.results[0]["latency_ms"]["median"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "results" / "cpu" / "bench.json")
    ap.add_argument("--out", type=Path, default=None, help="default: check_timing.json beside the report")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--min-iterations", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2, help="same-time comparison: alternations of bare and tool")
    ap.add_argument("--no-same-time", action="store_true")
    ap.add_argument("--only", default=None, help="substring a row's model name must contain")
    args = ap.parse_args(argv)

    report = json.loads(args.report.read_text())
    threads = report.get("config", {}).get("threads")
    rows = [
        r
        for r in report["results"]
        if r["backend"] == "onnxruntime"
        and str(r.get("source", "")).endswith(".onnx")
        and Path(r["source"]).exists()
        and (args.only is None or args.only in r["model"])
    ]
    if not rows:
        print("no ONNX Runtime rows with an existing .onnx source in the report: nothing to check", file=sys.stderr)
        return 1
    checks: list[dict[str, Any]] = []
    for r in rows:
        sess = bare_session(r["source"], threads)
        bare = statistics.median(bare_samples(sess, r["batch"], args.duration, args.min_iterations))
        entry: dict[str, Any] = {
            "model": r["model"],
            "source": r["source"],
            "batch": r["batch"],
            "threads": threads,
            "bare_median_ms": round(bare, 3),
            "report_median_ms": r["latency_ms"]["median"],
            "vs_report_ratio": round(r["latency_ms"]["median"] / bare, 4),
        }
        entry["vs_report_pass"] = abs(entry["vs_report_ratio"] - 1) <= TOLERANCE
        if not args.no_same_time:
            bares, tools = [], []
            for _ in range(args.rounds):
                bares.extend(bare_samples(sess, r["batch"], args.duration / 2, args.min_iterations // 2 or 1))
                tools.append(
                    tool_median(r["source"], r["batch"], threads, args.duration / 2, args.min_iterations // 2 or 1)
                )
            same_bare = statistics.median(bares)
            same_tool = statistics.median(tools)
            entry["same_time"] = {
                "bare_median_ms": round(same_bare, 3),
                "tool_median_ms": round(same_tool, 3),
                "ratio": round(same_tool / same_bare, 4),
                "pass": abs(same_tool / same_bare - 1) <= TOLERANCE,
                "rounds": args.rounds,
            }
        del sess
        checks.append(entry)
        st = entry.get("same_time", {})
        print(
            f"{r['model']:<60} b{r['batch']:<3} bare {bare:9.2f} ms | report {r['latency_ms']['median']:9.2f} ms "
            f"({entry['vs_report_ratio']:.2f}x) | same-time tool/bare {st.get('ratio', float('nan')):.2f}x",
            flush=True,
        )
    machine = report["machine"]
    result = {
        "format": "resnet-deploy-timing-check/1",
        "report": str(args.report),
        "tolerance": TOLERANCE,
        "machine": {k: machine.get(k) for k in ("cpu", "cores", "isa", "os", "onnxruntime", "hypervisor")},
        "loadavg": [round(v, 2) for v in __import__("os").getloadavg()],
        "method": "bare onnxruntime.InferenceSession.run + time.perf_counter loop, same file/batch/threads; "
        f"warm-up 200 ms, >= {args.min_iterations} iterations and >= {args.duration} s; median compared",
        "checks": checks,
        "all_pass_vs_report": all(c["vs_report_pass"] for c in checks),
        "all_pass_same_time": all(c.get("same_time", {}).get("pass", True) for c in checks),
    }
    out = args.out or args.report.with_name("check_timing.json")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    md = [
        "# Independent timing check",
        "",
        f"Report: {args.report.name}; machine: {machine.get('cpu')} ({machine.get('cores')} cores); "
        f"load average now {result['loadavg']}. Method: {result['method']}. Pass: within {TOLERANCE:.0%}.",
        "",
        "| model | batch | bare ORT median ms | report median ms | report/bare | same-time tool ms "
        "| same-time bare ms | tool/bare |",
        "|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for c in checks:
        st = c.get("same_time") or {}
        md.append(
            f"| {c['model']} | {c['batch']} | {c['bare_median_ms']:.2f} | {c['report_median_ms']:.2f} | "
            f"{c['vs_report_ratio']:.2f} | {st.get('tool_median_ms', nan):.2f} | {st.get('bare_median_ms', nan):.2f} "
            f"| {st.get('ratio', nan):.2f} |"
        )
    md += [
        "",
        f"All within {TOLERANCE:.0%} of the report: {result['all_pass_vs_report']}; "
        f"all within {TOLERANCE:.0%} at the same time: {result['all_pass_same_time']}.",
    ]
    md_out = out.with_suffix(".md")
    tmp = md_out.with_name(f".{md_out.name}.tmp")
    tmp.write_text("\n".join(md) + "\n")
    tmp.replace(md_out)
    print(
        f"written {out}: vs report {'PASS' if result['all_pass_vs_report'] else 'FAIL'}, "
        f"same time {'PASS' if result['all_pass_same_time'] else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
