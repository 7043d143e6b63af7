"""The precision claims on the bundled reference checkpoints, on all 10,000 Fashion-MNIST test images through ONNX
Runtime CPU: FP16 within 0.05 points of FP32, INT8 (default method, 512 training images, either Q/DQ placement)
within 0.3."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.models.bundled import bundled_checkpoints

CHECKPOINTS = ("fmnist_resnet20", "fmnist_resnet50_small")


def _top1(model, x: np.ndarray, y: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    m = OnnxRuntimeModel(model)
    pred = np.concatenate([m.predict(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return 100.0 * float((pred == y).mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_fp16_and_int8_accuracy(name: str) -> None:
    if name not in bundled_checkpoints():
        pytest.skip(f"bundled checkpoint {name} is not installed (train it with benchmarks/train_reference.py)")
    from resnet_deploy.build import export_onnx
    from resnet_deploy.data import load_fashion_mnist
    from resnet_deploy.models.weights import load_model
    from resnet_deploy.passes.fp16 import to_fp16
    from resnet_deploy.precision.ptq import Int8Options, quantize_int8

    try:
        x, y = load_fashion_mnist("test")
        calib, _ = load_fashion_mnist("train")
    except Exception as exc:
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    net, info = load_model(None, name)
    fp32, _ = export_onnx(net, info)
    acc32 = _top1(fp32, x, y)
    acc16 = _top1(to_fp16(fp32)[0], x, y)
    assert abs(acc16 - acc32) <= 0.05, (acc32, acc16)
    for placement in ("onnxruntime", "tensorrt"):
        acc8 = _top1(quantize_int8(fp32, calib[:512], Int8Options(placement=placement)).model, x, y)
        assert acc32 - acc8 <= 0.3, (placement, acc32, acc8)
