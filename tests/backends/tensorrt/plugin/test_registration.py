"""What of the plugin registration runs without TensorRT or a GPU: a clean import, field parsing, refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from resnet_deploy.backends.tensorrt import plugin as plug
from resnet_deploy.errors import UserError


def test_import_needs_neither_tensorrt_nor_cuda_python() -> None:
    code = (
        "import sys, resnet_deploy.backends.tensorrt.plugin, resnet_deploy.passes.residual_fusion;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'cuda', 'cupy')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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
