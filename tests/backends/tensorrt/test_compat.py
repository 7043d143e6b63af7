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


def test_gpu_extra_never_resolves_to_the_cuda_13_bindings() -> None:
    """Item 14: cuda-python 13.x's runtime needs an R580+ driver (cudaErrorInsufficientDriver on JetPack 6 and on
    R535/R550 servers). The `gpu` extra keeps every platform on the CUDA 12 bindings, Jetson on what JetPack 6
    ships (CUDA 12.2-12.6); `gpu-cu13` is the opt-in for R580+ drivers."""
    import tomllib
    from packaging.requirements import Requirement

    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    reqs = [Requirement(r) for r in extras["gpu"]]
    for machine, newest, too_new in (("aarch64", "12.6.3", "12.8.0"), ("x86_64", "12.9.9", "13.0.0")):
        env = {"platform_machine": machine, "platform_system": "Linux", "sys_platform": "linux"}
        active = [r for r in reqs if r.name == "cuda-python" and (r.marker is None or r.marker.evaluate(env))]
        assert len(active) == 1, machine
        spec = active[0].specifier
        assert spec.contains("12.2.0") and spec.contains(newest), (machine, spec)
        assert not any(spec.contains(v) for v in (too_new, "13.0.0", "13.4.4")), (machine, spec)
    assert [Requirement(r).specifier.contains("13.4.4") for r in extras["gpu-cu13"]] == [True]
