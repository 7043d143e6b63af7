"""GPU check and bandwidth benchmark of the fused residual add + ReLU kernels (kernels/, C ABI via ctypes).

    python benchmarks/bench_residual_kernel.py [--build] [--kernels-dir DIR] [--quick]

1. Correctness against PyTorch on the GPU for many sizes (odd ones, tails) and pointer offsets (aligned,
   misaligned, and mutually misaligned a/b/y), outputs and guard zones poisoned before every run:
   FP32 exact vs ``torch.relu(a + b)``, FP16 within 1 ulp of it, INT8 exact vs ONNX QuantizeLinear semantics
   (numpy float32 reference, the same the CPU tests compare against ONNX Runtime).
2. Bandwidth (bytes read + written / GPU time) against a device-to-device copy of the same tensor and against
   PyTorch's ``torch.relu(a + b)``, all timed in the same run with CUDA graphs of back-to-back launches (so Python
   launch overhead does not count). Targets: >= 85 % of the copy's bytes/s for tensors >= 64 MB; never slower
   than PyTorch at any size.

Writes benchmarks/results/residual_kernel_<gpu>.json and .md naming the GPU. Exits 2 without a CUDA GPU (nothing
is measured), 1 if any correctness check fails, 0 otherwise (``--strict``: also 1 if a speed target is missed).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
MB = 1 << 20

# Element counts: tiny, odd, around vector/block boundaries, ResNet activation sizes (+1 for a tail).
CHECK_SIZES = [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 255, 256, 257, 1023, 1025, 2047, 2049, 4097]
CHECK_SIZES += [65_535, 65_537, 64 * 56 * 56, 64 * 56 * 56 + 1, 3 * 256 * 28 * 28 + 3, (1 << 22) + 7, (1 << 24) + 5]
# (offset of a, b, y) in elements from a 256-byte aligned base.
OFFSETS = [(0, 0, 0), (1, 1, 1), (3, 3, 3), (7, 7, 7), (1, 0, 0), (0, 2, 1), (5, 9, 13)]
INT8_SCALES = [(0.5, 0.5, 1.0), (1.0, 1.0, 0.5), (0.02, 0.031, 0.047), (0.0123, 0.0456, 0.0101)]
BENCH_BYTES = [64 << 10, 256 << 10, 1 * MB, 4 * MB, 16 * MB, 64 * MB, 256 * MB, 512 * MB]
GUARD = 64  # poisoned elements either side of y
DTYPES = ("float32", "float16", "int8")


@dataclass
class Check:
    dtype: str
    n: int
    offsets: tuple[int, int, int]
    ok: bool
    detail: str


@dataclass
class Timing:
    dtype: str
    bytes_per_tensor: int
    n: int
    kernel_us: float
    kernel_gbps: float
    copy_gbps: float
    torch_us: float
    torch_gbps: float
    vs_copy: float
    speedup_vs_torch: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--kernels-dir", type=Path, help="kernel build folder (default: $RESNET_DEPLOY_KERNELS_DIR or build/kernels)"
    )
    ap.add_argument("--build", action="store_true", help="build the kernels with CMake first if they are not built")
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated subset of float32,float16,int8")
    ap.add_argument("--quick", action="store_true", help="fewer sizes (smoke test)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--strict", action="store_true", help="exit 1 when a speed target is missed")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in args.dtypes if d not in DTYPES]
    if bad or not args.dtypes:
        ap.error(f"--dtypes must be a subset of {','.join(DTYPES)} (got {bad or 'nothing'})")
    return args


def load_library(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    vp, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    for name in ("rd_residual_add_relu_f32", "rd_residual_add_relu_f16"):
        getattr(lib, name).argtypes = [vp, vp, vp, i64, vp]
        getattr(lib, name).restype = ctypes.c_int
    lib.rd_residual_add_relu_i8.argtypes = [vp, vp, vp, i64, f32, f32, f32, vp]
    lib.rd_residual_add_relu_i8.restype = ctypes.c_int
    lib.rd_error_string.argtypes = [ctypes.c_int]
    lib.rd_error_string.restype = ctypes.c_char_p
    lib.rd_abi_version.restype = ctypes.c_int
    if lib.rd_abi_version() != 1:
        raise SystemExit(f"{path}: unexpected kernel ABI version {lib.rd_abi_version()}")
    return lib


class Kernels:
    """Launches on torch's current stream (so CUDA graph capture records them)."""

    def __init__(self, lib: ctypes.CDLL, torch: Any) -> None:
        self.lib, self.torch = lib, torch

    def __call__(self, a: Any, b: Any, y: Any, scales: tuple[float, float, float] | None = None) -> None:
        stream = ctypes.c_void_p(self.torch.cuda.current_stream().cuda_stream)
        n = a.numel()
        if a.dtype == self.torch.float32:
            rc = self.lib.rd_residual_add_relu_f32(a.data_ptr(), b.data_ptr(), y.data_ptr(), n, stream)
        elif a.dtype == self.torch.float16:
            rc = self.lib.rd_residual_add_relu_f16(a.data_ptr(), b.data_ptr(), y.data_ptr(), n, stream)
        else:
            sa, sb, sy = scales or (1.0, 1.0, 1.0)
            rc = self.lib.rd_residual_add_relu_i8(a.data_ptr(), b.data_ptr(), y.data_ptr(), n, sa, sb, sy, stream)
        if rc != 0:
            raise RuntimeError(f"kernel launch failed: {self.lib.rd_error_string(rc).decode()}")


