"""Accuracy and agreement in the benchmark report, on real Fashion-MNIST images."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.benchmark import (
    BenchConfig,
    Target,
    plot,
    run_benchmark,
    to_markdown,
)
from resnet_deploy.build import export_onnx
from resnet_deploy.models.weights import load_model

FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


@pytest.mark.skipif(not FMNIST.exists(), reason="Fashion-MNIST (Debian dataset-fashion-mnist) not installed")
def test_accuracy_and_agreement_in_the_same_report(tmp_path: Path) -> None:
    module, info = load_model("resnet20", num_classes=10, in_channels=1, input_size=28)
    proto, _ = export_onnx(module, info)
    targets = [
        Target("r20 fp32 onnxruntime", OnnxRuntimeModel(proto, threads=1), group="g"),
        Target("r20 fp32 pytorch", TorchModel(module, info), group="g"),
    ]
    cfg = BenchConfig(batches=[1], duration_s=0.05, warmup_ms=0, min_iterations=2, data="fashion-mnist:test")
    cfg.data_limit = 200
    report = run_benchmark(targets, cfg)
    acc = {a["model"]: a for a in report.accuracy}
    assert acc["r20 fp32 onnxruntime"]["reference"] is None  # the reference itself
    assert acc["r20 fp32 pytorch"]["reference"] == "r20 fp32 onnxruntime"
    assert acc["r20 fp32 pytorch"]["agreement_top1"] >= 99.0  # same weights, two runtimes
    assert acc["r20 fp32 pytorch"]["count"] == 200
    assert all("accuracy" in r for r in report.results)
    plot(report, tmp_path / "acc.png")
    assert "Accuracy on fashion-mnist:test" in to_markdown(report)
