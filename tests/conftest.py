"""Shared fixtures: small exported ResNets with non-trivial BatchNorm statistics (exported once per session).

Test modules get the helpers below as fixtures, not by ``from conftest import ...``: with several rootless
conftest.py files (tests/precision/ has one), the module named ``conftest`` is whichever pytest imported last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from resnet_deploy.info import ModelInfo
from resnet_deploy.models.weights import randomize_batchnorm


def _torchvision_weights(arch: str, path: Path, num_classes: int = 1000, seed: int = 0) -> Path:
    """A torchvision-format ``.pth`` (bare state dict, torchvision key names) with random non-trivial BN stats."""
    from resnet_deploy.models import build_model

    torch.manual_seed(seed)
    net = randomize_batchnorm(build_model(arch, num_classes), seed)
    torch.save(net.state_dict(), path)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with the reason, tests of code that needs hardware this machine lacks (markers in pyproject.toml).

    These markers are the project's record of what has never run here: ``pytest -m tensorrt_gpu --collect-only``
    lists the TensorRT GPU tests, README's "what runs where" names the code they cover.
    """
    needs = {"tensorrt_gpu": _tensorrt_gpu_missing, "cuda": _cuda_missing}
    reasons: dict[str, str | None] = {}
    for item in items:
        for marker, missing in needs.items():
            if item.get_closest_marker(marker) is not None:
                if marker not in reasons:
                    reasons[marker] = missing()
                if reasons[marker]:
                    item.add_marker(pytest.mark.skip(reason=str(reasons[marker])))


def _tensorrt_gpu_missing() -> str | None:
    from resnet_deploy.backends.tensorrt import compat

    usable, why = compat.gpu_runtime_status()
    return None if usable else f"no TensorRT GPU runtime: {why}"


def _cuda_missing() -> str | None:
    from resnet_deploy.benchmark.gpu import cuda_available

    return None if cuda_available() else "no CUDA GPU visible to PyTorch"


@pytest.fixture(scope="session")
def trt() -> Any:
    """The TensorRT Python module (full TensorRT, else TensorRT-RTX's bindings); skips the test without one."""
    for name in ("tensorrt", "tensorrt_rtx_bindings", "tensorrt_rtx"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        if hasattr(mod, "Builder"):
            return mod
    pytest.skip("no TensorRT / TensorRT-RTX Python module installed")


@pytest.fixture(scope="session")
def randomize_bn() -> Callable[..., nn.Module]:
    """``randomize_bn(net, seed=0) -> net``: realistic BatchNorm statistics, in place."""
    return randomize_batchnorm


@pytest.fixture(scope="session")
def torchvision_weights() -> Callable[..., Path]:
    """``torchvision_weights(arch, path, num_classes=1000, seed=0) -> path``: a torchvision-format ``.pth``."""
    return _torchvision_weights


@dataclass
class ExportedModel:
    """An ONNX export together with the PyTorch model it came from."""

    onnx_path: Path
    weights_path: Path
    model: nn.Module
    info: ModelInfo


@pytest.fixture(scope="session")
def resnet18_onnx(tmp_path_factory: pytest.TempPathFactory) -> ExportedModel:
    """resnet18 (1000 classes, 3x64x64 input) from torchvision-format weights with non-trivial BN statistics,
    exported by :func:`resnet_deploy.api.export_model` (onnxsim + BN folding). Read-only: copy before changing."""
    from resnet_deploy.api import export_model
    from resnet_deploy.models.weights import load_model

    d = tmp_path_factory.mktemp("resnet18_onnx")
    weights = _torchvision_weights("resnet18", d / "resnet18.pth")
    result = export_model("resnet18", weights, d / "resnet18.onnx", input_size=64)
    model, info = load_model("resnet18", weights, input_size=64)
    return ExportedModel(result.path, weights, model, info)


@pytest.fixture(scope="session")
def resnet20(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """resnet20 (CIFAR, 3 x 32 x 32, 10 classes, random weights): ONNX file plus the torch module and info."""
    from resnet_deploy.build import export_onnx
    from resnet_deploy.models.weights import load_model
    from resnet_deploy.onnx_io import save_onnx

    module, info = load_model("resnet20", num_classes=10)
    proto, _ = export_onnx(module, info)
    path = tmp_path_factory.mktemp("bench") / "resnet20.onnx"
    save_onnx(proto, path)
    return path, module, info