def _tdtype(torch: Any, dtype: str) -> Any:
    return {"float32": torch.float32, "float16": torch.float16, "int8": torch.int8}[dtype]


def _random(torch: Any, dtype: str, n: int, gen: Any) -> Any:
    if dtype == "int8":
        return torch.randint(-128, 128, (n,), dtype=torch.int8, device="cuda", generator=gen)
    return (torch.randn(n, device="cuda", generator=gen) * 3).to(_tdtype(torch, dtype))


def _poison(torch: Any, t: Any) -> None:
    if t.dtype == torch.int8:
        t.fill_(0x5A)  # 90: a value relu/quantize can produce, so it is caught only by comparison
    else:
        t.fill_(float("nan"))


def _int8_reference(a: np.ndarray, b: np.ndarray, sa: float, sb: float, sy: float) -> np.ndarray:
    f32 = np.float32
    v = np.maximum(a.astype(f32) * f32(sa) + b.astype(f32) * f32(sb), f32(0))
    return np.clip(np.rint(v / f32(sy)), -128, 127).astype(np.int8)


def check_case(torch: Any, run: Kernels, dtype: str, n: int, offs: tuple[int, int, int], gen: Any, k: int) -> Check:
    """One launch on sliced views of poisoned, guarded buffers; returns what (if anything) is wrong."""
    td = _tdtype(torch, dtype)
    oa, ob, oy = offs
    base_a = _random(torch, dtype, n + oa + 1, gen)
    base_b = _random(torch, dtype, n + ob + 1, gen)
    base_y = torch.empty(n + oy + 2 * GUARD, dtype=td, device="cuda")
    a, b = base_a[oa : oa + n], base_b[ob : ob + n]
    y = base_y[GUARD + oy : GUARD + oy + n]
    _poison(torch, base_y)
    scales = INT8_SCALES[k % len(INT8_SCALES)] if dtype == "int8" else None
    run(a, b, y, scales)
    torch.cuda.synchronize()
    guard = torch.cat([base_y[: GUARD + oy], base_y[GUARD + oy + n :]])
    if dtype == "int8":
        if not bool((guard == 0x5A).all()):
            return Check(dtype, n, offs, False, "wrote outside y")
        want = _int8_reference(a.cpu().numpy(), b.cpu().numpy(), *scales)  # type: ignore[misc]
        bad = int((y.cpu().numpy() != want).sum())
        return Check(dtype, n, offs, bad == 0, f"{bad} mismatches (scales {scales})")
    if not bool(torch.isnan(guard).all()):
        return Check(dtype, n, offs, False, "wrote outside y")
    want = torch.relu(a + b)
    if dtype == "float32":
        bad = int((y != want).sum())  # NaN poison left anywhere counts as a mismatch
        return Check(dtype, n, offs, bad == 0, f"{bad} mismatches")
    # FP16: ulp distance on the bit patterns; both are >= 0 (or -0), so the int16 views are ordered.
    yi = y.view(torch.int16).to(torch.int32).masked_fill(y == 0, 0)
    wi = want.view(torch.int16).to(torch.int32).masked_fill(want == 0, 0)
    nan = int(torch.isnan(y).sum())
    ulp = int((yi - wi).abs().max()) if n else 0
    return Check(dtype, n, offs, nan == 0 and ulp <= 1, f"max {ulp} ulp, {nan} NaN")


