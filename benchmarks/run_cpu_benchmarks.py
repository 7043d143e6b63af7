"""The committed CPU run: ours (FP32, INT8) on ONNX Runtime and OpenVINO vs the INT8 peers, PyTorch eager baseline.

Models:
- resnet18 and resnet50 at 224 x 224 (torchvision layout) with RANDOM weights: Kaiming-initialised convolutions,
  BatchNorm running statistics estimated from random images (train-mode passes) and randomised BN scale/shift, so
  BN folding produces non-trivial per-channel weights. Latency does not depend on the weight values; accuracy of
  these is meaningless and is not measured. Their INT8 graphs are calibrated on synthetic images (speed only).
- the bundled checkpoints fmnist_resnet20 and fmnist_resnet50_small (Fashion-MNIST, 1 x 28 x 28): INT8 calibrated
  on fashion-mnist:train (the build's default), accuracy on all of fashion-mnist:test.

All FP32 and INT8 graphs come from resnet_deploy.build (export -> onnxsim -> BN folding -> Q/DQ). Per model: ours
FP32 and INT8 (ONNX Runtime placement) on ONNX Runtime (spinning off, the default; from 2 threads also with spinning
on) and on OpenVINO, ORT quantize_static's INT8 on ONNX Runtime and NNCF's INT8 on OpenVINO (both calibrated on the
same images as ours), our INT8 in TensorRT's placement on OpenVINO (the same calibration: which placement OpenVINO
runs best), PyTorch eager FP32. All targets of one batch size and thread count are measured interleaved in one
process (see resnet_deploy.benchmark.core), at 1 and 2 threads; then a contention run at batch 1: a busy process
pinned to the last core, started and stopped by this script (by PID; it also ends by itself after
--contention-limit seconds). Needs the cpu-peers extra: pip install -e '.[cpu-peers]'.

    python benchmarks/run_cpu_benchmarks.py                 # writes benchmarks/results/cpu/
    python benchmarks/check_timing.py                       # the independent timing check of the same graphs
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.openvino import OpenVinoModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.benchmark import BenchConfig, BenchmarkInterrupted, BenchReport, Target, run_benchmark
from resnet_deploy.benchmark.accuracy import evaluate_targets
from resnet_deploy.benchmark.core import add_ratios, group_rows, noise_warnings
from resnet_deploy.benchmark.macs import count_macs_onnx
from resnet_deploy.benchmark.report import plot, to_markdown, write_json
from resnet_deploy.build import BuildOptions, build
from resnet_deploy.models.bundled import bundled_checkpoints
from resnet_deploy.models.weights import load_model, save_checkpoint
from resnet_deploy.onnx_io import load_onnx

ROOT = Path(__file__).resolve().parent.parent
RANDOM_ARCHS = ("resnet18", "resnet50")
CHECKPOINTS = ("fmnist_resnet20", "fmnist_resnet50_small")
TARGET_RATIO = 0.6  # INT8 ResNet-50 batch-1 median latency at most 0.6x FP32's
SYNTHETIC_SAMPLES = 64  # the random-weight models' calibration (ours and the peers')
PEER_ORT = "(ORT quantize_static, not ours)"
PEER_NNCF = "(NNCF, not ours)"
#: the side-by-side table's columns, in the labels' words
KINDS = (
    "fp32 onnxruntime",
    "fp32 onnxruntime spinning",
    "fp32 openvino",
    "int8 onnxruntime",
    "int8 onnxruntime spinning",
    "int8 openvino",
    "int8 openvino tensorrt-placement",
    f"int8 onnxruntime {PEER_ORT}",
    f"int8 openvino {PEER_NNCF}",
    "fp32 pytorch",
)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def random_weights(arch: str, seed: int = 0) -> tuple[nn.Module, Any]:
    """Random weights with non-trivial BatchNorm: running stats from random images, random affine parameters."""
    torch.manual_seed(seed)
    module, info = load_model(arch)
    net = module
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the passes below
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(8, info.in_channels, info.input_size, info.input_size))
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
    net.eval()
    return net, info


class Printer:
    """Plain progress lines (the CLI has the rich bar; a log file reads better with lines)."""

    def __init__(self) -> None:
        self.last = ""

    def begin(self, total_s: float) -> None:
        say(f"measuring, about {total_s:.0f} s of timing plus warm-ups")

    def update(self, description: str, advance_s: float) -> None:
        if description != self.last:
            say(description)
            self.last = description

    def end(self) -> None:
        say("timing done")


def build_pair(
    name: str, work: Path, weights: str | Path, arch: str | None, synthetic: bool, reuse: bool
) -> dict[str, Any]:
    """FP32 and INT8 ONNX of one model through resnet_deploy.build; returns paths and build facts."""
    fp32, int8 = work / f"{name}_fp32.onnx", work / f"{name}_int8.onnx"
    int8_trt, cache = work / f"{name}_int8_trtplace.onnx", work / f"{name}_calib.json"
    facts: dict[str, Any] = {"fp32": str(fp32), "int8": str(int8), "int8_trtplace": str(int8_trt)}
    src = bundled_checkpoints().get(str(weights), Path(weights))
    if reuse and fp32.exists() and src.exists() and fp32.stat().st_mtime < src.stat().st_mtime:
        reuse = False  # the checkpoint changed since the last build
    if not (reuse and fp32.exists()):
        say(f"build {name} fp32")
        r = build(BuildOptions(output=fp32, arch=arch, weights=weights, precision="fp32"))
        facts["fp32_build_s"] = round(r.seconds, 1)
    if not (reuse and int8.exists()):
        say(f"build {name} int8 ({'synthetic' if synthetic else 'fashion-mnist:train'} calibration)")
        cache.unlink(missing_ok=True)  # a cache of an earlier run would be reused instead of calibrating
        opts = BuildOptions(output=int8, onnx=fp32, precision="int8")
        opts.int8.cache_path = cache
        if synthetic:
            opts.calib_data, opts.calib_samples = "synthetic", SYNTHETIC_SAMPLES
        r = build(opts)
        facts["int8_build_s"] = round(r.seconds, 1)
        facts["int8_report"] = r.int8.to_dict() if r.int8 is not None and hasattr(r.int8, "to_dict") else None
        facts["int8_notes"] = r.notes + r.warnings
        int8_trt.unlink(missing_ok=True)
    if not (reuse and int8_trt.exists()):
        # The third candidate for OpenVINO: TensorRT's placement (int8 symmetric, Q/DQ on conv inputs only) from the
        # same calibration cache, so the run shows which placement OpenVINO runs best.
        say(f"build {name} int8, TensorRT placement, from the same calibration")
        opts = BuildOptions(output=int8_trt, onnx=fp32, precision="int8")
        opts.int8.cache_path, opts.int8.placement = cache, "tensorrt"
        build(opts)
    return facts


def calibration_images(name: str, synthetic: bool, module_info: Any) -> Any:
    """The images our INT8 build calibrates on, as one array, for the peers: 64 synthetic images drawn exactly as
    ``--calib-data synthetic`` draws them (rng(0), [0, 1)), or the first 512 of fashion-mnist:train preprocessed
    for the model (the build's default for a bundled checkpoint)."""
    import numpy as np

    from resnet_deploy.build.options import DEFAULT_CALIB_SAMPLES
    from resnet_deploy.data import open_dataset

    if synthetic:
        chw = (module_info.in_channels, module_info.input_size, module_info.input_size)
        return np.random.default_rng(0).random((SYNTHETIC_SAMPLES, *chw), dtype=np.float32)
    return open_dataset("fashion-mnist:train", module_info).take(DEFAULT_CALIB_SAMPLES)[0]


def ort_reference_int8(fp32: Path, out: Path, calib: Any, reuse: bool) -> Path:
    """ONNX Runtime's own quantize_static (QDQ, ORT's CPU defaults: uint8 asymmetric activations, per-channel int8
    weights, MinMax) on the same calibration images as ours: NOT a resnet-deploy graph, the peer."""
    import onnx

    from resnet_deploy._io import atomic_write_bytes
    from resnet_deploy.precision.peers import ort_quantize_static

    if reuse and out.exists():
        return out
    say(f"ORT quantize_static peer for {fp32.name} ({len(calib)} images)")
    q = ort_quantize_static(onnx.load(str(fp32)), calib, symmetric=False, batch=1)
    atomic_write_bytes(out, q.SerializeToString())
    return out


def nncf_int8(fp32: Path, out: Path, calib: Any, reuse: bool) -> Path | None:
    """NNCF's ``quantize`` on the FP32 ONNX (its defaults: the mixed/performance preset OpenVINO's CPU plugin
    expects), on the same calibration images as ours, one image per item: the peer on OpenVINO. None (with a
    note) when nncf is not installed: ``pip install -e '.[cpu-peers]'``."""
    if reuse and out.exists():
        return out
    try:
        import nncf
    except ImportError:
        say("nncf is not installed: NNCF INT8 skipped (pip install -e '.[cpu-peers]')")
        return None
    import numpy as np
    import onnx

    from resnet_deploy._io import atomic_write_bytes

    say(f"NNCF INT8 peer for {fp32.name} ({len(calib)} images)")
    model = onnx.load(str(fp32))
    name = model.graph.input[0].name
    items = [np.ascontiguousarray(calib[i : i + 1]) for i in range(len(calib))]
    q = nncf.quantize(model, nncf.Dataset(items, lambda x: {name: x}), subset_size=len(items))
    atomic_write_bytes(out, q.SerializeToString())
    return out


def onnx_macs(path: Path) -> int:
    return count_macs_onnx(load_onnx(path, check=False)).total


def model_targets(rec: dict[str, Any], threads: int, evaluate: bool) -> list[Target]:
    """Every target of one model at ``threads`` threads, the FP32 ONNX Runtime reference first (the group's
    ratio baseline). Group and label carry the thread count, so 1- and 2-thread rows never mix."""
    name, group, macs = rec["name"], f"{rec['group']} {threads}t", rec["macs"]
    sfx = f" [{threads}t]"
    out: list[Target] = []

    def add(label: str, model: Any, source: Path | str, role: str = "model", ev: bool = evaluate) -> None:
        out.append(Target(label=label + sfx, model=model, source=str(source), role=role, group=group,
                          macs_per_image=macs, evaluate=ev))  # fmt: skip

    fp32, int8 = Path(rec["fp32"]), Path(rec["int8"])
    add(f"{name} fp32 onnxruntime", OnnxRuntimeModel(fp32, threads=threads), fp32)
    add(f"{name} int8 onnxruntime", OnnxRuntimeModel(int8, threads=threads), int8)
    if threads > 1:  # one thread has no workers to spin: the spinning rows only mean something from 2 threads on
        add(f"{name} fp32 onnxruntime spinning", OnnxRuntimeModel(fp32, threads=threads, spinning=True), fp32, ev=False)
        add(f"{name} int8 onnxruntime spinning", OnnxRuntimeModel(int8, threads=threads, spinning=True), int8, ev=False)
    add(f"{name} fp32 openvino", OpenVinoModel(fp32, threads=threads), fp32)
    add(f"{name} int8 openvino", OpenVinoModel(int8, threads=threads), int8)
    trt_place = Path(rec["int8_trtplace"])
    add(f"{name} int8 openvino tensorrt-placement", OpenVinoModel(trt_place, threads=threads), trt_place)
    if rec.get("ortq"):
        ortq = Path(rec["ortq"])
        add(f"{name} int8 onnxruntime {PEER_ORT}", OnnxRuntimeModel(ortq, threads=threads), ortq, role="reference")
    if rec.get("nncf"):
        nq = Path(rec["nncf"])
        add(f"{name} int8 openvino {PEER_NNCF}", OpenVinoModel(nq, threads=threads), nq, role="reference")
    add(f"{name} fp32 pytorch", TorchModel(rec["module"], rec["info"]), rec["source"], role="baseline")
    return out


class BusyProcess:
    """One bounded CPU hog, the contention of a shared edge box: a child that spins for at most ``limit_s`` seconds
    on its own (so a killed parent cannot leave it behind for long), stopped by its PID when the measurement ends.
    With ``cpu`` set it is pinned there (the "other core")."""

    def __init__(self, limit_s: float, cpu: int | None) -> None:
        self.limit_s, self.cpu = limit_s, cpu
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BusyProcess:
        code = f"import time\nend = time.monotonic() + {self.limit_s!r}\nwhile time.monotonic() < end:\n    pass\n"
        pin = None
        if self.cpu is not None and hasattr(os, "sched_setaffinity"):
            cpu = self.cpu
            pin = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
        self.proc = subprocess.Popen([sys.executable, "-c", code], preexec_fn=pin)
        say(f"contention: busy process PID {self.proc.pid} on CPU {self.cpu}, at most {self.limit_s:.0f} s")
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            if proc is not None:
                say(f"contention: busy process PID {proc.pid} had already ended (limit reached?)")
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        say(f"contention: busy process PID {proc.pid} stopped")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def measure(targets: list[Target], cfg: BenchConfig, batches: dict[str, list[int]], printer: Printer) -> BenchReport:
    """One run_benchmark per batch size over the targets that take it, all interleaved; merged into one report."""
    report: BenchReport | None = None
    for b in cfg.batches:
        subset = [t for t in targets if b in batches[t.label]]
        if not subset:
            continue
        part = run_benchmark(subset, dataclasses.replace(cfg, batches=[b], data=None), progress=printer)
        if report is None:
            report = part
        else:
            report.results.extend(part.results)
            report.machine["loadavg_at_end"] = part.machine.get("loadavg_at_end")
        add_ratios(report.results)
    assert report is not None
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cpu")
    ap.add_argument("--work", type=Path, default=Path("/tmp/resnet-deploy-bench"), help="models are built here")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--batch-224", default=None, help="batch sizes for resnet18/50 at 224 (default: --batch)")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--min-iterations", type=int, default=10)
    ap.add_argument("--threads", default="1,2", help="thread counts, each a full interleaved run (default 1,2)")
    ap.add_argument("--data-limit", type=int, default=None, help="accuracy on the first N test images only")
    ap.add_argument("--reuse", action="store_true", help="reuse models already built in --work")
    ap.add_argument("--build-only", action="store_true", help="build the models into --work, measure nothing")
    ap.add_argument("--no-peers", action="store_true", help="skip the ORT quantize_static and NNCF INT8 peers")
    ap.add_argument("--only", default=None, help="comma-separated subset of models (resnet18,...,fmnist_resnet20)")
    ap.add_argument(
        "--contention-threads",
        type=int,
        default=2,
        metavar="T",
        help="threads of the contention run: batch 1, a busy process on the last core of the affinity mask (0: skip)",
    )
    ap.add_argument("--contention-limit", type=float, default=1800.0, metavar="S", help="busy process ends by itself")
    ap.add_argument("--synthetic-samples", type=int, default=None, help=argparse.SUPPRESS)  # tiny end-to-end checks
    ap.add_argument(
        "--note",
        default="2-core VM that other jobs may share during the run: see the load averages; ratios between models "
        "measured interleaved hold better than absolute figures",
    )
    args = ap.parse_args(argv)
    from resnet_deploy.benchmark import parse_batches

    global SYNTHETIC_SAMPLES
    if args.synthetic_samples:
        SYNTHETIC_SAMPLES = args.synthetic_samples
    batches = parse_batches(args.batch)
    thread_counts = parse_batches(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    t0 = time.time()

    records: list[dict[str, Any]] = []
    builds: dict[str, Any] = {}
    notes: list[str] = []

    def peers(rec: dict[str, Any], calib: Any) -> None:
        if args.no_peers:
            return
        fp32, name = Path(rec["fp32"]), rec["name"]
        rec["ortq"] = ort_reference_int8(fp32, args.work / f"{name}_ortq_u8.onnx", calib, args.reuse)
        rec["nncf"] = nncf_int8(fp32, args.work / f"{name}_nncf.onnx", calib, args.reuse)
        if rec["nncf"] is None:
            notes.append(f"{name}: NNCF INT8 not measured (nncf not installed)")

    for arch in RANDOM_ARCHS:
        if wanted and arch not in wanted:
            continue
        ckpt = args.work / f"{arch}_random.safetensors"
        net, info = random_weights(arch)
        if not (args.reuse and ckpt.exists()):
            save_checkpoint(ckpt, net, info)
        else:
            net, info = load_model(arch, ckpt)
        builds[arch] = build_pair(arch, args.work, ckpt, arch, synthetic=True, reuse=args.reuse)
        rec = {"name": arch, "group": f"{arch}@224", "module": net, "info": info, "source": ckpt, "big": True,
               "evaluate": False, **builds[arch]}  # fmt: skip
        rec["macs"] = onnx_macs(Path(rec["fp32"]))
        peers(rec, calibration_images(arch, True, info))
        records.append(rec)
    notes.append(
        f"resnet18/resnet50: random weights (BN statistics from random images, random BN affine), INT8 calibrated on "
        f"{SYNTHETIC_SAMPLES} synthetic images (ours, ORT quantize_static and NNCF the same images): speed only"
    )
    bundled = bundled_checkpoints()
    for name in CHECKPOINTS:
        if wanted and name not in wanted:
            continue
        if name not in bundled:
            notes.append(f"{name}: not bundled at the time of the run, skipped")
            say(f"skip {name}: not bundled yet")
            continue
        module, info = load_model(weights=name)
        builds[name] = build_pair(name, args.work, name, None, synthetic=False, reuse=args.reuse)
        digest = hashlib.sha256(bundled[name].read_bytes()).hexdigest()
        builds[name]["checkpoint"] = {"sha256": digest[:16], "top1_recorded": info.top1}
        rec = {"name": name, "group": f"{name}@{info.input_size}", "module": module, "info": info, "source": name,
               "big": False, "evaluate": True, **builds[name]}  # fmt: skip
        rec["macs"] = onnx_macs(Path(rec["fp32"]))
        peers(rec, calibration_images(name, False, info))
        records.append(rec)
    notes.append(
        "INT8 peers on the same calibration images as ours: ORT quantize_static (QDQ, ORT's CPU defaults u8/s8 "
        "per-channel, MinMax) run on ONNX Runtime; NNCF quantize (defaults) on the FP32 ONNX, run on OpenVINO. "
        "'int8 openvino' is OUR ONNX Runtime-placement INT8 graph, unchanged, on OpenVINO"
    )
    say(f"{len(records)} models ready after {time.time() - t0:.0f} s")
    if args.build_only:
        return 0
    batches_224 = parse_batches(args.batch_224) if args.batch_224 else batches
    cfg = BenchConfig(
        batches=sorted(set(batches) | set(batches_224)),
        duration_s=args.duration,
        min_iterations=args.min_iterations,
        data=None,
        data_limit=args.data_limit,
        eval_batch=500,
        note=args.note,
    )
    cfg.validate()
    out_json = args.out / "bench.json"
    printer = Printer()
    code = 0
    report: BenchReport | None = None
    all_targets: list[Target] = []
    try:
        # Each thread count is its own interleaved run (the sessions are made for it); PyTorch follows cfg.threads.
        for t in thread_counts:
            targets = [x for rec in records for x in model_targets(rec, t, rec["evaluate"] and t == thread_counts[0])]
            all_targets += targets
            per = {x.label: batches_224 if rec["big"] else batches for rec in records for x in targets
                   if x.group and x.group.startswith(rec["group"] + " ")}  # fmt: skip
            say(f"{t} thread(s): {len(targets)} targets")
            part = measure(targets, dataclasses.replace(cfg, threads=t), per, printer)
            for row in part.results:
                row["threads"], row["condition"] = t, "quiet"
            if report is None:
                report = part
                report.config = cfg.to_dict()
                report.config.update(batches_224=batches_224, threads=thread_counts)
            else:
                report.results.extend(part.results)
                report.machine["loadavg_at_end"] = part.machine.get("loadavg_at_end")
            write_json(report, out_json)
        assert report is not None
        ct = args.contention_threads
        if ct:
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
            busy_cpu = cpus[-1]
            # batch 1 only: the latency a shared box sees; labels say "contended" so ratios stay within the run
            cont = [x for rec in records for x in model_targets(rec, ct, False)]
            for x in cont:
                x.label = x.label.replace(f" [{ct}t]", f" [{ct}t contended]")
                x.group = f"{x.group} contended"
            per = {x.label: [1] for x in cont}
            with BusyProcess(args.contention_limit, busy_cpu) as busy:
                part = measure(cont, dataclasses.replace(cfg, threads=ct, batches=[1]), per, printer)
                still = busy.alive()
            for row in part.results:
                row["threads"], row["condition"] = ct, f"one busy process pinned to CPU {busy_cpu}"
            report.results.extend(part.results)
            notes.append(
                f"contention run: batch 1, {ct} threads, one busy Python loop pinned to CPU {busy_cpu} started and "
                f"stopped by this script (alive through the whole measurement: {still})"
            )
            write_json(report, out_json)
        evaluated = [x for x in all_targets if x.evaluate]
        if evaluated:
            data_cfg = dataclasses.replace(cfg, data="fashion-mnist:test", threads=thread_counts[-1])
            say(f"accuracy on {data_cfg.data} ({len(evaluated)} models)")
            report.accuracy = evaluate_targets(evaluated, data_cfg)
            by_label = {a["model"]: a for a in report.accuracy}
            for row in report.results:
                if row["model"] in by_label:
                    row["accuracy"] = by_label[row["model"]]
    except (BenchmarkInterrupted, KeyboardInterrupt) as exc:
        code = 130
        if isinstance(exc, BenchmarkInterrupted) and report is None:
            report = exc.report
        elif isinstance(exc, BenchmarkInterrupted) and report is not None:
            report.results.extend(exc.report.results)
        if report is None:
            return code
        report.interrupted = True
        report.notes.append("interrupted by the user: partial results")
    report.notes.extend(notes)
    report.notes.append(f"models built by resnet_deploy.build: {json.dumps(builds, default=str)}")
    verdicts = int8_verdicts(report)
    headline = _headline(report.results)
    report.notes[:0] = [*([headline] if headline else []), *verdicts]
    report.notes.append(f"whole script {time.time() - t0:.0f} s")
    group_rows(report.results, [t.label for t in all_targets])  # each model's batches together
    report.warnings = noise_warnings(report.results, report.machine)
    write_json(report, out_json)
    title = "CPU benchmarks: ours vs ORT quantize_static vs NNCF, on ONNX Runtime and OpenVINO, PyTorch eager baseline"
    (args.out / "bench.md").write_text(to_markdown(report, title) + "\n" + side_by_side(report) + "\n")
    if report.results:
        plot(report, args.out / "latency.png", kinds=("latency",))
        plot(report, args.out / "throughput.png", kinds=("throughput",))
    if report.accuracy:
        plot(report, args.out / "accuracy.png", kinds=("accuracy",))
    say(f"written to {args.out} ({time.time() - t0:.0f} s)")
    print(to_markdown(report, title))
    print(side_by_side(report))
    return code


def _median(rows: list[dict[str, Any]], label: str, batch: int) -> float | None:
    row = next((r for r in rows if r["model"] == label and r["batch"] == batch), None)
    return None if row is None else float(row["latency_ms"]["median"])


def _fastest(
    rows: list[dict[str, Any]], name: str, sfx: str, batch: int, kinds: tuple[str, ...]
) -> tuple[float, str] | None:
    found = [(m, k) for k in kinds if (m := _median(rows, f"{name} {k}{sfx}", batch)) is not None]
    return min(found) if found else None


OURS_INT8 = ("int8 onnxruntime", "int8 openvino", "int8 openvino tensorrt-placement")
PEERS_INT8 = (f"int8 onnxruntime {PEER_ORT}", f"int8 openvino {PEER_NNCF}")


def int8_verdicts(report: BenchReport) -> list[str]:
    """The issue's bar, per model, batch and thread count of the quiet runs: our fastest INT8 (either runtime) at
    least as fast as the fastest peer INT8 in the same run."""
    out = []
    rows = [r for r in report.results if r.get("condition") == "quiet"]
    keys = sorted({(r["group"], r["batch"], r.get("threads")) for r in rows}, key=str)
    for group, batch, threads in keys:
        name = group.split("@")[0]
        sfx = f" [{threads}t]"

        ours, peer = (_fastest(rows, name, sfx, batch, kinds) for kinds in (OURS_INT8, PEERS_INT8))
        if ours is None or peer is None:
            continue
        verdict = "MET" if ours[0] <= peer[0] else "NOT MET"
        out.append(
            f"{name} b{batch} {threads}t: fastest ours ({ours[1]}) {ours[0]:.2f} ms vs fastest peer ({peer[1]}) "
            f"{peer[0]:.2f} ms: {verdict} ({ours[0] / peer[0]:.3f}x)"
        )
    return out


def side_by_side(report: BenchReport) -> str:
    """README's CPU table: per model and thread count, median latency ratio to ORT FP32 at each batch, and top-1."""
    rows = report.results
    lines = ["## Side by side (median latency / ONNX Runtime FP32 of the same run; top-1 on fashion-mnist:test)", ""]
    lines.append("| model | threads | condition | batch | " + " | ".join(KINDS) + " |")
    lines.append("|---|---:|---|---:|" + "---:|" * len(KINDS))
    keys = sorted({(r["group"], r.get("threads"), r.get("condition"), r["batch"]) for r in rows}, key=str)
    for group, threads, condition, batch in keys:
        name = group.split("@")[0]
        sfx = f" [{threads}t contended]" if condition != "quiet" else f" [{threads}t]"
        ref = _median(rows, f"{name} fp32 onnxruntime{sfx}", batch)
        cells = []
        for kind in KINDS:
            m = _median(rows, f"{name} {kind}{sfx}", batch)
            cells.append("" if m is None or not ref else f"{m / ref:.2f}x ({m:.1f} ms)")
        lines.append(f"| {name} | {threads} | {condition} | {batch} | " + " | ".join(cells) + " |")
    names = sorted({a["model"].split(" ")[0] for a in report.accuracy})
    if names:
        lines += ["", "| model | " + " | ".join(KINDS) + " |", "|---|" + "---:|" * len(KINDS)]
        for name in names:
            cells = []
            for kind in KINDS:
                found = [a for a in report.accuracy if a["model"].startswith(f"{name} {kind} [")]
                cells.append(f"{found[0]['top1']:.2f}" if found and found[0].get("top1") is not None else "")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _headline(rows: list[dict[str, Any]]) -> str | None:
    fp32 = next((r for r in rows if r["model"] == "resnet50 fp32 onnxruntime [1t]" and r["batch"] == 1), None)
    int8 = next((r for r in rows if r["model"] == "resnet50 int8 onnxruntime [1t]" and r["batch"] == 1), None)
    if not fp32 or not int8:
        return None
    ratio = int8["latency_ms"]["median"] / fp32["latency_ms"]["median"]
    verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    return (
        f"target (INT8 ResNet-50 batch-1 median latency <= {TARGET_RATIO}x FP32): {verdict}: "
        f"INT8 {int8['latency_ms']['median']:.1f} ms vs FP32 {fp32['latency_ms']['median']:.1f} ms = {ratio:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
