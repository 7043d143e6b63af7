"""Requests/s and p50/p99 latency of the bundled model served by Triton, next to in-process ``predict``.

    python benchmarks/serve.py [--checkpoint fmnist_resnet20] [--concurrency 1,4,16] [--duration 10]

Builds the checkpoint as FP32 and INT8 ONNX (what ``resnet-deploy build`` writes for ONNX Runtime), then at each
concurrency (that many clients, each sending one image per request and waiting for the answer):

- ``in-process``: threads calling ``InferenceModel.predict`` on one ``resnet_deploy.load``-ed model (no server);
- ``triton grpc`` / ``triton http``: the same number of threads, each with its own ``tritonclient`` client, against
  ``resnet-deploy serve``'s server (``triton_server``: the nvidia-pytriton binary, python-based ONNX Runtime
  backend, dynamic batching with the default queue delay); Python clients share the CPU (and the GIL) with the
  server, so they measure what a Python service on the same machine sees;
- ``perf_analyzer grpc``: NVIDIA's C++ load generator (the tritonclient 2.51.0 wheel's binary, which runs on
  Debian 12) at the same concurrency, where it runs.

Latency is per request, from send to answer; requests/s = answered requests / wall time. Every cell runs for
``--duration`` seconds after ``--warmup`` seconds. Percentiles use resnet_deploy.benchmark.stats (trtexec's rule).
Writes ``<out>.json`` and ``<out>.md`` (default benchmarks/results/serve), with the machine and its load named.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.api import BuildOptions, build, load
from resnet_deploy.benchmark.machine import machine_info
from resnet_deploy.benchmark.stats import median, percentile
from resnet_deploy.serve import TritonServer, triton_server

ROOT = Path(__file__).resolve().parent


def fmnist_images(n: int) -> np.ndarray:
    from resnet_deploy.data.idx import load_fashion_mnist

    return load_fashion_mnist("test")[0][:n]


def closed_loop(
    make_worker: Callable[[], Callable[[np.ndarray], Any]],
    images: np.ndarray,
    concurrency: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    """``concurrency`` threads, each sending one image at a time for ``warmup`` + ``duration`` s; the latencies of
    requests sent inside the measured window."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    start_at = time.perf_counter() + 0.2  # all threads begin together
    measure_from, stop_at = start_at + warmup, start_at + warmup + duration
    ready = threading.Barrier(concurrency + 1)

    def run(k: int) -> None:
        try:
            send = make_worker()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            ready.wait()
            return
        ready.wait()
        time.sleep(max(0.0, start_at - time.perf_counter()))
        i = k
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                send(images[i % len(images)][None])
            except Exception as exc:  # recorded, the cell is marked failed
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            if t0 >= measure_from:
                latencies[k].append(time.perf_counter() - t0)
            i += concurrency

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join(timeout=warmup + duration + 120)
    if any(t.is_alive() for t in threads):
        errors.append("a client did not finish within its bound")
    values = sorted(v * 1000.0 for lane in latencies for v in lane)
    wall = duration  # requests sent in the window; each finishes within one latency of its end
    return {
        "requests": len(values),
        "requests_per_s": len(values) / wall if values else 0.0,
        "p50_ms": median(values) if values else None,
        "p99_ms": percentile(values, 99) if values else None,
        "errors": errors[:3],
    }


def in_process(path: Path) -> Callable[[], Callable[[np.ndarray], Any]]:
    model = load(path)  # one session shared by the threads, as one service process would
    return lambda: model.predict


def triton_client(server: TritonServer, name: str, protocol: str) -> Callable[[], Callable[[np.ndarray], Any]]:
    def make() -> Callable[[np.ndarray], Any]:
        if protocol == "grpc":
            import tritonclient.grpc as client_module

            client: Any = client_module.InferenceServerClient(server.endpoints.grpc)
        else:
            import tritonclient.http as client_module  # type: ignore[no-redef]

            client = client_module.InferenceServerClient(server.endpoints.http, network_timeout=60.0)

        def send(x: np.ndarray) -> Any:
            inp = client_module.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            return client.infer(name, [inp]).as_numpy("logits")

        return send

    return make


def perf_analyzer_binary(explicit: str | None) -> Path | None:
    found = explicit or shutil.which("perf_analyzer") or str(Path(sys.prefix) / "bin" / "perf_analyzer")
    return Path(found) if found and Path(found).is_file() else None


def perf_analyzer_libs(server: TritonServer, folder: Path) -> Path:
    """The two libraries the wheel's perf_analyzer links and Debian lacks, from the nvidia-pytriton wheel (which
    ships them under hashed names): libb64.so.0d and libcudart.so.12."""
    folder.mkdir(parents=True, exist_ok=True)
    for pattern, name in (("libb64-*.so.0d", "libb64.so.0d"), ("libcudart-*.so.12*", "libcudart.so.12")):
        found = sorted(server.env.libs.glob(pattern))
        if found and not (folder / name).exists():
            (folder / name).symlink_to(found[0])
    return folder


