"""``inspect`` as a library: the ONNX description and its text, for our graphs and for foreign ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_deploy.api import BuildOptions, build, format_summary, inspect_model
from resnet_deploy.errors import UserError


@pytest.fixture(scope="module")
def int8_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inspect") / "q.onnx"
    build(BuildOptions(output=out, weights="fmnist_resnet20", precision="int8", calib_samples=32))
    return out


def test_int8_graph_is_described(int8_onnx: Path) -> None:
    d = inspect_model(int8_onnx)
    assert d["format"] == "onnx" and d["precision"] == "int8" and d["checker"] == "ok"
    assert d["qdq_placement"] == "onnxruntime" and d["qdq_nodes"] > 0 and d["batchnorm_nodes"] == 0
    assert d["model_info"]["name"] == "fmnist_resnet20" and d["inputs"][0]["shape"] == ["batch", 1, 28, 28]
    text = format_summary(d)
    assert "q/dq nodes" in text and "(onnxruntime placement)" in text and "checkpoint fmnist_resnet20" in text


def test_the_runtime_auto_recorded_is_shown(int8_onnx: Path, tmp_path: Path) -> None:
    from resnet_deploy.info import RUNTIME_KEY
    from resnet_deploy.onnx_io import load_onnx, save_onnx, set_metadata

    assert inspect_model(int8_onnx)["runtime"] is None and "\nruntime " not in format_summary(inspect_model(int8_onnx))
    for value, shown in (("openvino", "openvino"), ("tvm", None)):  # an unknown value is ignored, as load does
        path = save_onnx(set_metadata(load_onnx(int8_onnx), {RUNTIME_KEY: value}), tmp_path / f"{value}.onnx")
        d = inspect_model(path)
        assert d["runtime"] == shown and d["metadata"] == {}
        assert ("runtime     openvino (measured faster by build --backend auto" in format_summary(d)) == bool(shown)


def test_missing_and_non_model_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        inspect_model(tmp_path / "nothing.onnx")
    (tmp_path / "x.onnx").write_bytes(b"\x00junk")
    with pytest.raises(UserError, match="not an ONNX model or TensorRT engine"):
        inspect_model(tmp_path / "x.onnx")


def test_onnx_and_engine_share_one_schema(tmp_path: Path) -> None:
    """Issue 16: ``inspect --json`` of an ONNX graph and of an engine of the same model start with the same keys,
    spelled and typed the same (dtypes, dynamic batch, model info)."""
    from resnet_deploy.backends.tensorrt import compat
    from resnet_deploy.inspection import COMMON_KEYS, SCHEMA

    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    onnx_path, engine_path = tmp_path / "m.onnx", tmp_path / "m.engine"
    build(BuildOptions(output=onnx_path, weights="fmnist_resnet20"))
    build(BuildOptions(output=engine_path, weights="fmnist_resnet20", backend="tensorrt"))
    a, b = inspect_model(onnx_path), inspect_model(engine_path)
    assert tuple(a)[: len(COMMON_KEYS)] == tuple(b)[: len(COMMON_KEYS)] == COMMON_KEYS
    assert a["schema"] == b["schema"] == SCHEMA and (a["format"], b["format"]) == ("onnx", "engine")
    assert a["inputs"] == b["inputs"] == [{"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "float"}]
    assert a["outputs"] == b["outputs"] == [{"name": "logits", "shape": ["batch", 10], "dtype": "float"}]
    assert a["model_info"] == b["model_info"] and a["model_info"]["name"] == "fmnist_resnet20"
    assert a["precision"] == b["precision"] == "fp32"
    assert a["size_bytes"] == onnx_path.stat().st_size and b["size_bytes"] == engine_path.stat().st_size
    assert "N, 10" in format_summary(b)  # the text form still reads the sidecar's own output entry


@pytest.fixture(scope="module")
def irs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fmnist_resnet20 as OpenVINO IR written by ``build -o M.xml`` (FP32 and INT8) and as ONNX (FP32), all
    through the CLI."""
    pytest.importorskip(
        "openvino", reason="the openvino extra is not installed (pip install 'resnet-deploy[openvino]')"
    )
    from resnet_deploy.cli import main

    d = tmp_path_factory.mktemp("ir")
    out = {"fp32": d / "fp32.xml", "int8": d / "int8.xml", "onnx": d / "fp32.onnx"}
    assert main(["build", "-o", str(out["fp32"]), "--progress", "none"]) == 0
    assert main(["build", "-o", str(out["onnx"]), "--progress", "none"]) == 0
    argv = ["build", "--precision", "int8", "--calib-samples", "32", "-o", str(out["int8"]), "--progress", "none"]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_ir_is_described_with_the_onnx_schema(precision: str, irs: dict[str, Path]) -> None:
    from resnet_deploy.inspection import COMMON_KEYS, SCHEMA

    xml = irs[precision]
    d, onnx_d = inspect_model(xml), inspect_model(irs["onnx"])
    assert tuple(d)[: len(COMMON_KEYS)] == COMMON_KEYS and d["schema"] == SCHEMA and d["format"] == "openvino-ir"
    assert d["path"] == str(xml) and d["precision"] == precision
    # the same I/O as the ONNX graph, in its spelling; IR keeps no dimension names, so the batch is None
    assert d["inputs"] == [{"name": "input", "shape": [None, 1, 28, 28], "dtype": "float"}]
    assert d["outputs"] == [{"name": "logits", "shape": [None, 10], "dtype": "float"}]
    assert [v["name"] for v in onnx_d["inputs"]] == ["input"] and onnx_d["inputs"][0]["dtype"] == "float"
    assert d["model_info"] == onnx_d["model_info"] and d["model_info"]["name"] == "fmnist_resnet20"
    bin_file = xml.with_suffix(".bin")
    assert d["weights_path"] == str(bin_file) and d["weights_bytes"] == bin_file.stat().st_size > 0
    assert d["xml_bytes"] == xml.stat().st_size and d["size_bytes"] == d["xml_bytes"] + d["weights_bytes"]
    assert d["op_counts"]["Convolution"] == onnx_d["op_counts"]["Conv"] == 19  # resnet20: 19 convolutions
    assert d["nodes"] == sum(d["op_counts"].values()) and "Parameter" not in d["op_counts"]
    assert d["recorded_precision"] == precision and d["ir_version"] == 11 and d["model_info_error"] is None
    text = format_summary(d)
    assert f"precision   {precision} (source graph {precision}" in text and "checkpoint fmnist_resnet20" in text
    assert "input       input float (?, 1, 28, 28)" in text and "Convolution 19" in text


