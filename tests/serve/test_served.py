"""Model files described for Triton from their own metadata: dims without the batch axis, batch limits, labels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from resnet_deploy.errors import UserError
from resnet_deploy.serve.served import Tensor, describe, model_name, preferred_batches


def test_an_onnx_model_is_described_from_its_graph_and_metadata(bundled_onnx: dict[str, Path]) -> None:
    m = describe(bundled_onnx["fmnist_resnet20_int8"])
    assert m.platform == "onnxruntime_onnx" and m.name == "fmnist_resnet20_int8" and m.precision == "int8"
    assert m.inputs == [Tensor("input", "FP32", (1, 28, 28))] and m.outputs == [Tensor("logits", "FP32", (10,))]
    assert m.max_batch == 32 and m.preferred_batches == [8, 32] and m.profile is None
    assert m.labels is not None and m.labels[9] == "Ankle boot"
    assert describe(bundled_onnx["fmnist_resnet20_fp32"], max_batch=4).preferred_batches == [4]


def test_onnx_without_a_dynamic_batch_axis_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = tmp_path / "static.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(UserError, match="has a fixed batch size 1; Triton batches along a dynamic first axis"):
        describe(path)


def test_files_triton_cannot_serve_are_refused(tmp_path: Path) -> None:
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(UserError, match="not a model Triton serves"):
        describe(tmp_path / "w.pth")
    with pytest.raises(UserError, match="not found"):
        describe(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(UserError, match="is not an ONNX model"):
        describe(tmp_path / "junk.onnx")


def test_an_engine_of_tensorrt_rtx_is_refused_in_one_line(bundled_onnx: dict[str, Path], tmp_path: Path) -> None:
    """A real TensorRT-RTX build (what this project's machines make): Triton's tensorrt backend cannot run it."""
    from resnet_deploy.backends.tensorrt import compat

    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine

    report = build_engine(
        bundled_onnx["fmnist_resnet20_fp32"], tmp_path / "r20.engine", EngineBuildOptions(max_batch=8)
    )
    assert json.loads(report.sidecar_path.read_text())["tensorrt"]["flavour"] == "tensorrt_rtx"
    with pytest.raises(UserError) as exc:
        describe(report.engine_path)
    text = str(exc.value)
    assert "\n" not in text and "was built by TensorRT-RTX" in text and "runs only engines of full TensorRT" in text


def test_an_engine_of_full_tensorrt_is_described_from_its_sidecar(
    handwritten_engine: Callable[..., Path], tmp_path: Path
) -> None:
    path = handwritten_engine(tmp_path, labels=[f"c{i}" for i in range(10)], profile=(1, 8, 16))
    m = describe(path)
    assert m.platform == "tensorrt_plan" and m.filename == "model.plan" and m.profile == (1, 8, 16)
    assert m.max_batch == 16 and m.preferred_batches == [8, 16]  # the profile's max, never above it
    assert m.inputs == [Tensor("input", "FP32", (1, 28, 28))] and m.outputs == [Tensor("logits", "FP32", (10,))]
    assert (
        m.labels == [f"c{i}" for i in range(10)]
        and m.built_with == "TensorRT 10.13.0.35 on NVIDIA H100 80GB HBM3 (9.0)"
    )
    assert describe(path, max_batch=4).preferred_batches == [4]  # lower is allowed: the profile covers it
    with pytest.raises(UserError, match="--max-batch 17 is above the engine profile's maximum batch 16"):
        describe(path, max_batch=17)


def test_engines_triton_cannot_batch_or_that_do_not_match_their_sidecar_are_refused(
    handwritten_engine: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="profile starts at batch 2"):
        describe(handwritten_engine(tmp_path, "min2.engine", profile=(2, 8, 16)))
    tampered = handwritten_engine(tmp_path, "tampered.engine")
    tampered.write_bytes(tampered.read_bytes() + b"!")
    with pytest.raises(UserError, match="does not match its sidecar"):
        describe(tampered)
    bare = tmp_path / "bare.plan"
    bare.write_bytes(b"plan")
    with pytest.raises(UserError, match="has no sidecar"):
        describe(bare)


def test_names_and_preferred_sizes() -> None:
    assert model_name(Path("a/fmnist resnet20+int8.onnx")) == "fmnist_resnet20_int8"
    assert preferred_batches(1, 8, 32) == [8, 32] and preferred_batches(1, 8, 8) == [8]
    assert preferred_batches(4, 2, 16) == [16]  # an optimum outside the profile is no preferred size
