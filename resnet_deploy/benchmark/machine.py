"""What the numbers were measured on, and the peak arithmetic rate of that machine where it can be stated."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from ..backends.cpus import cpu_budget

# Flags that decide which kernels ONNX Runtime and PyTorch pick on x86 (and thus the speed of INT8 and FP32).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "f16c")

# NVIDIA's datasheet dense (no sparsity) rates, in GOPS. See /work/shared/notes/anchors.md.
GPU_PEAKS_GOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"int8": 1_979_000.0, "fp16": 989_000.0, "fp32": 67_000.0},
    "H100 PCIe": {"int8": 1_513_000.0, "fp16": 756_000.0, "fp32": 51_000.0},
    "H200": {"int8": 1_979_000.0, "fp16": 989_000.0, "fp32": 67_000.0},
}


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory_bytes() -> int | None:
    """Memory the kernel says a new allocation can get without swapping (``MemAvailable``), or None off Linux."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"') + f" (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def cpu_peak_gflops(flags: set[str], cores: int, mhz: float | None) -> tuple[float | None, str]:
    """FP32 peak of the CPU as cores x GHz x FLOP/cycle, with the basis spelled out; None if it cannot be stated.

    FLOP/cycle assumes two FMA pipes per core (AMD Zen 2-4, Intel client/server cores since Haswell): AVX-512
    gives 2 x 16 lanes x 2 = 64, AVX2+FMA 2 x 8 x 2 = 32. The clock is the one /proc/cpuinfo reports, which on a
    VM is the hypervisor's nominal clock; boost can be higher, so the real ceiling may be somewhat above this.
    """
    if not mhz or cores <= 0:
        return None, "unknown clock: CPU peak not estimated"
    if "avx512f" in flags:
        per_cycle, isa = 64, "AVX-512 (2 FMA pipes x 16 fp32 lanes x 2)"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, isa = 32, "AVX2+FMA (2 FMA pipes x 8 fp32 lanes x 2)"
    else:
        return None, "no AVX2/FMA: CPU peak not estimated"
    ghz = mhz / 1000
    peak = cores * ghz * per_cycle
    return round(peak, 1), f"estimate: {cores} cores x {ghz:.3f} GHz (/proc/cpuinfo) x {per_cycle} FLOP/cycle, {isa}"


def machine_info(gpu_name: str | None = None, threads: int | None = None, note: str | None = None) -> dict[str, Any]:
    """The report's ``machine`` block."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    cores = os.cpu_count() or 0
    mhz: float | None
    try:
        mhz = float(info["cpu MHz"])
    except (KeyError, ValueError):
        mhz = None
    peak, basis = cpu_peak_gflops(flags, cores, mhz)
    budget = cpu_budget()
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    block: dict[str, Any] = {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}" if info else None,
        "cores": cores,
        # what the CPU runtimes were given: --threads, else the cores affinity and cgroup quota grant
        "threads_used": threads or budget.threads,
        "cpu_budget": budget.describe(),
        "onnxruntime_spinning": False,
        "cpu_mhz": mhz,
        "isa": {f: f in flags for f in ISA_FLAGS},
        "hypervisor": "hypervisor" in flags,
        "ram_gib": _ram_gib(),
        "os": _os_name(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "numpy": _version("numpy"),
        "cpu_peak_fp32_gflops": peak,
        "cpu_peak_source": basis,
        "loadavg_at_start": load,
        "gpu": gpu_name,
    }
    if note:
        block["note"] = note
    return block


def gpu_peak_gops(gpu_name: str, precision: str) -> tuple[float | None, str]:
    """Datasheet dense peak for a known GPU and precision (H100 SXM reports itself as "H100 80GB HBM3")."""
    name = gpu_name.upper()
    if "H200" in name:
        key = "H200"
    elif "H100" in name:
        key = "H100 PCIe" if "PCIE" in name else "H100 SXM"
    else:
        return None, f"no datasheet peak recorded for {gpu_name}"
    peak = GPU_PEAKS_GOPS[key].get(precision)
    if peak is None:
        return None, f"no datasheet peak recorded for {key} {precision}"
    source = f"NVIDIA datasheet, {key} dense {precision.upper()}"
    if precision == "fp32":
        source += " (CUDA cores; PyTorch may run FP32 convolutions as TF32 on tensor cores, a higher ceiling)"
    return peak, source


def peak_gops(machine: dict[str, Any], device: str, precision: str) -> tuple[float | None, str]:
    """Peak rate for a result row: the GPU's datasheet figure, or the CPU FP32 estimate (FP32 rows only).

    CPU INT8/FP16 peaks are not estimated: without a documented per-instruction rate for the u8s8 sequences
    ONNX Runtime uses (VNNI or not), any figure would be a guess.
    """
    if device == "cuda":
        name = machine.get("gpu") or ""
        return gpu_peak_gops(name, precision) if name else (None, "GPU unknown")
    if precision == "fp32":
        return machine.get("cpu_peak_fp32_gflops"), str(machine.get("cpu_peak_source"))
    return None, f"CPU {precision} peak not estimated (no documented per-instruction basis)"
