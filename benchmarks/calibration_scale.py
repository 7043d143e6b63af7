"""INT8 calibration at real size: peak memory and wall time of ours and three peers, on the same graph and images.

    python benchmarks/calibration_scale.py --setup-peers          # once: makes .peers-venv (ModelOpt, NNCF), ~2 min
    python benchmarks/calibration_scale.py                        # ResNet-50 and ResNet-18 at 224, 32/128/512 images

Tools, each run in a fresh subprocess whose peak RSS (its own ``VmHWM``) and wall time are recorded:

- ``ours``: ``resnet-deploy build --onnx M --precision int8 --calib-data FOLDER --calib-samples N`` (JPEGs decoded
  while calibrating, ONNX Runtime placement, ``--calib-check 0`` so that no tool does more than quantize);
- ``ours_npy``: the same from the decoded images in a ``.npy`` (what the peers get; no JPEG decoding);
- ``ort``: ONNX Runtime's ``quantize_static`` (QDQ, per-channel, symmetric int8, MinMax), fed from the ``.npy`` a
  batch at a time (:func:`resnet_deploy.precision.peers.ort_quantize_static`);
- ``modelopt``: NVIDIA ModelOpt's ``modelopt.onnx.quantization.quantize(quantize_mode="int8")`` with its default
  calibration method, on ONNX Runtime's CPU provider, fed by a ``CalibrationDataReader`` a batch at a time;
- ``nncf``: ``nncf.quantize`` on the ONNX model (its ONNX Runtime backend), ``subset_size=N``, one image per item.

The peers run from ``.peers-venv`` (``--peers-venv``), kept apart so the project's venv stays lean: ModelOpt pins
its own ``onnxruntime-gpu`` (whose CPU provider it uses here). The graph is our export of a torchvision-layout
ResNet with random weights and random BatchNorm statistics, simplified and BatchNorm-folded, so every tool gets the
same FP32 graph; the images are synthetic photographs-like JPEGs (smooth colour fields with noise, 300-500 px),
preprocessed once by resnet-deploy's ImageNet transform for the peers. Runs are interleaved tool by tool for each
image count, so load changes on a shared machine hit all tools alike; the machine and its load are recorded.

Writes ``benchmarks/results/calibration_scale.{json,md,png}``. Tiny check: ``--models resnet18 --images 4,8``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TOOLS = ("ours", "ours_npy", "ort", "modelopt", "nncf")
PEER_TOOLS = ("modelopt", "nncf")
PEER_PACKAGES = ["torch==2.13.0", "nvidia-modelopt[onnx]", "nncf"]  # torch pinned first: the CPU build on disk

# What every child shares: its own peak RSS from /proc/self/status (VmHWM), and a .npy read a batch at a time by
# seeking (not memory-mapped: mapped pages would count in the peer's RSS). wait4's ru_maxrss cannot be used: Linux
# carries the parent's high-water mark across fork and exec into the child's, so every child would report at
# least this process's RSS (0.77 GB once the models are exported).
COMMON = r"""
import json, sys, time
import numpy as np
def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
class NpyBatches:
    def __init__(self, path, count, batch):
        self.path, self.count, self.batch = path, count, batch
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            self.offset, self.shape, self.dtype = f.tell(), shape, dtype
    def __iter__(self):
        row = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for start in range(0, self.count, self.batch):
                n = min(self.batch, self.count - start)
                yield np.frombuffer(f.read(n * row), self.dtype).reshape(n, *self.shape[1:]).copy()
def done(**fields):
    print(json.dumps({**fields, "peak_kb": peak_kb()}))
src, npy, n, dst = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
"""

ORT_BODY = r"""
import onnx
from resnet_deploy.precision.calibration import CalibrationData
from resnet_deploy.precision.peers import ort_quantize_static
shape = tuple(NpyBatches(npy, n, 32).shape[1:])
t = time.perf_counter()
model = ort_quantize_static(onnx.load(src), CalibrationData(n, shape, lambda b: NpyBatches(npy, n, b)), batch=32)
onnx.save(model, dst)
done(quantize_seconds=time.perf_counter() - t)
"""

# ModelOpt's documented input: the calibration images as one array (its CLI's --calibration_data_path loads them so)
MODELOPT_BODY = r"""
from modelopt.onnx.quantization import quantize
t = time.perf_counter()
data = np.concatenate(list(NpyBatches(npy, n, 64)))
quantize(src, quantize_mode="int8", calibration_data=data, calibration_eps=["cpu"], output_path=dst, log_level="ERROR")
done(quantize_seconds=time.perf_counter() - t)
"""

NNCF_BODY = r"""
import onnx, nncf
model = onnx.load(src)
name = model.graph.input[0].name
t = time.perf_counter()
q = nncf.quantize(model, nncf.Dataset(NpyBatches(npy, n, 1), lambda x: {name: x}), subset_size=n)
onnx.save(q, dst)
done(quantize_seconds=time.perf_counter() - t)
"""

OURS = r"""
import contextlib, io
from resnet_deploy.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    rc = main(["build", "--onnx", src, "--precision", "int8", "--calib-data", npy, "--calib-samples", str(n),
               "--calib-check", "0", "--json", "-o", dst])
