"""What of the plugin registration runs without TensorRT or a GPU: a clean import, field parsing, refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
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


def test_all_zero_scales_mean_float_io() -> None:
    """Item 13: the fused node carries scale_a/b/y = 0 (float I/O) so the parser finds every creator field."""
    assert plug.int8_scales({"scale_a": 0.0, "scale_b": 0.0, "scale_y": 0.0}) is None


@pytest.fixture(scope="module")
def rtx() -> object:
    return pytest.importorskip("tensorrt_rtx_bindings", reason="TensorRT-RTX is not installed")


def test_plugin_fields_survive_until_tensorrt_reads_them(rtx: object) -> None:
    """Item 6 on TensorRT-RTX's real bindings: PluginFieldCollection copies bare PluginField structs whose data
    points into numpy arrays; SerializedFields keeps the arrays, fields and collection alive, so the values read
    back through the collection are the ones written, however much is allocated and freed in between."""
    import gc

    scales = (0.5, 0.25, 0.125)
    held = [
        plug.SerializedFields(rtx, zip(("scale_a", "scale_b", "scale_y"), (s * k, s, s), strict=True))
        for k, s in enumerate(scales, 1)
    ]
    gc.collect()
    churn = [np.full(16, 7.0, np.float32) for _ in range(10_000)]  # reuse of any freed small array shows here
    del churn
    gc.collect()
    for k, (s, fields) in enumerate(zip(scales, held, strict=True), 1):
        collection = fields.collection
        assert len(collection) == 3
        values = [float(np.asarray(collection[i].data)[0]) for i in range(3)]
        assert values == [s * k, s, s]
        assert plug.read_float_fields(collection, ("scale_a", "scale_b", "scale_y")) == {
            "scale_a": s * k,
            "scale_b": s,
            "scale_y": s,
        }


def test_creator_field_parsing_skips_empty_fields(rtx: object) -> None:
    trt = rtx
    empty = np.array([], np.float32)
    half = np.array([0.5], np.float32)
    fields = [trt.PluginField("scale_a", half, trt.PluginFieldType.FLOAT32)]
    fields.append(trt.PluginField("scale_b", empty, trt.PluginFieldType.FLOAT32))
    collection = trt.PluginFieldCollection(fields)
    assert plug.read_float_fields(collection, ("scale_a", "scale_b", "scale_y")) == {"scale_a": 0.5}


def test_tensorrt_rtx_plugin_builds_are_refused(rtx: object) -> None:
    """Item 7: TensorRT-RTX has no add_plugin_v3; asking for a plugin implementation there is one line."""
    from resnet_deploy.backends.tensorrt import compat

    if compat.info().flavour != "tensorrt_rtx":
        pytest.skip("full TensorRT is installed")
    for impl in (None, "aot", "python"):
        with pytest.raises(UserError, match="TensorRT-RTX .* cannot build engines with the ResidualAddRelu plugin"):
            plug.plugin_impl(impl)


def test_rtx_guard_finds_registered_creators_only(rtx: object) -> None:
    """The guard asks TensorRT-RTX's real plugin registry; with nothing registered a fused graph passes (the
    parser then inlines the local function, safely)."""
    from onnx import helper

    node = helper.make_node("ResidualAddRelu", ["a", "b"], ["y"], domain="resnet_deploy", name="n")
    node.attribute.append(helper.make_attribute("plugin_namespace", "resnet_deploy"))
    plug.refuse_tensorrt_rtx_plugins([node], rtx.get_plugin_registry())
    # With a creator registered it refuses: test_builder's test_tensorrt_rtx_with_a_registered_creator_is_refused
    # (in a child process, since registration lasts for the process).
