"""benchmarks/bench_residual_kernel.py without a GPU: it imports, parses its arguments, and says clearly that it
measured nothing. (Its GPU path is exercised only by running it on a GPU.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from ._scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_residual_kernel.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_residual_kernel")


def test_arguments(bench: ModuleType) -> None:
    args = bench.parse_args(["--dtypes", "float16,int8", "--quick"])
    assert args.dtypes == ["float16", "int8"] and args.quick
    with pytest.raises(SystemExit):
        bench.parse_args(["--dtypes", "bfloat16"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the script would really run")
def test_without_gpu_it_says_so_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "no CUDA GPU" in proc.stdout and "nothing was measured" in proc.stdout
    assert not list(tmp_path.iterdir())  # no results invented


def test_int8_reference_is_onnx_rounding(bench: ModuleType) -> None:
    a = np.array([1, 3, 5, 127, -128], np.int8)
    b = np.array([0, 0, 0, 127, 0], np.int8)
    np.testing.assert_array_equal(bench._int8_reference(a, b, 0.5, 0.5, 1.0), [0, 2, 2, 127, 0])


def test_device_check_script_parses_and_names_both_benchmarks() -> None:
    """benchmarks/run_device_checks.sh is what a session with a lent GPU runs: it must at least be valid bash."""
    import subprocess

    script = SCRIPT.parent / "run_device_checks.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "bench_residual_kernel.py --build" in text and "gpu_baselines.py" in text
