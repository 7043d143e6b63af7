"""What a benchmark was measured on, and the peaks it is compared with."""

from __future__ import annotations

import pytest

from resnet_deploy.benchmark.machine import cpu_peak_gflops, gpu_peak_gops, machine_info


def test_cpu_peak_estimate_states_its_basis() -> None:
    peak, basis = cpu_peak_gflops({"avx2", "fma"}, 2, 2445.408)
    assert peak == pytest.approx(2 * 2.445408 * 32, abs=0.1)
    assert "32 FLOP/cycle" in basis and "2 cores" in basis
    assert cpu_peak_gflops({"avx512f", "avx2", "fma"}, 4, 2000.0)[0] == pytest.approx(4 * 2.0 * 64)
    assert cpu_peak_gflops({"sse4_2"}, 2, 2000.0)[0] is None
    assert cpu_peak_gflops({"avx2", "fma"}, 2, None)[0] is None


def test_gpu_peaks_from_anchors() -> None:
    assert gpu_peak_gops("NVIDIA H100 80GB HBM3", "int8")[0] == 1_979_000.0
    assert gpu_peak_gops("NVIDIA H100 80GB HBM3", "fp16")[0] == 989_000.0
    assert gpu_peak_gops("NVIDIA GeForce GTX 1080", "fp16")[0] is None


def test_machine_block_names_the_machine() -> None:
    m = machine_info(threads=2, note="shared")
    for key in ("cpu", "cores", "isa", "ram_gib", "os", "python", "onnxruntime", "torch"):
        assert key in m
    assert set(m["isa"]) >= {"avx2", "avx512_vnni"}
    assert m["note"] == "shared" and m["threads_used"] == 2
