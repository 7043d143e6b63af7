"""The wire-format reader of ONNX files: the same facts as the ``onnx`` package, and external data refused anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import resnet_deploy
from resnet_deploy.errors import UserError
from resnet_deploy.info import from_onnx_props
from resnet_deploy.onnx_io import graph_precision, info_from_onnx, metadata
from resnet_deploy.onnx_scan import MAX_DEPTH, scan


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fmnist_resnet20 as written by ``build`` in FP32, FP16 and INT8."""
    from resnet_deploy.api import BuildOptions, build

    d = tmp_path_factory.mktemp("scan")
    out = {}
    for precision in ("fp32", "fp16", "int8"):
        out[precision] = d / f"{precision}.onnx"
        build(BuildOptions(output=out[precision], weights="fmnist_resnet20", precision=precision, calib_samples=32))
    return out


def _external(name: str) -> TensorProto:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[1])
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="secret.bin")
    return t


def _model(nodes: list[onnx.NodeProto], inits: list[TensorProto] = (), **graph_kw: object) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        list(inits),
        **graph_kw,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _if_with(branch_init: TensorProto) -> onnx.ModelProto:
    then = helper.make_graph(
        [helper.make_node("Identity", [branch_init.name], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1])],
        [branch_init],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1])],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)
    return _model([node], [cond])


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_same_facts_as_the_onnx_package(precision: str, built: dict[str, Path]) -> None:
    path = built[precision]
    model = onnx.load(str(path))
    facts = scan(path.read_bytes())
    assert facts.metadata == metadata(model)
    assert from_onnx_props(facts.metadata) == info_from_onnx(model)
    assert facts.precision == graph_precision(model)
    assert facts.op_types == {n.op_type for n in model.graph.node}
    assert facts.nodes == len(model.graph.node)
    assert facts.precision == precision


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: _model([helper.make_node("Identity", ["w"], ["y"])], [_external("w")]), id="initializer"),
        pytest.param(lambda: _if_with(_external("w")), id="if-branch"),
        pytest.param(lambda: _model([helper.make_node("Constant", [], ["y"], value=_external("c"))]), id="constant"),
        pytest.param(
            lambda: _model(
                [helper.make_node("Identity", ["s"], ["y"])],
                sparse_initializer=[
                    helper.make_sparse_tensor(_external("s"), numpy_helper.from_array(np.array([0])), [1])
                ],
            ),
            id="sparse",
        ),
    ],
)
def test_external_data_is_refused_anywhere(model: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proto = model()  # type: ignore[operator]
    (tmp_path / "secret.bin").write_bytes(np.float32(42.0).tobytes())
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    monkeypatch.chdir(tmp_path)  # where ONNX Runtime would look for "secret.bin"
    with pytest.raises(UserError, match="external files"):
        scan(path.read_bytes(), str(path))
    with pytest.raises(UserError, match="external files"):
        resnet_deploy.load(path)


def test_truncated_and_garbage_files_are_not_onnx() -> None:
    good = _model([helper.make_node("Identity", ["x"], ["y"])]).SerializeToString()
    scan(good)
    for bad in (good[: len(good) // 2], b"\x00garbage", b"\xff" * 16, b""):
        with pytest.raises(UserError, match="not an ONNX model"):
            scan(bad)


def test_nesting_beyond_the_limit_is_refused() -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "leaf", [], [])
    for _ in range(MAX_DEPTH + 1):
        node = helper.make_node("If", ["c"], ["y"], then_branch=graph)  # one branch: two would double each level
        graph = helper.make_graph([node], "nest", [], [])
    model = helper.make_model(graph)
    with pytest.raises(UserError, match="nested deeper"):
        scan(model.SerializeToString())


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_read_metadata_gives_scans_metadata_without_reading_the_graph(precision: str, built: dict[str, Path]) -> None:
    from resnet_deploy.onnx_scan import read_metadata

    path = built[precision]
    assert read_metadata(path) == scan(path.read_bytes()).metadata == metadata(onnx.load(str(path)))
    assert read_metadata(path)["resnet_deploy.precision"] == precision


def test_read_metadata_of_a_broken_file_is_empty(tmp_path: Path) -> None:
    """Not its job to refuse: the full scan that loading does afterwards says why, in one line."""
    from resnet_deploy.onnx_scan import read_metadata

    good = _model([helper.make_node("Identity", ["x"], ["y"])])
    onnx.helper.set_model_props(good, {"resnet_deploy.runtime": "openvino"})
    data = good.SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert read_metadata(path) == {"resnet_deploy.runtime": "openvino"}
    for bad in (data[:-3], b"\x00garbage", b"\xff" * 16, b"", b"\x72\xff\xff\xff\xff\x0f"):  # last: 4 GB field
        path.write_bytes(bad)
        assert read_metadata(path) == {}
    with pytest.raises(UserError, match="not found"):
        read_metadata(tmp_path / "missing.onnx")
