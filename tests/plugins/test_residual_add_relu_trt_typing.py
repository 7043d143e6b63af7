"""mypy --strict over the TensorRT plugin module against ``tensorrt-stubs`` (TensorRT 10.13's Python API): the static
check of code no machine here can run (misspelled classes, methods, enum members). Reuses the stub patching of
tests/backends/test_tensorrt_typing.py; skipped without mypy or the stubs."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKEND_TYPING_TEST = ROOT / "tests" / "backends" / "test_tensorrt_typing.py"


def _stub_helpers() -> ModuleType | None:
    if not BACKEND_TYPING_TEST.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_tensorrt_typing_helpers", BACKEND_TYPING_TEST)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HELPERS = _stub_helpers()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mypy") is None and importlib.util.find_spec("mypy") is None, reason="mypy missing")
@pytest.mark.skipif(HELPERS is None or HELPERS._stub_root() is None, reason="tensorrt-stubs (or its helper) missing")
def test_plugin_module_mypy_strict_against_tensorrt_stubs(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert HELPERS is not None
    stubs = HELPERS.patched_stubs(tmp_path)
    probe = tmp_path / "probe.py"  # proves the stubs are in effect: this misspelling must be the only error
    probe.write_text("import tensorrt as trt\nx = trt.IPluginV3OneBuil\n")
    # The same cache as the backend's typing test: a cold run over the package takes minutes on 2 cores.
    cache = request.config.cache.mkdir("mypy") if request.config.cache else tmp_path / "cache"
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(stubs / "mypy.ini"), "--cache-dir", str(cache)]
    env = {"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [*cmd, "--strict", "resnet_deploy/plugins", str(probe)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'no attribute "IPluginV3OneBuil"' in errors[0], run.stdout + run.stderr
