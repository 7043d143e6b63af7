"""evaluate() on real Fashion-MNIST with models that are known functions, so every figure is predictable exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.backends.base import InferenceModel
from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.data import open_dataset
from resnet_deploy.data.idx import FASHION_MNIST_DIR, load_fashion_mnist
from resnet_deploy.errors import UserError
from resnet_deploy.evaluate import evaluate
from resnet_deploy.info import ModelInfo
from resnet_deploy.models.bundled import bundled_checkpoints

pytestmark = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)
INFO = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, dataset="fashion-mnist")
RANKING = [3, 7, 1, 0, 9, 2, 4, 5, 6, 8]  # the constant model's classes, best first


def linear_onnx(weight: np.ndarray, bias: np.ndarray, in_shape: tuple[int, int, int] = (1, 28, 28)) -> onnx.ModelProto:
    """logits = flatten(x) @ weight + bias, as an ONNX graph with a dynamic batch axis."""
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "W", "b"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(bias)])],
        [
            numpy_helper.from_array(weight.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def constant_model(ranking: list[int] = RANKING, num_classes: int = 10) -> OnnxRuntimeModel:
    """Always the same logits: class ranking[0] first, ranking[1] second, ..."""
    bias = np.full(num_classes, -100.0)
    for place, cls in enumerate(ranking):
        bias[cls] = 10.0 - place
    return OnnxRuntimeModel(linear_onnx(np.zeros((784, num_classes)), bias))


THRESHOLD = 0.3


def brightness_model() -> OnnxRuntimeModel:
    """Class 0 when the mean pixel exceeds THRESHOLD, else class 1 (every other class far below)."""
    weight = np.zeros((784, 10))
    weight[:, 0] = 1.0 / 784
    bias = np.full(10, -100.0)
    bias[0], bias[1] = 0.0, THRESHOLD
    return OnnxRuntimeModel(linear_onnx(weight, bias))


class ConstantTorch(torch.nn.Module):
    def __init__(self, cls: int) -> None:
        super().__init__()
        self.cls = cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 10)
        out[:, self.cls] = 1.0
        return out


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return load_fashion_mnist("test")


def test_constant_model_exact_figures(test_set: tuple[np.ndarray, np.ndarray]) -> None:
    _, y = test_set
    report = evaluate(constant_model(), open_dataset("fashion-mnist:test", INFO), progress=False)
    assert report.count == 10000
    assert report.correct_top1 == int((y == 3).sum()) == 1000
    assert report.top1 == 10.0
    assert report.correct_top5 == int(np.isin(y, RANKING[:5]).sum())
    assert report.top5 == 50.0
    assert [c.top1 for c in report.classes] == [100.0 if i == 3 else 0.0 for i in range(10)]
    assert [c.count for c in report.classes] == np.bincount(y, minlength=10).tolist()
    assert report.classes[3].label == "Dress"
    assert report.confusion is not None
    assert [row[3] for row in report.confusion] == np.bincount(y, minlength=10).tolist()
    assert sum(map(sum, report.confusion)) == 10000
    assert report.agreement is None and report.notes == []


def test_limit_and_batch_size(test_set: tuple[np.ndarray, np.ndarray]) -> None:
    _, y = test_set
    ds = open_dataset("fashion-mnist:test", INFO)
    a = evaluate(constant_model(), ds, batch_size=7, limit=1234, progress=False)
    b = evaluate(constant_model(), ds, batch_size=5000, limit=1234, progress=False)
    assert a.count == 1234
    assert a.correct_top1 == int((y[:1234] == 3).sum())
    assert a.to_dict() | {"seconds": 0, "batch_size": 0} == b.to_dict() | {"seconds": 0, "batch_size": 0}


def test_image_dependent_model(test_set: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = test_set
    mean = x.reshape(len(x), -1).astype(np.float64).mean(axis=1)
    assert np.abs(mean - THRESHOLD).min() > 1e-5, "pick another THRESHOLD: an image sits on it"
    pred = np.where(mean > THRESHOLD, 0, 1)
    report = evaluate(brightness_model(), open_dataset("fashion-mnist:test", INFO), progress=False)
    assert report.correct_top1 == int((pred == y).sum())
    assert report.classes[0].correct == int(((pred == 0) & (y == 0)).sum())
    assert report.classes[1].correct == int(((pred == 1) & (y == 1)).sum())
    assert report.confusion is not None and report.confusion[4][0] == int(((pred == 0) & (y == 4)).sum())
    # against "always class 0" the two agree exactly where the image is bright
    vs_const = evaluate(
        brightness_model(), open_dataset("fashion-mnist:test", INFO), reference=constant_model([0]), progress=False
    )
    assert vs_const.agreement_count == int((pred == 0).sum())
    assert vs_const.reference_correct_top1 == 1000


def test_agreement() -> None:
    ds = open_dataset("fashion-mnist:test", INFO)
    model = brightness_model()
    same = evaluate(model, ds, reference=model, limit=2000, progress=False)
    assert same.agreement == 100.0 and same.agreement_count == 2000
    assert same.reference_top1 == same.top1
    other = evaluate(constant_model([3]), ds, reference=constant_model([7]), limit=2000, progress=False)
    assert other.agreement == 0.0
    # the same function on two backends
    torch_model = TorchModel(ConstantTorch(3), INFO)
    cross = evaluate(constant_model([3]), ds, reference=torch_model, limit=500, progress=False)
    assert cross.agreement == 100.0
    assert "pytorch" in str(cross.reference) and "onnxruntime" in cross.model


def test_report_json_and_summary() -> None:
    report = evaluate(
        constant_model(),
        open_dataset("fashion-mnist:test", INFO),
        reference=constant_model(),
        limit=100,
        progress=False,
    )
    d = json.loads(json.dumps(report.to_dict()))
    assert list(d)[:6] == ["format", "model", "dataset", "count", "top1", "top5"]
    assert d["dataset"] == "fashion-mnist:test" and d["count"] == 100 and d["agreement"] == 100.0
    assert d["per_class"][3]["label"] == "Dress" and d["per_class"][3]["top1"] == 100.0
    text = report.summary()
    assert "top-1" in text and "Ankle boot" in text and "agrees   100.00 %" in text


def test_more_outputs_than_classes_is_noted() -> None:
    report = evaluate(constant_model(num_classes=12), open_dataset("fashion-mnist:test"), limit=50, progress=False)
    assert report.count == 50 and len(report.classes) == 10
    assert report.notes and "12 outputs" in report.notes[0]


def test_errors(tmp_path: Path) -> None:
    ds = open_dataset("fashion-mnist:test")
    with pytest.raises(UserError, match="out of range for a model with 5 outputs"):
        evaluate(constant_model([0, 1], num_classes=5), ds, progress=False)
    np.savez(tmp_path / "rgb.npz", x=np.zeros((4, 3, 32, 32), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(UserError, match=r"shape 3x32x32; the model takes \(N, 1, 28, 28\)"):
        evaluate(constant_model(), open_dataset(str(tmp_path / "rgb.npz")), progress=False)
    with pytest.raises(UserError, match="reference model takes"):
        rgb = OnnxRuntimeModel(linear_onnx(np.zeros((3 * 32 * 32, 10)), np.zeros(10), (3, 32, 32)))
        evaluate(constant_model(), ds, reference=rgb, progress=False)
    with pytest.raises(UserError, match="batch size"):
        evaluate(constant_model(), ds, batch_size=0, progress=False)


class InterruptAfterFirstBatch(InferenceModel):
    def __init__(self) -> None:
        super().__init__(
            input_name="input", input_shape=(None, 1, 28, 28), input_dtype=np.dtype(np.float32), output_name="logits"
        )
        self.calls = 0

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls > 1:
            raise KeyboardInterrupt
        return np.zeros((batch.shape[0], 10), np.float32)


def test_ctrl_c_propagates(capsys: pytest.CaptureFixture[str]) -> None:
    model = InterruptAfterFirstBatch()
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, open_dataset("fashion-mnist:test"), batch_size=100, progress=True)
    assert model.calls == 2
    assert capsys.readouterr().err == ""  # not a terminal: no progress bar drawn


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fmnist_resnet20", "fmnist_resnet50_small"])
def test_bundled_checkpoint_accuracy_via_onnxruntime(name: str) -> None:
    if name not in bundled_checkpoints():
        pytest.skip(f"bundled checkpoint {name} not trained yet")
    from resnet_deploy.build import export_onnx
    from resnet_deploy.models.weights import load_model

    module, info = load_model(weights=name)
    proto, _ = export_onnx(module, info)
    model = OnnxRuntimeModel(proto)
    assert model.info is not None and model.info.dataset == "fashion-mnist"
    report = evaluate(model, open_dataset("fashion-mnist:test", model.info), progress=False)
    assert report.count == 10000
    assert report.top1 >= 91.0, f"{name}: top-1 {report.top1:.2f} % on ONNX Runtime"
