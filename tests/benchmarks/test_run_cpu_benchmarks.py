"""benchmarks/run_cpu_benchmarks.py's own machinery: the bounded busy process of the contention run (stopped by PID,
and ending by itself), and the verdict of the issue's INT8 bar on a report."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import pytest

from ._scripts import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    pytest.importorskip("openvino", reason="the script measures OpenVINO: the openvino extra is not installed")
    return load_script("run_cpu_benchmarks")


def test_busy_process_is_stopped_by_pid_when_the_block_ends(script: ModuleType) -> None:
    with script.BusyProcess(limit_s=120.0, cpu=None) as busy:
        assert busy.alive()
        pid = busy.proc.pid
    assert busy.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_busy_process_ends_by_itself_at_its_limit(script: ModuleType) -> None:
    with script.BusyProcess(limit_s=0.2, cpu=None) as busy:
        busy.proc.wait(timeout=60)  # a bound, not a timing assertion: it must end on its own well before this
        assert not busy.alive()


def row(model: str, batch: int, median: float, group: str = "resnet50@224 1t", threads: int = 1) -> dict[str, Any]:
    return {"model": model, "batch": batch, "group": group, "threads": threads, "condition": "quiet",
            "latency_ms": {"median": median}}  # fmt: skip


def test_int8_verdicts_compare_our_fastest_with_the_fastest_peer(script: ModuleType) -> None:
    from resnet_deploy.benchmark import BenchReport

    report = BenchReport(machine={}, config={})
    report.results = [
        row("resnet50 int8 onnxruntime [1t]", 1, 10.0),
        row("resnet50 int8 openvino [1t]", 1, 9.0),
        row(f"resnet50 int8 onnxruntime {script.PEER_ORT} [1t]", 1, 10.0),
        row(f"resnet50 int8 openvino {script.PEER_NNCF} [1t]", 1, 9.5),
        row("resnet50 int8 onnxruntime [1t]", 8, 50.0),
        row(f"resnet50 int8 openvino {script.PEER_NNCF} [1t]", 8, 45.0),
    ]
    verdicts = script.int8_verdicts(report)
    assert len(verdicts) == 2
    assert "b1 1t" in verdicts[0] and "(int8 openvino) 9.00 ms" in verdicts[0] and ": MET" in verdicts[0]
    assert "b8 1t" in verdicts[1] and "NOT MET" in verdicts[1]
