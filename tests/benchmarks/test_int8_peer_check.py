"""benchmarks/int8_peer_check.py: the verdict rule, the executed-program comparison on real runtimes, and one tiny
paired cell end to end (real ONNX Runtime and OpenVINO; our own INT8 graphs stand in for the peers' files, as NNCF
is only in the cpu-peers extra)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import pytest

from ._scripts import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    pytest.importorskip("openvino", reason="the script measures OpenVINO: the openvino extra is not installed")
    return load_script("int8_peer_check")


@pytest.fixture(scope="module")
def files(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from resnet_deploy.build import BuildOptions, build

    work = tmp_path_factory.mktemp("peer_check")
    fp32, int8 = work / "m_fp32.onnx", work / "m_int8.onnx"
    build(BuildOptions(output=fp32, weights="fmnist_resnet20"))
    opts = BuildOptions(output=int8, onnx=fp32, precision="int8", calib_data="synthetic", calib_samples=8)
    opts.int8.check_samples, opts.int8.cache_path = 0, work / "m_calib.json"
    build(opts)
    out = script.graph_files(work, "m")
    assert script.build_openvino_int8(work, "m") == out["int8_openvino"]  # from the cache the int8 build wrote
    for key in ("ortq_u8",):
        shutil.copyfile(int8, out[key])
    shutil.copyfile(out["int8_openvino"], out["nncf"])
    return out


def test_verdict_met_tie_and_not_met(script: ModuleType) -> None:
    aa = {"median": 1.0, "min": 0.97, "max": 1.02}
    assert script.verdict({"median": 0.99, "min": 0.9, "max": 1.1}, aa) == "MET"
    assert script.verdict({"median": 1.0, "min": 1.0, "max": 1.0}, aa) == "MET"
    assert script.verdict({"median": 1.025, "min": 1.0, "max": 1.05}, aa) == "TIE"  # within the 3 % A/A spread
    assert script.verdict({"median": 1.05, "min": 1.0, "max": 1.1}, aa) == "NOT MET"


def test_the_same_file_executes_the_same_program_on_both_runtimes(script: ModuleType, files: dict) -> None:
    progs = script.programs(files)
    assert progs["openvino"]["identical"] and progs["onnxruntime"]["identical"]
    # our ONNX Runtime placement becomes integer kernels on both runtimes (the point of the placement)
    assert any(k.startswith("Convolution") and " u8->" in k for k in progs["openvino"]["ours"])
    assert progs["onnxruntime"]["ours"].get("QLinearConv", 0) > 0


def test_the_fp32_graph_differs_from_ours(script: ModuleType, files: dict) -> None:
    swapped = {**files, "nncf": files["int8"].with_name("m_fp32.onnx")}  # the peer's file: FP32
    progs = script.programs(swapped)
    assert not progs["openvino"]["identical"] and progs["openvino"]["differences (ours, peer)"]


def test_one_tiny_cell_end_to_end(script: ModuleType, files: dict, tmp_path: Path) -> None:
    from resnet_deploy.benchmark import BenchConfig

    cfg = BenchConfig(duration_s=0.05, warmup_ms=0, min_iterations=2, rounds=1)
    cell = script.measure_cell(files, batch=2, threads=1, cfg=cfg, repeats=2)
    assert cell["repeats"] == 2 and len(cell["medians_ms_per_repeat"]) == 2
    assert set(cell["median_ms"]) == set(script.CANDIDATES)
    for a, b, r in zip(cell["fastest_ours_ms"], cell["fastest_peer_ms"], [cell["ratio_ours_to_peer"]] * 2,
                       strict=True):  # fmt: skip
        assert r["min"] <= a / b <= r["max"]
    assert cell["verdict"] in ("MET", "TIE", "NOT MET")
    result = {"machine": {"cpu": "x", "cores": 2}, "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0],
              "config": {"warmup_ms": 0, "min_iterations": 2, "duration_s": 0.05}, "repeats": 2,
              "cells": {"m": [cell]}, "programs": {"m": script.programs(files)}}  # fmt: skip
    md = script.to_markdown(result)
    assert "| m | 2 | 1 |" in md and "execute the same program" in md
