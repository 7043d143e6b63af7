"""Issue 17's INT8 bar, measured so that noise cannot decide it: ours vs the peers in repeated, paired runs.

The bar: our fastest CPU INT8 for ResNet-50 and ResNet-18 at batch 1 and 8 is at least as fast as the fastest peer
INT8 in the same run. One interleaved run per cell (run_cpu_benchmarks.py) cannot settle that on a shared 2-core VM:
the graphs run the same kernels and a single run's medians differ by a few percent either way. So per cell (model,
batch, threads) this script

- measures, ``--repeats`` times, one short interleaved run (each repeat rotating the order) of: ours INT8 on ONNX
  Runtime (``build --precision int8``), ours INT8 on OpenVINO (``build --backend openvino``: the openvino Q/DQ
  placement, from the same calibration cache), a second, independently compiled copy of ours INT8 on OpenVINO (the A/A
  control: the same file twice, so its ratio shows what the run's noise alone does), ORT ``quantize_static`` on
  ONNX Runtime and NNCF on OpenVINO;
- reports per repeat the ratio fastest ours / fastest peer, and over the repeats its median, range and how often
  ours was ahead, beside the A/A ratio's range;
- records what each runtime actually executes: OpenVINO's compiled runtime graph (layer type, kernel, precision
  per node) and ONNX Runtime's optimized graph (op counts), ours vs the peer on the same runtime.

Verdict per cell: MET when the median paired ratio is <= 1.00; otherwise TIE when it is inside the A/A control's
spread (the difference is no larger than the same file measured against itself) and NOT MET beyond it.

The graphs are those run_cpu_benchmarks.py builds (``--work``; built there first if missing)::

    python benchmarks/run_cpu_benchmarks.py --build-only --reuse --only resnet18,resnet50
    python benchmarks/int8_peer_check.py                   # writes benchmarks/results/cpu/int8_peer_check.*
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from resnet_deploy._io import atomic_write_text
from resnet_deploy.backends.cpus import cpu_budget
from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.openvino import OpenVinoModel
from resnet_deploy.benchmark import BenchConfig, Target, run_benchmark
from resnet_deploy.benchmark.machine import machine_info

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ("resnet18", "resnet50")

#: label -> (runtime, file key in the work folder, ours?)
CANDIDATES = {
    "ours int8 onnxruntime": ("onnxruntime", "int8", True),
    "ours int8 openvino": ("openvino", "int8_openvino", True),
    "ours int8 openvino (A/A copy)": ("openvino", "int8_openvino", None),  # the control: neither ours nor peer
    "ORT quantize_static on onnxruntime": ("onnxruntime", "ortq_u8", False),
    "NNCF on openvino": ("openvino", "nncf", False),
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def graph_files(work: Path, name: str) -> dict[str, Path]:
    """Ours for ONNX Runtime (``int8``) and for OpenVINO (``int8_openvino``), the two peers."""
    return {key: work / f"{name}_{key}.onnx" for key in ("int8", "int8_openvino", "ortq_u8", "nncf")}


def build_openvino_int8(work: Path, name: str) -> Path:
    """``build --backend openvino --precision int8`` of the run's FP32 graph from the calibration cache the ONNX
    Runtime build wrote (one calibration for both; run_cpu_benchmarks.py's synthetic images)."""
    from resnet_deploy.build import BuildOptions, build

    out = work / f"{name}_int8_openvino.onnx"
    opts = BuildOptions(output=out, onnx=work / f"{name}_fp32.onnx", precision="int8", backend="openvino")
    opts.int8.cache_path = work / f"{name}_calib.json"
    if not opts.int8.cache_path.exists():
        opts.calib_data = "synthetic"
    say(f"build {name} int8 for OpenVINO")
    build(opts)
    return out


def openvino_program(path: Path, threads: int) -> Counter[str]:
    """What OpenVINO's CPU plugin runs for ``path``: one count per (layer type, kernel, runtime precision -> output
    precision)."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    )
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer != "Const":
            kernel, prec = info["primitiveType"].astype(str), info["runtimePrecision"].astype(str)
            counts[f"{layer} {kernel} {prec}->{info['outputPrecisions'].astype(str)}"] += 1
    return counts


def onnxruntime_program(path: Path, threads: int) -> Counter[str]:
    """The op counts of ONNX Runtime's optimized graph for ``path`` (all optimizations, CPU)."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as d:
        opts.optimized_model_filepath = str(Path(d) / "optimized.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        optimized = onnx.load(opts.optimized_model_filepath, load_external_data=False)
    return Counter(n.op_type for n in optimized.graph.node)


def programs(files: dict[str, Path]) -> dict[str, Any]:
    """Ours vs the peer on each runtime: the executed programs and whether they are the same."""
    out: dict[str, Any] = {}
    for runtime, ours, peer, fn in (("openvino", "int8_openvino", "nncf", openvino_program),
                                    ("onnxruntime", "int8", "ortq_u8", onnxruntime_program)):  # fmt: skip
        ours_p, peer_p = fn(files[ours], 1), fn(files[peer], 1)
        diff = {k: [ours_p.get(k, 0), peer_p.get(k, 0)] for k in sorted(set(ours_p) | set(peer_p))
                if ours_p.get(k, 0) != peer_p.get(k, 0)}  # fmt: skip
        out[runtime] = {"ours": dict(ours_p.most_common()), "peer": dict(peer_p.most_common()), "identical":
                        not diff, "differences (ours, peer)": diff}  # fmt: skip
    return out


def make_targets(files: dict[str, Path], threads: int) -> list[Target]:
    out = []
    for label, (runtime, key, _) in CANDIDATES.items():
        cls = OnnxRuntimeModel if runtime == "onnxruntime" else OpenVinoModel
        out.append(Target(label=label, model=cls(files[key], threads=threads), source=str(files[key]), evaluate=False))
    return out


def ratio_stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def verdict(ratio: dict[str, float], aa: dict[str, float]) -> str:
    if ratio["median"] <= 1.0:
        return "MET"
    spread = max(abs(aa["max"] - 1.0), abs(1.0 - aa["min"]))
    return "TIE" if ratio["median"] - 1.0 <= spread else "NOT MET"


def measure_cell(files: dict[str, Path], batch: int, threads: int, cfg: BenchConfig, repeats: int) -> dict[str, Any]:
    """``repeats`` interleaved runs of every candidate at one batch and thread count; paired ratios per run."""
    targets = make_targets(files, threads)
    runs: list[dict[str, float]] = []
    try:
        for i in range(repeats):
            # each repeat starts the round-robin at the next target, so no graph always runs after the same one
            k = i % len(targets)
            order = targets[k:] + targets[:k]
            report = run_benchmark(order, dataclasses.replace(cfg, batches=[batch], threads=threads))
            med = {r["model"]: float(r["latency_ms"]["median"]) for r in report.results}
            runs.append(med)
            say(f"  repeat {i + 1}/{repeats}: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    finally:
        for t in targets:
            t.model.close()
    ours = [min(m[k] for k, (_, _, o) in CANDIDATES.items() if o is True) for m in runs]
    peer = [min(m[k] for k, (_, _, o) in CANDIDATES.items() if o is False) for m in runs]
    ratios = [a / b for a, b in zip(ours, peer, strict=True)]
    aa = [m["ours int8 openvino"] / m["ours int8 openvino (A/A copy)"] for m in runs]
    ratio, aa_stats = ratio_stats(ratios), ratio_stats(aa)
    return {
        "batch": batch,
        "threads": threads,
        "medians_ms_per_repeat": runs,
        "fastest_ours_ms": ours,
        "fastest_peer_ms": peer,
        "ratio_ours_to_peer": ratio,
        "ours_ahead_in": sum(r <= 1.0 for r in ratios),
        "repeats": repeats,
        "aa_ratio": aa_stats,
        "median_ms": {k: statistics.median(m[k] for m in runs) for k in CANDIDATES},
        "verdict": verdict(ratio, aa_stats),
    }


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# INT8 bar of issue 17: our fastest CPU INT8 vs the fastest peer INT8, paired repeated runs",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; {m.get('os', '')}; load average at start "
        f"{result['loadavg_start']}, at end {result['loadavg_end']}. {result.get('note') or ''}".rstrip(),
        "",
        f"Method: per cell, {result['repeats']} interleaved runs (each: warm-up {result['config']['warmup_ms']:.0f} "
        f"ms, then >= {result['config']['min_iterations']} iterations and >= {result['config']['duration_s']} s per "
        "graph, round-robin chunks, the order rotated by one graph per repeat); ratio = fastest ours / fastest peer "
        "within each run; A/A = ours on OpenVINO against a second compiled copy of the same file (what noise alone "
        "does). MET: median ratio <= 1.00; TIE: above 1.00 by no more than the A/A spread; NOT MET: beyond it.",
        "",
        "| model | batch | threads | ours ORT ms | ours OpenVINO ms | ORT quantize_static ms | NNCF/OpenVINO ms | "
        "ratio median (min..max) | ours ahead | A/A (min..max) | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for name, cells in result["cells"].items():
        for c in cells:
            md, r, aa = c["median_ms"], c["ratio_ours_to_peer"], c["aa_ratio"]
            lines.append(
                f"| {name} | {c['batch']} | {c['threads']} | {md['ours int8 onnxruntime']:.2f} | "
                f"{md['ours int8 openvino']:.2f} | {md['ORT quantize_static on onnxruntime']:.2f} | "
                f"{md['NNCF on openvino']:.2f} | {r['median']:.3f}x ({r['min']:.3f}..{r['max']:.3f}) | "
                f"{c['ours_ahead_in']}/{c['repeats']} | {aa['min']:.3f}..{aa['max']:.3f} | {c['verdict']} |"
            )
    lines += ["", "## What each runtime executes (ours vs the peer on the same runtime, 1 thread)", ""]
    for name, progs in result["programs"].items():
        for runtime, p in progs.items():
            peer = "NNCF" if runtime == "openvino" else "ORT quantize_static"
            if p["identical"]:
                total = sum(p["ours"].values())
                lines.append(f"- {name} on {runtime}: ours and {peer} execute the same program ({total} nodes: "
                             + ", ".join(f"{v} {k}" for k, v in p["ours"].items()) + ")")  # fmt: skip
            else:
                lines.append(f"- {name} on {runtime}: ours and {peer} differ: " + ", ".join(
                    f"{k} {a} vs {b}" for k, (a, b) in p["differences (ours, peer)"].items()))  # fmt: skip
    counts = Counter(c["verdict"] for cells in result["cells"].values() for c in cells)
    lines += ["", "Verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), ""]
    return "\n".join(lines)


def load_cpu_script() -> Any:
    spec = importlib.util.spec_from_file_location("run_cpu_benchmarks", HERE / "run_cpu_benchmarks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/resnet-deploy-bench"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cpu")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per graph in each repeat")
    ap.add_argument("--min-iterations", type=int, default=3)
    ap.add_argument("--note", default="", help="stated in the report (e.g. what else ran on the machine)")
    args = ap.parse_args(argv)
    import os

    names = [n for n in args.models.split(",") if n]
    missing = [n for n in names if not all(p.exists() for k, p in graph_files(args.work, n).items()
                                           if k != "int8_openvino")]  # fmt: skip
    if missing:
        say(f"building {', '.join(missing)} into {args.work} (run_cpu_benchmarks.py --build-only --reuse)")
        load_cpu_script().main(["--work", str(args.work), "--build-only", "--reuse", "--only", ",".join(missing)])
    for n in names:
        if not graph_files(args.work, n)["int8_openvino"].exists():
            build_openvino_int8(args.work, n)
    cfg = BenchConfig(duration_s=args.duration, min_iterations=args.min_iterations, rounds=3)
    cfg.validate()
    result: dict[str, Any] = {
        "machine": machine_info(),
        "threads_available": cpu_budget().threads,
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
        "config": {**cfg.to_dict(), "repeats": args.repeats},
        "repeats": args.repeats,
        "note": args.note,
        "cells": {},
        "programs": {},
    }
    t0 = time.time()
    for name in names:
        files = graph_files(args.work, name)
        result["programs"][name] = programs(files)
        result["cells"][name] = []
        for threads in (int(t) for t in args.threads.split(",")):
            for batch in (int(b) for b in args.batch.split(",")):
                say(f"{name} batch {batch}, {threads} thread(s)")
                cell = measure_cell(files, batch, threads, cfg, args.repeats)
                say(f"  {cell['verdict']}: ratio {cell['ratio_ours_to_peer']}, A/A {cell['aa_ratio']}")
                result["cells"][name].append(cell)
    result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    result["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "int8_peer_check.json", json.dumps(result, indent=2) + "\n")
    md = to_markdown(result)
    atomic_write_text(args.out / "int8_peer_check.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
