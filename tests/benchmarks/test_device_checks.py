"""benchmarks/run_device_checks.sh and benchmarks/device_checks.py without a GPU: the shell script parses and keeps
its time budget, the Python checks import and skip cleanly, with one line per part. (Their GPU paths run only on a
lent GPU: `bash benchmarks/run_device_checks.sh` there.)"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ._scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "run_device_checks.sh"
CHECKS = ROOT / "benchmarks" / "device_checks.py"


@pytest.fixture(scope="module")
def checks() -> ModuleType:
    return load_script("device_checks")


def test_the_shell_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_script_runs_the_three_parts_of_issue_13(checks: ModuleType) -> None:
    text = SCRIPT.read_text()
    assert "benchmarks/device_checks.py" in text and '--out "$OUT/device_checks"' in text
    for part in ("check_plugin_launch", "check_graphs", "check_chunks"):
        assert callable(getattr(checks, part))


@pytest.mark.skipif(shutil.which("timeout") is None, reason="coreutils timeout missing")
def test_without_time_left_every_step_is_skipped_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "DEVICE_CHECKS_BUDGET": "1", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    steps = [line for line in summary if line.split(" ", 1)[0] in ("PASS", "FAIL", "SKIP", "PARTIAL")]
    assert [s.split(":")[0] for s in steps] == [
        "SKIP device_checks",
        "SKIP bench_residual_kernel",
        "SKIP gpu_baselines",
    ]
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_device_checks_skip_cleanly_without_a_gpu(checks: ModuleType, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the checks run for real (benchmarks/run_device_checks.sh)")
    proc = subprocess.run(
        [sys.executable, str(CHECKS), "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["SKIP plugin-launch", "SKIP graphs", "SKIP chunks"]
    assert checks.why_not_here() is not None


@pytest.mark.cuda
def test_device_checks_pass_on_a_gpu(tmp_path: Path) -> None:
    """On a CUDA GPU (no TensorRT needed): the three parts of issue #13's device checks pass."""
    pytest.importorskip("cuda.bindings", reason="cuda-python is not installed")
    proc = subprocess.run(
        [sys.executable, str(CHECKS), "--out", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [ln.split(":")[0] for ln in proc.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))] == [
        "PASS plugin-launch",
        "PASS graphs",
        "PASS chunks",
    ]