def gpu_time_us(torch: Any, fn: Any, per_graph: int, target_ms: float = 30.0) -> tuple[float, str]:
    """Median GPU time of one ``fn()``: a CUDA graph of ``per_graph`` calls replayed until ~``target_ms``;
    falls back to event-timed loops if capture fails."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    method = "cuda-graph"
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            for _ in range(per_graph):
                fn()

        def replay() -> None:
            graph.replay()

    except Exception:  # capture unsupported for this launch path: time plain launches instead
        method = "events"

        def replay() -> None:
            for _ in range(per_graph):
                fn()

    start.record()
    replay()
    end.record()
    torch.cuda.synchronize()
    reps = max(1, int(target_ms / max(start.elapsed_time(end), 1e-3)))
    samples = []
    for _ in range(5):
        start.record()
        for _ in range(reps):
            replay()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) * 1000.0 / (reps * per_graph))
    return statistics.median(samples), method


def bench_size(torch: Any, run: Kernels, dtype: str, nbytes: int, gen: Any) -> tuple[Timing, str]:
    td = _tdtype(torch, dtype)
    itemsize = torch.empty(0, dtype=td).element_size()
    n = nbytes // itemsize
    a, b = _random(torch, dtype, n, gen), _random(torch, dtype, n, gen)
    y = torch.empty_like(a)
    per_graph = 20 if nbytes < 16 * MB else 4
    scales = (0.02, 0.031, 0.047)
    kernel_us, method = gpu_time_us(torch, lambda: run(a, b, y, scales), per_graph)
    copy_us, _ = gpu_time_us(torch, lambda: y.copy_(a), per_graph)
    # For int8 PyTorch has no add+relu with requantisation; its plain int8 relu(a + b) stands in for it.
    torch_us, _ = gpu_time_us(torch, lambda: torch.relu(a + b), per_graph)
    moved = 3 * n * itemsize  # read a and b, write y
    kernel_gbps = moved / kernel_us / 1e3
    copy_gbps = 2 * n * itemsize / copy_us / 1e3
    torch_gbps = moved / torch_us / 1e3
    return (
        Timing(
            dtype,
            nbytes,
            n,
            round(kernel_us, 3),
            round(kernel_gbps, 1),
            round(copy_gbps, 1),
            round(torch_us, 3),
            round(torch_gbps, 1),
            round(kernel_gbps / copy_gbps, 3),
            round(torch_us / kernel_us, 3),
        ),
        method,
    )


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Fused residual add + ReLU kernel on {report['gpu']}",
        "",
        f"Measured {report['date']} with `benchmarks/bench_residual_kernel.py`; compute capability "
        f"{report['compute_capability']}, driver/runtime CUDA {report['cuda_runtime']}, PyTorch {report['torch']}, "
        f"kernels built by nvcc {report['kernels']['nvcc_version']}. Timing: {report['timing_method']}.",
        "",
        f"Correctness: {report['checks_passed']}/{report['checks_total']} cases passed "
        "(FP32 exact and FP16 within 1 ulp of `torch.relu(a + b)`, INT8 exact vs ONNX QuantizeLinear semantics).",
        "",
        "| dtype | MB per tensor | kernel µs | kernel GB/s | copy GB/s | kernel / copy | torch µs | vs torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in report["bandwidth"]:
        lines.append(
            f"| {t['dtype']} | {t['bytes_per_tensor'] / MB:g} | {t['kernel_us']} | {t['kernel_gbps']} | "
            f"{t['copy_gbps']} | {t['vs_copy']:.1%} | {t['torch_us']} | {t['speedup_vs_torch']}x |"
        )
    tg = report["targets"]
    lines += [
        "",
        f"- >= 85 % of copy bandwidth for tensors >= 64 MB: **{'met' if tg['copy_85pct_met'] else 'MISSED'}** "
        f"(worst {tg['worst_vs_copy_ge_64mb']:.1%})",
        f"- never slower than PyTorch add+relu: **{'met' if tg['never_slower_than_torch'] else 'MISSED'}** "
        f"(worst speed-up {tg['worst_speedup_vs_torch']}x)",
        "",
        "GB/s counts bytes read + written (3 tensors for the kernel and PyTorch, 2 for the copy).",
        "For int8, PyTorch's `relu(a + b)` on int8 tensors (wrapping, no requantisation) is the speed reference.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(
            "bench_residual_kernel: no CUDA GPU is visible (torch.cuda.is_available() is False); nothing was measured."
        )
        return 2

    from resnet_deploy._io import atomic_write_text
    from resnet_deploy.benchmark.machine import machine_info
    from resnet_deploy.errors import UserError
    from resnet_deploy.kernels import build_kernels, find_kernels

    try:
        artifacts = find_kernels(args.kernels_dir)
    except UserError:
        if not args.build:
            raise
        artifacts = build_kernels(args.kernels_dir)
    run = Kernels(load_library(artifacts.library), torch)
    gpu = torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    gen = torch.Generator(device="cuda").manual_seed(args.seed)

    sizes = CHECK_SIZES[::3] if args.quick else CHECK_SIZES
    checks: list[Check] = []
    k = 0
    for dtype in args.dtypes:
        for n in sizes:
            for offs in OFFSETS if n < (1 << 22) else OFFSETS[:3]:
                checks.append(check_case(torch, run, dtype, n, offs, gen, k))
                k += 1
    failed = [c for c in checks if not c.ok]
    for c in failed[:20]:
        print(f"FAIL {c.dtype} n={c.n} offsets={c.offsets}: {c.detail}")
    print(f"correctness: {len(checks) - len(failed)}/{len(checks)} cases passed")

    timings: list[Timing] = []
    methods = set()
    bench_bytes = BENCH_BYTES[::2] + [BENCH_BYTES[-1]] if args.quick else BENCH_BYTES
    for dtype in args.dtypes:
        for nbytes in bench_bytes:
            t, method = bench_size(torch, run, dtype, nbytes, gen)
            methods.add(method)
            timings.append(t)
            print(
                f"{dtype:8s} {nbytes / MB:8.2f} MB  kernel {t.kernel_gbps:7.1f} GB/s ({t.vs_copy:6.1%} of copy "
                f"{t.copy_gbps:7.1f})  torch {t.torch_gbps:7.1f} GB/s  speed-up {t.speedup_vs_torch:5.2f}x"
            )
            torch.cuda.empty_cache()

    big = [t for t in timings if t.bytes_per_tensor >= 64 * MB]
    targets = {
        "worst_vs_copy_ge_64mb": min((t.vs_copy for t in big), default=float("nan")),
        "copy_85pct_met": bool(big) and all(t.vs_copy >= 0.85 for t in big),
        "worst_speedup_vs_torch": min(t.speedup_vs_torch for t in timings),
        "never_slower_than_torch": all(t.speedup_vs_torch >= 1.0 for t in timings),
    }
    report: dict[str, Any] = {
        "format": "resnet-deploy-residual-kernel-bench/1",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "gpu": gpu,
        "compute_capability": f"{major}.{minor}",
        "cuda_runtime": torch.version.cuda,
        "torch": torch.__version__,
        "machine": machine_info(gpu_name=gpu),
        "kernels": {
            "nvcc_version": artifacts.nvcc_version,
            "archs": artifacts.archs,
            "library": artifacts.library.name,
        },
        "timing_method": ", ".join(sorted(methods)),
        "checks_total": len(checks),
        "checks_passed": len(checks) - len(failed),
        "failed_checks": [asdict(c) for c in failed],
        "bandwidth": [asdict(t) for t in timings],
        "targets": targets,
    }
    slug = re.sub(r"[^a-z0-9]+", "_", gpu.lower()).strip("_")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / f"residual_kernel_{slug}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out_dir / f"residual_kernel_{slug}.md", markdown(report))
    print(f"wrote {args.out_dir}/residual_kernel_{slug}.json and .md")
    if failed:
        return 1
    if args.strict and not (targets["copy_85pct_met"] and targets["never_slower_than_torch"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
