"""Which TensorRT is importable, and enum members by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.backends.tensorrt.compat import TrtInfo

needs_trt = pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")
RTX = TrtInfo("tensorrt_rtx", "1.7.1.116", "tensorrt_rtx_bindings")


def test_importing_the_package_imports_no_tensorrt() -> None:
    code = (
        "import sys, resnet_deploy, resnet_deploy.backends.loader, resnet_deploy.backends.tensorrt, "
        "resnet_deploy.backends.tensorrt.builder, resnet_deploy.backends.tensorrt.engine_inspector, "
        "resnet_deploy.backends.tensorrt.plugin, resnet_deploy.backends.tensorrt.autotune\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'tensorrt_rtx_bindings', 'tensorrt_rtx')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@needs_trt
def test_a_stubs_only_tensorrt_package_is_skipped(tmp_path: Path) -> None:
    # tensorrt-stubs installs tensorrt/__init__.pyi alone, which imports as an empty namespace package.
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("class Builder: ...\n")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import tensorrt\n"
        "from resnet_deploy.backends.tensorrt import compat\n"
        "found = compat.available()\n"
        "assert found is not None and found.module_name != 'tensorrt', found\n"
        "print(found.flavour)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True, text=True)
    assert out.stdout.strip() in ("tensorrt_rtx", "tensorrt")


@needs_trt
def test_enum_members_by_name() -> None:
    flag = compat.member("NetworkDefinitionCreationFlag", "STRONGLY_TYPED")
    assert flag is not None and compat.strongly_typed_flags() == 1 << int(flag)
    assert compat.member("BuilderFlag", "NO_SUCH_FLAG") is None
    assert compat.member("NoSuchEnum", "X") is None
    assert compat.dims_list(compat.trt.Dims([2, 3, 4])) == [2, 3, 4]
    assert compat.numpy_dtype(compat.trt.DataType.HALF) == np.float16
    if compat.info().flavour == "tensorrt_rtx":
        assert (8, 6) in (compat.supported_compute_capabilities() or [])
        assert (9, 0) not in (compat.supported_compute_capabilities() or [])  # TensorRT-RTX skips Hopper
