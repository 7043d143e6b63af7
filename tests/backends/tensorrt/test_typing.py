"""mypy over the TensorRT backend against ``tensorrt-stubs`` (TensorRT 10.13's Python API).

The GPU runtime cannot run on any machine of this project, so this static check is what catches misspelled
classes, methods and enum members in it. The stubs as published do not parse (parameters named ``in``, a
non-default parameter after defaults, an import of ``tensorrt_libs``) and lack ``py.typed``, so they are copied
and patched into a temporary folder first. Needs ``pip install mypy`` and
``pip install --no-deps tensorrt-stubs==10.13.0.35.1``; skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MYPY_INI = """\
[mypy]
python_version = 3.11
ignore_missing_imports = True
follow_imports = silent
[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
[mypy-torch,torch.*,onnx,onnx.*,onnxruntime,onnxruntime.*]
follow_imports = skip
"""


def _stub_root() -> Path | None:
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        return None
    site = Path(spec.origin).parent.parent
    return site if (site / "tensorrt" / "__init__.pyi").is_file() else None


def patched_stubs(dest: Path) -> Path:
    """Copy the installed stubs into ``dest`` and fix what keeps them from parsing."""
    site = _stub_root()
    assert site is not None
    for pkg in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / pkg, dest / pkg, ignore=shutil.ignore_patterns("*.py", "*.pyc", "__pycache__"))
    core = dest / "tensorrt_bindings" / "tensorrt.pyi"
    text = core.read_text()
    text = re.sub(r"\bin: (list\[)", r"in_: \1", text)  # a parameter named after a keyword
    text = re.sub(r"(power: Weights = None, channel_axis: int)\)", r"\1 = ...)", text)
    core.write_text(text)
    for init in (dest / "tensorrt" / "__init__.pyi", dest / "tensorrt_bindings" / "__init__.pyi"):
        init.write_text(init.read_text().replace("import tensorrt_libs as tensorrt_libs", ""))
    (dest / "mypy.ini").write_text(MYPY_INI)
    return dest


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mypy") is None and importlib.util.find_spec("mypy") is None, reason="mypy missing")
@pytest.mark.skipif(_stub_root() is None, reason="tensorrt-stubs not installed (pip install --no-deps tensorrt-stubs)")
def test_mypy_strict_against_tensorrt_stubs(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    stubs = patched_stubs(tmp_path)
    probe = tmp_path / "probe.py"
    probe.write_text("from resnet_deploy.backends.tensorrt.compat import trt\nx = trt.BuilderFlag.FP17\n")
    pytest_cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cache = pytest_cache.mkdir("mypy") if pytest_cache is not None else tmp_path / "cache"
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(stubs / "mypy.ini"), "--cache-dir", str(cache)]
    targets = ["resnet_deploy/backends/tensorrt", str(probe)]
    env = {"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([*cmd, "--strict", *targets], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    # The check must be able to fail: the probe's misspelled member is caught through the lazy ``trt`` proxy,
    # and it is the only error.
    assert len(errors) == 1 and 'has no attribute "FP17"' in errors[0], run.stdout + run.stderr
