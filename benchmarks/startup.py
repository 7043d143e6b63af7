"""Start-up to the first prediction: ``resnet_deploy.load(m.onnx).predict(x)`` against a bare
``onnxruntime.InferenceSession`` on the same file, side by side.

    python benchmarks/startup.py [--rounds 15] [--model fmnist_resnet20]

Each run is a fresh interpreter that imports what it needs, loads the model, predicts one image and reports its
peak RSS (``ru_maxrss``); the wall time is the whole process, spawn to exit, so interpreter start-up counts for
both. The two are run alternately, ``--rounds`` times each, and compared by their medians. Writes
benchmarks/results/startup.json and .md with the machine named.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
LIMIT = 1.3  # the bound: ours within 1.3x of the bare session in time and in peak RSS

PROGRAMS = {
    "bare onnxruntime.InferenceSession": (
        "import numpy as np, onnxruntime as ort\n"
        "s = ort.InferenceSession({path!r}, providers=['CPUExecutionProvider'])\n"
        "i = s.get_inputs()[0]\n"
        "s.run(None, {{i.name: np.zeros((1, 1, 28, 28), np.float32)}})\n"
    ),
    "resnet_deploy.load(...).predict": (
        "import numpy as np, resnet_deploy\n"
        "m = resnet_deploy.load({path!r})\n"
        "m.predict(np.zeros((1, 1, 28, 28), np.float32))\n"
    ),
}
REPORT = (
    "import json, re\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "print(json.dumps({'rss_kb': int(hwm)}))\n"
)


def run_once(code: str) -> tuple[float, int]:
    """(wall seconds spawn to exit, peak RSS in KiB) of one fresh interpreter running ``code``."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed:\n{proc.stderr}")
    return wall, int(json.loads(proc.stdout.strip().splitlines()[-1])["rss_kb"])


def measure(onnx_path: Path, rounds: int) -> dict[str, Any]:
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in PROGRAMS}
    for code in PROGRAMS.values():  # one unmeasured run each: the page cache, not the code, is warmed
        run_once(code.format(path=str(onnx_path)))
    for _ in range(rounds):
        for name, code in PROGRAMS.items():
            samples[name].append(run_once(code.format(path=str(onnx_path))))
    rows = {}
    for name, runs in samples.items():
        walls, rss = [w for w, _ in runs], [r for _, r in runs]
        rows[name] = {
            "median_s": round(statistics.median(walls), 4),
            "min_s": round(min(walls), 4),
            "max_s": round(max(walls), 4),
            "median_rss_mb": round(statistics.median(rss) / 1024, 1),
            "runs": len(runs),
        }
    bare, ours = (rows[n] for n in PROGRAMS)
    return {
        "rows": rows,
        "time_ratio": round(ours["median_s"] / bare["median_s"], 3),
        "rss_ratio": round(ours["median_rss_mb"] / bare["median_rss_mb"], 3),
        "limit": LIMIT,
    }


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Start-up to the first prediction",
        "",
        f"Model: {report['model']} (.onnx, {report['onnx_bytes'] / 1e6:.2f} MB). Machine: {m.get('cpu')} "
        f"({m.get('cores')} cores), load average before {report['loadavg_before']}, after {report['loadavg_after']}. "
        f"Fresh interpreter per run, {report['rounds']} runs each, alternating; wall time spawn to exit.",
        "",
        "| program | median s | min s | max s | peak RSS MB (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in report["rows"].items():
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['median_rss_mb']} |")
    ok = report["time_ratio"] <= LIMIT and report["rss_ratio"] <= LIMIT
    lines += [
        "",
        f"Ours / bare: time {report['time_ratio']:.2f}x, peak RSS {report['rss_ratio']:.2f}x (limit {LIMIT}x): "
        + ("**met**." if ok else "**NOT met**."),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--model", default="fmnist_resnet20", help="bundled checkpoint to export (default fmnist_resnet20)")
    ap.add_argument("--out", default=str(RESULTS / "startup"))
    args = ap.parse_args()
    from resnet_deploy.api import export_model
    from resnet_deploy.benchmark.machine import machine_info

    with tempfile.TemporaryDirectory() as d:
        onnx_path = Path(d) / f"{args.model}.onnx"
        export_model(weights=args.model, out=onnx_path)
        before = [round(v, 2) for v in os.getloadavg()]
        result = measure(onnx_path, args.rounds)
        report = {
            "model": args.model,
            "onnx_bytes": onnx_path.stat().st_size,
            "rounds": args.rounds,
            "machine": machine_info(),
            "loadavg_before": before,
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
            **result,
        }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 0 if report["time_ratio"] <= LIMIT and report["rss_ratio"] <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
