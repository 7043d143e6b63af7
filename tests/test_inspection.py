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