def perf_analyzer(
    binary: Path, libs: Path, server: TritonServer, name: str, concurrency: int, requests: int
) -> dict[str, Any]:
    """One perf_analyzer run at one concurrency over gRPC, ``requests`` requests long (a fixed count: its
    stability search never settles on a shared machine); its CSV read back."""
    with tempfile.TemporaryDirectory() as d:
        csv_path = Path(d) / "pa.csv"
        cmd = [str(binary), "-m", name, "-u", server.endpoints.grpc, "-i", "grpc", "-b", "1",
               f"--concurrency-range={concurrency}:{concurrency}", f"--request-count={requests}",
               "-f", str(csv_path), "--percentile=99"]  # fmt: skip
        env = dict(os.environ, LD_LIBRARY_PATH=f"{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + requests / 10, env=env)
        except subprocess.TimeoutExpired:
            return {"errors": ["perf_analyzer did not finish within its bound"]}
        if proc.returncode != 0 or not csv_path.is_file():
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["?"]
            return {"errors": [f"perf_analyzer exit {proc.returncode}: {tail[0]}"]}
        row = next(csv.DictReader(csv_path.open()))
    return {
        "requests_per_s": float(row["Inferences/Second"]),  # batch 1: inferences = requests
        "p50_ms": float(row["p50 latency"]) / 1000.0,
        "p99_ms": float(row["p99 latency"]) / 1000.0,
        "errors": [],
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Serving {report['checkpoint']} with Triton (batch-1 requests)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; load average {m['loadavg_at_start']} at the start, "
        f"{report['loadavg_at_end']} at the end. Triton {report['triton']}, dynamic batching "
        f"(preferred {report['preferred_batch_sizes']}, queue delay {report['queue_delay_us']} us), "
        f"{report['duration_s']} s per cell after {report['warmup_s']} s of warm-up.",
        "",
        "| model | client | concurrency | requests/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if r.get("errors"):
            lines.append(f"| {r['model']} | {r['client']} | {r['concurrency']} | not measured: {r['errors'][0]} | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['client']} | {r['concurrency']} | {r['requests_per_s']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    if report.get("perf_analyzer"):
        lines += ["", f"perf_analyzer: {report['perf_analyzer']}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="fmnist_resnet20", help="bundled checkpoint to build and serve")
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts (1,4,16)")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell (10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each cell (2)")
    ap.add_argument("--clients", default="in-process,triton grpc,triton http,perf_analyzer grpc")
    ap.add_argument("--perf-analyzer", default=None, metavar="PATH", help="perf_analyzer binary (default: on PATH)")
    ap.add_argument("--server-env", default=None, metavar="DIR", help="the server's environment (as serve)")
    ap.add_argument("--out", default=str(ROOT / "results" / "serve"), help="writes OUT.json and OUT.md")
    ap.add_argument("--note", default=None, help="free text for the report's machine block")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    clients = [c.strip() for c in args.clients.split(",")]
    machine = machine_info(note=args.note)
    images = fmnist_images(256)

    work = Path(tempfile.mkdtemp(prefix="serve-bench."))
    try:
        models = {}
        for precision in ("int8", "fp32"):
            path = work / f"{args.checkpoint}_{precision}.onnx"
            build(BuildOptions(output=path, weights=args.checkpoint, precision=precision))
            models[precision] = path
        results: list[dict[str, Any]] = []
        pa_note = None
        with triton_server(list(models.values()), server_env=args.server_env) as server:
            assert server.repo is not None
            binary = perf_analyzer_binary(args.perf_analyzer) if "perf_analyzer grpc" in clients else None
            libs = perf_analyzer_libs(server, work / "pa_libs") if binary else None
            if "perf_analyzer grpc" in clients and binary is None:
                pa_note = "not found (the tritonclient==2.51.0 wheel installs bin/perf_analyzer)"
            for precision, path in models.items():
                name = path.stem
                for concurrency in levels:
                    for client in clients:
                        print(f"{name} {client} x{concurrency} ...", file=sys.stderr, flush=True)
                        if client == "in-process":
                            r = closed_loop(in_process(path), images, concurrency, args.warmup, args.duration)
                        elif client.startswith("triton "):
                            make = triton_client(server, name, client.split()[1])
                            r = closed_loop(make, images, concurrency, args.warmup, args.duration)
                        elif binary is not None and libs is not None:
                            # as many requests as the Python gRPC clients answered in --duration, 100 at least
                            seen = [x["requests"] for x in results if x["model"] == name
                                    and x["concurrency"] == concurrency and x["client"] == "triton grpc"]  # fmt: skip
                            count = max(100, int(seen[-1]) if seen else 0)
                            r = perf_analyzer(binary, libs, server, name, concurrency, count)
                        else:
                            continue
                        results.append({"model": name, "precision": precision, "client": client,
                                        "concurrency": concurrency, **r})  # fmt: skip
            first = server.repo.model(models["int8"].stem)
            env = server.env
        try:
            load_end = [round(v, 2) for v in os.getloadavg()]
        except OSError:
            load_end = None
        report = {
            "checkpoint": args.checkpoint,
            "machine": machine,
            "loadavg_at_end": load_end,
            "triton": f"2.51 (nvidia-pytriton, python {env.python_version}, numpy {env.numpy_version}, "
            f"onnxruntime {env.onnxruntime_version} in the server)",
            "preferred_batch_sizes": first.preferred_batches,
            "queue_delay_us": server.repo.queue_delay_us,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "image": "Fashion-MNIST test images, 1 x 1 x 28 x 28 float32 per request",
            "perf_analyzer": pa_note,
            "results": results,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
