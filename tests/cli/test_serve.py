"""`resnet-deploy serve` as a user runs it: a real Triton server until SIGTERM, then nothing left running."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from resnet_deploy.cli import main
from resnet_deploy.errors import UserError


@pytest.fixture(scope="module")
def server_env() -> Path:
    from resnet_deploy.serve import find_server_environment

    try:
        return find_server_environment().prefix
    except UserError as exc:
        if os.environ.get("CI") == "true":  # setup.sh makes it: in CI the server tests must run
            pytest.fail(f"CI must run the Triton tests, but: {exc}")
        pytest.skip(f"no Triton server environment here: {exc}")


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text().lower()


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout, line by line, read in a thread so that every wait below can have a bound."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.slow
def test_serve_runs_until_sigterm_and_leaves_nothing_running(fmnist_like: tuple[Path, Path], server_env: Path) -> None:
    _, onnx_path = fmnist_like
    argv = [sys.executable, "-m", "resnet_deploy", "serve", str(onnx_path), "--image-input"]
    argv += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", "--server-env", str(server_env)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        lines = _lines(proc)
        ready = lines.get(timeout=180)  # the first line says it is ready (or the process failed)
        match = re.search(r"tritonserver pid (\d+)\): HTTP ([\d.]+:\d+)", ready)
        assert match, (ready, proc.poll())
        pid, http = int(match.group(1)), match.group(2)
        assert _alive(pid) and http.startswith("127.0.0.1:") and "toy, toy_preprocess, toy_image" in ready
        with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=30) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://{http}/v2/models/toy_image", timeout=30) as response:
            assert b'"platform":"ensemble"' in response.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert lines.get(timeout=10).startswith(f"stopped (terminated); tritonserver pid {pid} exited with code 0")
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_serve_for_a_duration_in_process(
    fmnist_like: tuple[Path, Path], server_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, onnx_path = fmnist_like
    argv = ["serve", str(onnx_path), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    assert main([*argv, "--server-env", str(server_env), "--duration", "0.5", "--address", "127.0.0.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Triton is serving toy (tritonserver pid ") and out[1].startswith("stopped (duration)")
    assert not _alive(int(re.search(r"pid (\d+)", out[0]).group(1)))  # type: ignore[union-attr]


def test_serve_fails_cleanly(
    fmnist_like: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], fails_cleanly: Any
) -> None:
    from resnet_deploy.serve.environment import probe

    _, onnx_path = fmnist_like
    ports = ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    cases = [
        (["serve", str(tmp_path / "missing.onnx"), *ports], "not found"),
        (["serve", str(onnx_path), "--server-env", str(tmp_path), *ports], "no Python there"),
        (["serve", str(onnx_path), "--instances", "0", *ports], "--instances must be in [1, 64]"),
    ]
    if probe(Path(sys.prefix)).get("pytriton") is None:  # the project's .venv (numpy 2) has no server
        cases.append((["serve", str(onnx_path), "--server-env", sys.prefix, *ports], "no nvidia-pytriton"))
    for argv, expected in cases:
        fails_cleanly(capsys, argv, expected, folder=tmp_path)