if rc == 0:
    done(build=json.loads(buf.getvalue()))
sys.exit(rc)
"""
BODIES = {"ours": OURS, "ours_npy": OURS, "ort": ORT_BODY, "modelopt": MODELOPT_BODY, "nncf": NNCF_BODY}


def _python(tool: str, peers_venv: Path) -> str:
    return str(peers_venv / "bin" / "python") if tool in PEER_TOOLS else sys.executable


def run_child(argv: list[str], env: dict[str, str] | None = None, timeout: float = 7200) -> dict[str, Any]:
    """Run ``argv``: wall time, exit code, and the JSON line it printed last (with its own peak RSS)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = start + timeout
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, _ = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result: dict[str, Any] = {"rc": proc.returncode, "peak_rss_mb": None, "wall_seconds": round(wall, 2)}
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                result["child"] = json.loads(line)
                result["peak_rss_mb"] = round(result["child"]["peak_kb"] / 1024, 1)
                break
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    if proc.returncode != 0:
        result["error"] = (stderr.strip().splitlines() or ["?"])[-1][:300]
    return result


def prepare_model(arch: str, size: int, path: Path) -> None:
    import onnx
    import torch

    from resnet_deploy.build import export_onnx
    from resnet_deploy.info import ModelInfo
    from resnet_deploy.models import build_model
    from resnet_deploy.models.weights import randomize_batchnorm

    torch.manual_seed(0)
    net = randomize_batchnorm(build_model(arch, 1000, 3), 0).eval()
    proto, _ = export_onnx(net, ModelInfo(arch=arch, input_size=size))
    # the peers get a graph without our metadata: the same graph a user would bring
    del proto.metadata_props[:]
    onnx.save(proto, str(path))


