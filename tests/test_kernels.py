"""The CMake build of kernels/: library with the C ABI, PTX per architecture, manifest. Needs cmake and nvcc, no GPU."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.kernels import C_SYMBOLS, KERNEL_NAMES, KernelArtifacts, build_kernels, load_manifest

WANTED = [72, 75, 80, 86, 87, 89, 90]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed"),
]


def _nvcc_archs() -> set[int]:
    out = subprocess.run(["nvcc", "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    return {int(m) for m in re.findall(r"compute_(\d+)", out)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> KernelArtifacts:
    return build_kernels(tmp_path_factory.mktemp("kernels_build"))


def test_every_supported_arch_is_built_and_the_rest_reported(built: KernelArtifacts) -> None:
    supported = _nvcc_archs()
    assert built.archs == sorted(a for a in WANTED if a in supported)
    assert built.dropped_archs == [a for a in WANTED if a not in supported]
    # Jetson Orin and the server GPUs must always be there; sm_72 only where nvcc still has it (CUDA <= 12).
    assert {75, 80, 86, 87, 89, 90} <= set(built.archs)


def test_library_exports_the_c_abi(built: KernelArtifacts) -> None:
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run(["nm", "-D", "--defined-only", str(built.library)], capture_output=True, text=True)
    exported = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    assert set(C_SYMBOLS) <= exported
    # Hidden visibility: the static cudart and the kernel host stubs must not leak out of the library.
    assert not any(s.startswith("cuda") for s in exported), sorted(s for s in exported if s.startswith("cuda"))
    assert not set(KERNEL_NAMES.values()) & exported


def test_ptx_per_arch_has_every_kernel_entry(built: KernelArtifacts) -> None:
    for arch, path in built.ptx.items():
        text = path.read_text()
        assert re.search(rf"^\.target sm_{arch}\b", text, re.M), f"{path.name} does not target sm_{arch}"
        entries = set(re.findall(r"\.visible \.entry (\w+)\(", text))
        assert entries == set(KERNEL_NAMES.values()), (path.name, entries)
        # No contraction into FMA or approximate division in the INT8 path (ONNX rounding must be exact).
        assert "div.rn.f32" in text and "div.approx" not in text and "div.full" not in text and "fma." not in text


def test_host_tools_built_by_cmake_run(built: KernelArtifacts) -> None:
    proc = subprocess.run([str(built.root / "rd_host_grid_test")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok "), proc.stdout
    assert built.host_ref.is_file()


def test_ptx_selection_for_a_gpu(built: KernelArtifacts) -> None:
    assert built.ptx_for(87) == (87, built.ptx[87])
    assert built.ptx_for(120)[0] == max(built.archs)  # newer GPUs JIT the newest PTX
    with pytest.raises(UserError, match="no PTX for sm_70"):
        built.ptx_for(70)


def test_manifest_is_validated(built: KernelArtifacts, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not built"):
        load_manifest(tmp_path)
    manifest = (built.root / "kernels_manifest.json").read_text()
    (tmp_path / "kernels_manifest.json").write_text(manifest.replace('"ptx/', '"../../'))
    with pytest.raises(UserError, match="outside the build folder"):
        load_manifest(tmp_path)
