"""Models the benchmark tests share: a random-weight resnet20 exported once, and tiny graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.benchmark import (
    Target,
    count_macs_onnx,
)


def _targets(resnet20: tuple[Path, object, object]) -> list[Target]:
    path, module, info = resnet20
    ort = OnnxRuntimeModel(path, threads=1)
    macs = count_macs_onnx(onnx.load(str(path))).total
    return [
        Target("resnet20 fp32 onnxruntime", ort, str(path), group="r20", macs_per_image=macs),
        Target("resnet20 fp32 pytorch", TorchModel(module, info), "module", role="baseline", group="r20"),  # type: ignore[arg-type]
    ]


def _tiny_graph(batch: int | str = "N") -> onnx.ModelProto:
    """Grouped 3x3 conv (2 -> 4 channels, group 2, 8x8) then flatten and Gemm(transB) to 10 classes."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 1, 3, 3], rng.standard_normal(36).astype(np.float32))
    fc = helper.make_tensor("fc", TensorProto.FLOAT, [10, 256], rng.standard_normal(2560).astype(np.float32))
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], group=2, pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Flatten", ["c"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 2, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        [w, fc],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="session")
def make_targets() -> object:
    """``make_targets(resnet20) -> [ONNX Runtime FP32 target, PyTorch FP32 baseline]``."""
    return _targets


@pytest.fixture(scope="session")
def tiny_graph() -> object:
    """``tiny_graph(batch="N") -> ModelProto``: one Conv + Gemm, MACs countable by hand."""
    return _tiny_graph
