"""What of the TensorRT plugin module can run without TensorRT or a GPU: it imports cleanly, its pure helpers, its
refusal without TensorRT, and the PTX entry-point signatures the plugins launch (argument order and types)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.backends.tensorrt import plugin as plug
from resnet_deploy.errors import UserError
from resnet_deploy.kernels import KERNEL_NAMES, SOURCE_DIR


def test_import_needs_neither_tensorrt_nor_cuda_python() -> None:
    code = (
        "import sys, resnet_deploy.backends.tensorrt.plugin, resnet_deploy.passes.residual_fusion;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'cuda', 'cupy')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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


def test_int8_scales_fields() -> None:
    assert plug.int8_scales({}) is None
    assert plug.int8_scales({"scale_a": 0.1, "scale_b": 0.2}) is None
    assert plug.int8_scales({"scale_a": 0.1, "scale_b": 0.2, "scale_y": 0.3}) == (0.1, 0.2, 0.3)
    with pytest.raises(UserError, match="scale_y > 0"):
        plug.int8_scales({"scale_a": 0.1, "scale_b": 0.2, "scale_y": 0.0})
    with pytest.raises(UserError, match="finite"):
        plug.int8_scales({"scale_a": float("nan"), "scale_b": 0.2, "scale_y": 0.3})


@pytest.mark.skipif(plug.tensorrt_available(), reason="TensorRT is installed here")
def test_registration_without_tensorrt_is_a_user_error() -> None:
    with pytest.raises(UserError, match="tensorrt"):
        plug.register_python_plugin()
    with pytest.raises(UserError, match="tensorrt"):
        plug.register_aot_plugin(compute_capability=87)
    with pytest.raises(UserError, match="tensorrt"):
        plug.time_engines([])


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


def test_auto_choice_prefers_the_faster_engine_and_native_on_ties() -> None:
    native = plug.EngineTiming("n.engine", 1.00, 1.01, 0.98, 100, {"input": (8, 3, 224, 224)})
    faster = plug.EngineTiming("p.engine", 0.90, 0.91, 0.89, 110, {"input": (8, 3, 224, 224)})
    slower = plug.EngineTiming("p.engine", 1.20, 1.21, 1.19, 90, {"input": (8, 3, 224, 224)})
    tie = plug.EngineTiming("p.engine", 1.00, 1.00, 1.00, 100, {"input": (8, 3, 224, 224)})
    record = plug.residual_fusion_choice(native, faster)
    assert record["residual_fusion"] == "plugin" and record["engine"] == "p.engine"
    assert record["plugin_speedup"] == pytest.approx(1.0 / 0.9, rel=1e-3)
    assert record["input_shapes"] == {"input": [8, 3, 224, 224]}
    assert plug.residual_fusion_choice(native, slower)["residual_fusion"] == "native"
    assert plug.residual_fusion_choice(native, tie)["engine"] == "n.engine"
