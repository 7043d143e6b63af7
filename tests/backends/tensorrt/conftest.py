"""A tiny engine built once with the real TensorRT builder (TensorRT-RTX on GPU-less machines), shared by the
engine-file tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.backends.tensorrt import sidecar as sc
from resnet_deploy.backends.tensorrt.compat import TrtInfo

RTX = TrtInfo("tensorrt_rtx", "1.7.1.116", "tensorrt_rtx_bindings")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    """A real engine + sidecar (kept pristine: tests copy it)."""
    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine

    folder = tmp_path_factory.mktemp("engine")
    report = build_engine(_tiny_graph(), folder / "tiny.engine", EngineBuildOptions(min_batch=1, max_batch=4))
    return report.engine_path, report.engine_path.read_bytes(), report.sidecar_path.read_bytes()


def _tiny_graph() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["logits"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _copy_engine(built: tuple[Path, bytes, bytes], dest: Path, meta_edit: Any = None) -> Path:
    _, engine, side = built
    path = dest / "model.engine"
    path.write_bytes(engine)
    meta = json.loads(side)
    if meta_edit is not None:
        meta_edit(meta)
    sc.sidecar_path(path).write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="session")
def tiny_graph() -> Any:
    """``tiny_graph() -> ModelProto``: Conv + Relu + pooling, dynamic batch."""
    return _tiny_graph


@pytest.fixture(scope="session")
def copy_engine() -> Any:
    """``copy_engine(built, dest, meta_edit=None) -> Path``: a copy of the built engine and its sidecar."""
    return _copy_engine
