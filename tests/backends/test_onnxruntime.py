"""The ONNX Runtime backend: a file and the same graph in memory run identically and describe themselves alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.api import export_model
from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.errors import UserError
from resnet_deploy.onnx_io import load_onnx


@pytest.fixture(scope="module")
def fmnist_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(weights="fmnist_resnet20", out=tmp_path_factory.mktemp("ort") / "m.onnx").path


def test_file_and_memory_agree(fmnist_onnx: Path) -> None:
    from_file = OnnxRuntimeModel(fmnist_onnx, threads=1)
    in_memory = OnnxRuntimeModel(load_onnx(fmnist_onnx), threads=1)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(from_file.predict(x), in_memory.predict(x))
    assert from_file.info == in_memory.info and from_file.info is not None and from_file.info.name == "fmnist_resnet20"
    assert from_file.precision == in_memory.precision == "fp32"
    assert from_file.input_shape == (None, 1, 28, 28) and from_file.path == fmnist_onnx and in_memory.path is None


def test_optimization_levels_give_the_same_logits(fmnist_onnx: Path) -> None:
    x = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    full = OnnxRuntimeModel(fmnist_onnx, optimization="all").predict(x)
    np.testing.assert_allclose(
        OnnxRuntimeModel(fmnist_onnx, optimization="none").predict(x), full, rtol=1e-4, atol=1e-5
    )


def test_input_is_validated(fmnist_onnx: Path) -> None:
    model = OnnxRuntimeModel(fmnist_onnx)
    with pytest.raises(UserError, match=r"not uint8: decode image files with resnet_deploy.load_images"):
        model.predict(np.zeros((1, 1, 28, 28), np.uint8))
    with pytest.raises(UserError, match="beyond the range of the model's input type float32"):
        model.predict(np.full((1, 1, 28, 28), 1e300))
    with pytest.raises(UserError, match=r"shape \(1, 3, 28, 28\)"):
        model.predict(np.zeros((1, 3, 28, 28), np.float32))
    with pytest.raises(UserError, match="numpy array or torch tensor"):
        model.predict([[0.0]])
