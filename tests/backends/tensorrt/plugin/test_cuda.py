"""The plugin's kernel launch arithmetic, and the PTX entry points it launches (argument order and types)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.backends.tensorrt import plugin as plug
from resnet_deploy.kernels import KERNEL_NAMES, SOURCE_DIR


@pytest.mark.parametrize("value", [1.0, 0.05, 1e-30, 3.4e38, 0.0, -2.5])
def test_float_bits_is_the_float32_bit_pattern(value: float) -> None:
    assert plug.float_bits(value) == int(np.array([value], np.float32).view(np.int32)[0])


def test_launch_grid_covers_every_element_once() -> None:
    for dtype, vec in (("float32", 4), ("float16", 8), ("int8", 16)):
        per_block = 256 * vec
        assert plug.launch_grid(0, dtype) == 1
        assert plug.launch_grid(1, dtype) == 1
        assert plug.launch_grid(per_block, dtype) == 1
        assert plug.launch_grid(per_block + 1, dtype) == 2
        n = 64 * 256 * 56 * 56
        assert plug.launch_grid(n, dtype) * per_block >= n > (plug.launch_grid(n, dtype) - 1) * per_block


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")
def test_ptx_entry_points_take_inputs_then_int32s_then_output(tmp_path: Path) -> None:
    """tensorrt.plugin AOT kernels receive (inputs..., extra int32 args..., outputs...); the Python plugin launches
    with the same order. Check the compiled signatures, not just the source."""
    ptx = tmp_path / "k.ptx"
    src = SOURCE_DIR / "kernels" / "residual_add_relu.cu"
    subprocess.run(
        ["nvcc", "-ptx", "-arch=compute_87", "-std=c++17", f"-I{src.parent}", str(src), "-o", str(ptx)], check=True
    )
    text = ptx.read_text()
    expected = {
        KERNEL_NAMES["float32"]: ["u64", "u64", "u32", "u64"],
        KERNEL_NAMES["float16"]: ["u64", "u64", "u32", "u64"],
        KERNEL_NAMES["int8"]: ["u64", "u64", "u32", "u32", "u32", "u32", "u64"],
    }
    for name, types in expected.items():
        match = re.search(rf"\.entry {name}\((.*?)\)", text, re.S)
        assert match, name
        params = re.findall(r"\.param \.(\w+) ", match.group(1))
        assert params == types, (name, params)
