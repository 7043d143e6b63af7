"""Small exported ResNets shared by the precision tests (exported once per session: export is the slow part)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from resnet_deploy.build import export_onnx
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import NormalizedModel, build_model
from resnet_deploy.models.weights import randomize_batchnorm


def export_small(arch: str, seed: int = 0) -> tuple[onnx.ModelProto, ModelInfo]:
    torch.manual_seed(seed)
    if arch == "resnet20":
        net = build_model("resnet20", 10, 1)
        info = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353])
        randomize_batchnorm(net, seed)
        model: torch.nn.Module = NormalizedModel(net, info.mean or [], info.std or [])
    else:
        net = build_model(arch, 10, 3)
        info = ModelInfo(arch=arch, num_classes=10, in_channels=3, input_size=64)
        randomize_batchnorm(net, seed)
        model = net
    proto, _ = export_onnx(model.eval(), info)
    return proto, info


@pytest.fixture(scope="session")
def resnet20_fp32() -> onnx.ModelProto:
    return export_small("resnet20")[0]


@pytest.fixture(scope="session")
def resnet20_fp32_other_weights() -> onnx.ModelProto:
    """The graph of ``resnet20_fp32`` with other weights (seed 1), for caches that must not match."""
    return export_small("resnet20", seed=1)[0]


@pytest.fixture(scope="session")
def resnet18_fp32() -> onnx.ModelProto:
    return export_small("resnet18")[0]


@pytest.fixture(scope="session")
def fmnist_images() -> np.ndarray:
    from resnet_deploy.data import load_fashion_mnist

    try:
        x, _ = load_fashion_mnist("train")
    except Exception as exc:  # the Debian dataset package is not installed
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    return x[:256]


@pytest.fixture(scope="session")
def trt_build(trt: Any) -> Callable[..., int]:
    """``trt_build(model, max_batch=4) -> engine bytes``: strongly typed parse + build_serialized_network, failing
    the test on a parser or builder error (skips the test when no TensorRT module is installed)."""

    def parse_and_build(model: onnx.ModelProto, max_batch: int = 4) -> int:
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        ok = parser.parse(model.SerializeToString())
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        assert ok, f"TensorRT parser rejected the model: {errors}"
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        inp = network.get_input(0)
        chw = list(inp.shape)[1:]
        profile.set_shape(inp.name, [1, *chw], [max_batch, *chw], [max_batch, *chw])
        config.add_optimization_profile(profile)
        engine = builder.build_serialized_network(network, config)
        assert engine is not None, "TensorRT could not build the engine"
        return int(engine.nbytes)

    return parse_and_build