def test_int8_ir_precision_comes_from_what_it_holds(irs: dict[str, Path]) -> None:
    """FakeQuantize and int8 weights in the INT8 IR, none in the FP32 one; our metadata read back beside them."""
    fp32, int8 = inspect_model(irs["fp32"]), inspect_model(irs["int8"])
    assert int8["fake_quantize_nodes"] > 0 and int8["quantized_constants"] > 0 and int8["qdq_placement"] == "openvino"
    assert fp32["fake_quantize_nodes"] == fp32["quantized_constants"] == 0 and fp32["qdq_placement"] is None
    assert int8["weights_bytes"] < fp32["weights_bytes"]  # int8 weights: a quarter of the float ones and scales
    assert int8["metadata"] == fp32["metadata"] == {}  # every key of ours is in model_info, precision, placement


def test_foreign_ir_without_our_metadata(tmp_path: Path) -> None:
    """An IR another tool wrote (no resnet_deploy rt_info): described, with no model info."""
    ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")
    import numpy as np

    param = ov.opset13.parameter([-1, 3, 8, 8], np.float16, name="x")
    weights = ov.opset13.constant(np.ones((4, 3, 3, 3), np.float16))
    conv = ov.opset13.convolution(param, weights, [1, 1], [1, 1], [1, 1], [1, 1])
    ov.save_model(ov.Model([conv], [param], "foreign"), str(tmp_path / "f.xml"), compress_to_fp16=False)
    d = inspect_model(tmp_path / "f.xml")
    assert d["precision"] == "fp16" and d["model_info"] is None and d["recorded_precision"] is None
    assert d["inputs"] == [{"name": "x", "shape": [None, 3, 8, 8], "dtype": "float16"}]
    assert d["outputs"][0]["dtype"] == "float16" and d["op_counts"] == {"Convolution": 1}
    assert "model info  none (not exported by resnet-deploy)" in format_summary(d)