def prepare_images(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` JPEGs in 8 class folders, 300-500 px on a side."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        d = folder / f"class{i % 8}"
        d.mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in rng.integers(300, 500, 2))
        small = (rng.random((h // 16 + 1, w // 16 + 1, 3)) * 255).astype(np.uint8)
        base = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)).astype(np.int16)
        noisy = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(d / f"{i:05d}.jpg", quality=90)


def decode_to_npy(folder: Path, count: int, size: int, path: Path) -> None:
    """The first ``count`` images of ``folder`` (the subset ``build`` calibrates on), preprocessed, as a .npy."""
    from resnet_deploy.data import open_dataset
    from resnet_deploy.info import ModelInfo

    ds = open_dataset(str(folder), ModelInfo(arch="unknown", input_size=size), need_labels=False)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, 3, size, size))
    done = 0
    for x, _ in ds.batches(32, limit=count):
        out[done : done + len(x)] = x
        done += len(x)
    out.flush()
    del out


def setup_peers(venv: Path) -> None:
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, PEER_PACKAGES[0]], check=True)
    subprocess.run([*pip, *PEER_PACKAGES[1:]], check=True)


def peer_versions(venv: Path) -> dict[str, str | None]:
    code = (
        "import json, importlib.metadata as m\n"
        "def v(d):\n    try: return m.version(d)\n    except Exception: return None\n"
        "print(json.dumps({d: v(d) for d in ('nvidia-modelopt', 'nncf', 'onnxruntime-gpu', 'onnxruntime', 'onnx')}))"
    )
    try:
        proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
        return json.loads(proc.stdout)  # type: ignore[no-any-return]
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        return {}


def mem_total_mb() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def projected_peak_mb(runs: list[dict[str, Any]], model: str, tool: str, n: int) -> float | None:
    """The peak RSS of ``tool`` at ``n`` images, extrapolated linearly from its last two runs on ``model``."""
    done = sorted(
        (r["images"], r["peak_rss_mb"]) for r in runs if r["model"] == model and r["tool"] == tool and r["peak_rss_mb"]
    )
    if len(done) < 2:
        return None
    (n0, p0), (n1, p1) = done[-2:]
    return p1 + (p1 - p0) / (n1 - n0) * (n - n1) if n1 != n0 else p1


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from resnet_deploy.benchmark.machine import machine_info

    counts = sorted(int(v) for v in args.images.split(","))
    tools = [t for t in args.tools.split(",") if t]
    folder = work / "images"
    if not folder.exists():
        print(f"writing {max(counts)} JPEGs", flush=True)
        prepare_images(folder, max(counts))
    runs: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for arch in args.models.split(","):
        model = work / f"{arch}_{args.size}.onnx"
        if not model.exists():
            print(f"exporting {arch} at {args.size}", flush=True)
            prepare_model(arch, args.size, model)
        for n in counts:
            npy = work / f"images_{args.size}_{n}.npy"
            if not npy.exists():
                decode_to_npy(folder, n, args.size, npy)
            for tool in tools:
                out = work / f"{arch}_{n}_{tool}.onnx"
                # A tool whose memory grows with the images (ORT's quantize_static keeps every batch's outputs: ~0.1 GB
                # per ResNet-50 image) would take the machine down at 512; it is skipped and the table says why.
                projected = projected_peak_mb(runs, arch, tool, n)
                if projected is not None and projected > 0.8 * mem_total_mb():
                    why = (
                        f"skipped: projected peak {projected / 1024:.0f} GB > 80% of {mem_total_mb() / 1024:.0f} GB RAM"
                    )
                    runs.append(
                        {"model": arch, "size": args.size, "images": n, "tool": tool, "rc": None, "peak_rss_mb": None,
                         "wall_seconds": None, "error": why}
                    )  # fmt: skip
                    print(f"{arch} {n:4d} images {tool:9s} {why}", flush=True)
                    continue
                data = folder if tool == "ours" else npy
                argv = [
                    _python(tool, args.peers_venv),
                    "-c",
                    COMMON + BODIES[tool],
                    str(model),
                    str(data),
                    str(n),
                    str(out),
                ]
                r = run_child(argv, env)
                child = r.pop("child", {}) or {}
                if tool.startswith("ours") and "build" in child:
                    int8 = child["build"]["int8"]
                    r["calibration_seconds"] = int8["timing"].get("all")
                    r["timing"] = int8["timing"]
                    r["batch_size"] = int8["batch_size"]
                    r["quantize_seconds"] = int8["seconds"]
                elif "quantize_seconds" in child:
                    r["quantize_seconds"] = round(child["quantize_seconds"], 2)
                r.update(model=arch, size=args.size, images=n, tool=tool)
                runs.append(r)
                status = "ok" if r["rc"] == 0 else f"FAILED ({r.get('error')})"
                peak = f"{r['peak_rss_mb'] / 1024:5.2f} GB" if r["peak_rss_mb"] else "    ? GB"
                print(
                    f"{arch} {n:4d} images {tool:9s} peak {peak}  wall {r['wall_seconds']:7.1f} s  {status}", flush=True
                )
                out.unlink(missing_ok=True)
    return {
        "machine": machine_info(note=args.note),
        "peers": peer_versions(args.peers_venv),
        "settings": {"models": args.models, "size": args.size, "images": counts, "tools": tools},
        "runs": runs,
    }


def checks(report: dict[str, Any]) -> list[str]:
    """The issue's targets, stated per model from the runs (only where the runs exist)."""
    lines: list[str] = []
    runs = [r for r in report["runs"] if r["rc"] == 0 and r["peak_rss_mb"]]
    counts = report["settings"]["images"]
    lo, hi = min(counts), max(counts)

    def get(model: str, tool: str, n: int) -> dict[str, Any] | None:
        return next((r for r in runs if r["model"] == model and r["tool"] == tool and r["images"] == n), None)

    for model in dict.fromkeys(r["model"] for r in runs):
        a, b = get(model, "ours", lo), get(model, "ours", hi)
        if a and b:
            ratio = b["peak_rss_mb"] / a["peak_rss_mb"]
            lines.append(f"{model}: our peak at {hi} images is {ratio:.2f}x the peak at {lo} (target <= 1.15)")
        m = get(model, "modelopt", hi)
        if b and m:
            lines.append(
                f"{model}: our peak {b['peak_rss_mb'] / 1024:.2f} GB vs ModelOpt {m['peak_rss_mb'] / 1024:.2f} GB at "
                f"{hi} images (target: at most ModelOpt's; goal under 1.5 GB)"
            )
        nn = get(model, "nncf", hi)
        if b and nn:
            lines.append(
                f"{model}: our wall {b['wall_seconds']:.1f} s vs NNCF {nn['wall_seconds']:.1f} s at {hi} images "
                "(target: at most NNCF's; whole processes, imports and model loading included)"
            )
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    m = report["machine"]
    lines = [
        "# INT8 calibration at scale: peak RSS and wall time",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, {m['os']}; load average at start "
        f"{m['loadavg_at_start']}. ONNX Runtime {m['onnxruntime']} (ours, ORT); peers: {report['peers']}.",
        "",
        "Each cell: peak RSS of the whole process / wall time of the whole process (imports, model loading, "
        "calibration, writing). `python benchmarks/calibration_scale.py` regenerates this file.",
        "",
    ]
    runs = report["runs"]
    tools = report["settings"]["tools"]
    for model in dict.fromkeys(r["model"] for r in runs):
        lines += [f"## {model} at {report['settings']['size']}", ""]
        lines.append("| images | " + " | ".join(tools) + " |")
        lines.append("|---:|" + "---:|" * len(tools))
        for n in report["settings"]["images"]:
            cells = []
            for tool in tools:
                r = next((x for x in runs if x["model"] == model and x["images"] == n and x["tool"] == tool), None)
                if r is None:
                    cells.append("-")
                elif r["rc"] is None:
                    cells.append(r["error"])
                elif r["rc"] != 0 or not r["peak_rss_mb"]:
                    cells.append(f"failed: {r.get('error', '?')[:60]}")
                else:
                    cells.append(f"{r['peak_rss_mb'] / 1024:.2f} GB / {r['wall_seconds']:.0f} s")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        ours = [r for r in runs if r["model"] == model and r["tool"] == "ours" and r["rc"] == 0]
        if ours:
            lines += ["", "Ours, calibration alone: " + ", ".join(
                f"{r['images']} images {r.get('calibration_seconds')} s (batch {r.get('batch_size')})" for r in ours
            )]  # fmt: skip
        lines.append("")
    found = checks(report)
    if found:
        lines += ["## Targets", "", *[f"- {c}" for c in found], ""]
    path.write_text("\n".join(lines) + "\n")


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in report["runs"] if r["rc"] == 0 and r["peak_rss_mb"]]
    models = list(dict.fromkeys(r["model"] for r in runs))
    if not models:
        return
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 3.6 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for col, (key, label, scale) in enumerate(
            [("peak_rss_mb", "peak RSS (GB)", 1 / 1024), ("wall_seconds", "wall time (s)", 1.0)]
        ):
            ax = axes[row][col]
            for tool in report["settings"]["tools"]:
                pts = sorted((r["images"], r[key] * scale) for r in runs if r["model"] == model and r["tool"] == tool)
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=tool)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("calibration images")
            ax.set_ylabel(label)
            ax.set_title(f"{model} at {report['settings']['size']}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"INT8 calibration, {report['machine']['cpu']} ({report['machine']['cores']} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet50,resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", default="32,128,512")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, from {', '.join(TOOLS)}")
    p.add_argument("--peers-venv", type=Path, default=ROOT / ".peers-venv")
    p.add_argument("--setup-peers", action="store_true", help="create/complete the peers' venv and exit")
    p.add_argument("--work", type=Path, help="keep models and images here (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=RESULTS / "calibration_scale", help="writes OUT.json/.md/.png")
    p.add_argument("--note", help="recorded with the machine (e.g. 'quiet machine')")
    args = p.parse_args(argv)
    if args.setup_peers:
        setup_peers(args.peers_venv)
        print(f"peers installed in {args.peers_venv}: {peer_versions(args.peers_venv)}")
        return 0
    missing = [t for t in args.tools.split(",") if t in PEER_TOOLS] and not (
        args.peers_venv / "bin" / "python"
    ).exists()
    if missing:
        print(f"no peers venv at {args.peers_venv}: run with --setup-peers first", file=sys.stderr)
        return 2
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        report = measure(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="calibration_scale_") as d:
            report = measure(args, Path(d))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, Path(f"{args.out}.md"))
    write_plot(report, Path(f"{args.out}.png"))
    for line in checks(report):
        print(line)
    print(f"wrote {args.out}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
