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
