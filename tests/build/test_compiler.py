"""``resnet_deploy.compile``: an in-memory ``nn.Module`` to a loaded model, as torch2trt / Torch-TensorRT users do."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch

import resnet_deploy
from resnet_deploy.errors import UserError
from resnet_deploy.models import build_model
from resnet_deploy.precision.ptq import Int8Options


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet20", 10, 1).eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32))


def test_fp32_matches_the_module(net: torch.nn.Module, x: torch.Tensor, tmp_path: Path) -> None:
    model = resnet_deploy.compile(net, x[:1], output=tmp_path / "m.onnx")
    assert model.backend == "onnxruntime" and model.precision == "fp32" and model.path == tmp_path / "m.onnx"
    assert model.input_shape == (None, 1, 28, 28)  # the example's batch of 1 did not fix the batch axis
    with torch.inference_mode():
        want = net(x).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-5)
    assert model.build_result.reports  # type: ignore[attr-defined]


def test_fp16_and_int8(net: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        want = net(x).numpy()
    fp16 = resnet_deploy.compile(net, x[:1], "fp16", labels=[f"c{i}" for i in range(10)])
    assert fp16.precision == "fp16" and fp16.info is not None and fp16.info.labels == [f"c{i}" for i in range(10)]
    np.testing.assert_allclose(fp16.predict(x), want, rtol=0, atol=0.05 * np.abs(want).max())
    calib = np.random.default_rng(1).random((64, 1, 28, 28), dtype=np.float32)
    int8 = resnet_deploy.compile(
        net, x[:1].numpy(), "int8", calib_data=calib, calib_samples=64, int8=Int8Options(check_samples=0)
    )
    assert int8.precision == "int8"
    assert int8.build_result.int8.samples == 64  # type: ignore[attr-defined]
    assert int8.predict(x).shape == (6, 10)


def test_temporary_output_goes_with_the_model(net: torch.nn.Module, x: torch.Tensor) -> None:
    model = resnet_deploy.compile(net, x[:1])
    path = model.path
    assert path is not None and path.is_file()
    del model
    gc.collect()
    assert not path.exists() and not path.parent.exists()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda n, x: resnet_deploy.compile("resnet20", x), "takes a torch.nn.Module"),
        (lambda n, x: resnet_deploy.compile(n, x[0]), r"shape \(N, C, H, W\)"),
        (lambda n, x: resnet_deploy.compile(n, x[:, :, :, :20]), "square inputs"),
        (lambda n, x: resnet_deploy.compile(n, x, "int8"), "needs calib_data"),
        (lambda n, x: resnet_deploy.compile(n, x, "int9"), "unknown precision"),
        (lambda n, x: resnet_deploy.compile(n, x, onnx="m.onnx"), "does not take onnx"),
        (lambda n, x: resnet_deploy.compile(n, x, speed="max"), "does not take speed"),
        (lambda n, x: resnet_deploy.compile(n, x, labels=["a"]), "1 labels for a model with 10 classes"),
        (lambda n, x: resnet_deploy.compile(n, x, "int8", calib_data=np.zeros((4, 3, 28, 28))), "calib_data array"),
        (lambda n, x: resnet_deploy.compile(n, x, backend="tensorrt", output="m.onnx"), "writes an engine"),
    ],
)
def test_bad_calls_are_one_line(net: torch.nn.Module, x: torch.Tensor, call: object, match: str) -> None:
    with pytest.raises(UserError, match=match):
        call(net, x)  # type: ignore[operator]


@pytest.mark.tensorrt_gpu
def test_tensorrt_engine(net: torch.nn.Module, x: torch.Tensor, tmp_path: Path) -> None:
    model = resnet_deploy.compile(net, x[:1], "fp16", backend="tensorrt", output=tmp_path / "m.engine")
    assert model.backend == "tensorrt"
    with torch.inference_mode():
        np.testing.assert_allclose(model.predict(x), net(x).numpy(), atol=0.05)
