"""ONNX files in and out: validation of untrusted files, atomic saves, our metadata, precision of a graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.errors import UserError
from resnet_deploy.info import ModelInfo
from resnet_deploy.onnx_io import graph_precision, info_from_onnx, load_onnx, op_counts, save_onnx, set_info


def _conv(dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), onnx.helper.tensor_dtype_to_np_dtype(dtype)), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", dtype, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("y", dtype, ["N", 2, 4, 4])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_save_load_and_metadata(tmp_path: Path) -> None:
    model = set_info(_conv(), ModelInfo(arch="resnet18", num_classes=2))
    path = save_onnx(model, tmp_path / "m.onnx")
    loaded = load_onnx(path)
    assert info_from_onnx(loaded) == ModelInfo(arch="resnet18", num_classes=2)
    assert op_counts(loaded) == {"Conv": 1} and not list(tmp_path.glob(".*.tmp"))


def test_precision_of_a_graph() -> None:
    assert graph_precision(_conv()) == "fp32"
    assert graph_precision(_conv(TensorProto.FLOAT16)) == "fp16"
    q = _conv()
    q.graph.node.insert(0, helper.make_node("QuantizeLinear", ["x", "s"], ["q"]))
    assert graph_precision(q) == "int8"


def test_untrusted_files_are_refused_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01not a model")
    bad = _conv()
    bad.graph.node[0].input[1] = "missing"
    (tmp_path / "bad.onnx").write_bytes(bad.SerializeToString())
    for name, match in (("none.onnx", "not found"), ("empty.onnx", "size 0"), ("junk.onnx", "not an ONNX model")):
        with pytest.raises(UserError, match=match):
            load_onnx(tmp_path / name)
    with pytest.raises(UserError, match="fails the ONNX checker"):
        load_onnx(tmp_path / "bad.onnx")
    assert load_onnx(tmp_path / "bad.onnx", check=False).graph.node[0].input[1] == "missing"
