"""The scripts under benchmarks/ that must run anywhere: no GPU, tiny reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.benchmark import (
    BenchConfig,
    Target,
    run_benchmark,
    write_json,
)

SCRIPTS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_gpu_baselines_script_exits_cleanly_without_gpu(tmp_path: Path) -> None:
    import subprocess
    import sys

    from resnet_deploy.benchmark.gpu import cuda_available

    if cuda_available():
        pytest.skip("a GPU is visible: the script would measure")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "gpu_baselines.py"), "--out", str(tmp_path / "gpu")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0
    assert "no CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "gpu").exists()


def test_check_timing_script_on_a_tiny_report(resnet20: tuple, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = resnet20[0]
    t = Target("resnet20 fp32 onnxruntime", OnnxRuntimeModel(path, threads=1), str(path))
    report = run_benchmark([t], BenchConfig(batches=[1], duration_s=0.1, warmup_ms=0, min_iterations=3, threads=1))
    write_json(report, tmp_path / "bench.json")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "check_timing.py"), "--report", str(tmp_path / "bench.json")]
        + ["--duration", "0.1", "--min-iterations", "3", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "check_timing.json").read_text())
    (check,) = data["checks"]
    assert check["batch"] == 1 and check["bare_median_ms"] > 0 and check["same_time"]["tool_median_ms"] > 0
    assert "| resnet20 fp32 onnxruntime | 1 |" in (tmp_path / "check_timing.md").read_text()
