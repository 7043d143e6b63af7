"""`resnet-deploy eval` end to end: ONNX files and checkpoints, JSON output, default data, and bad input (exit 2)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.cli import main
from resnet_deploy.data.idx import FASHION_MNIST_DIR
from resnet_deploy.info import ModelInfo
from resnet_deploy.models.registry import build_model
from resnet_deploy.models.weights import save_checkpoint
from resnet_deploy.onnx_io import set_info

INFO = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, dataset="fashion-mnist")
needs_fmnist = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)


def constant_onnx(path: Path, cls: int, info: ModelInfo | None = INFO) -> Path:
    """An ONNX file whose logits always rank class ``cls`` first."""
    bias = np.zeros(10, np.float32)
    bias[cls] = 1.0
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "W", "b"], ["logits"])],
        "constant",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(np.zeros((784, 10), np.float32), "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if info is not None:
        set_info(model, info)
    onnx.save(model, str(path))
    return path


def npz(path: Path, labels: list[int]) -> Path:
    np.savez(path, x=np.zeros((len(labels), 28, 28), np.uint8), y=np.array(labels))
    return path


def test_json_on_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = constant_onnx(tmp_path / "c2.onnx", 2)
    data = npz(tmp_path / "d.npz", [2, 2, 1, 0, 2, 9, 2, 3])
    assert main(["eval", str(model), "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["count"] == 8 and out["top1"] == 50.0 and out["correct_top1"] == 4
    assert out["per_class"][2] == {"index": 2, "label": None, "count": 4, "correct": 4, "top1": 100.0}
    assert out["top5_k"] == 5 and out["agreement"] is None


def test_reference_and_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = npz(tmp_path / "d.npz", [0, 1, 2, 3])
    out_file = tmp_path / "report.json"
    rc = main(
        [
            "eval",
            str(constant_onnx(tmp_path / "a.onnx", 1)),
            "--data",
            str(data),
            "--reference",
            str(constant_onnx(tmp_path / "b.onnx", 3)),
            "--output",
            str(out_file),
            "--batch-size",
            "3",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "top-1    25.00 %" in text and "agrees   0.00 %" in text and str(out_file) in text
    report = json.loads(out_file.read_text())
    assert report["agreement"] == 0.0 and report["reference_top1"] == 25.0 and report["batch_size"] == 3


@needs_fmnist
def test_default_data_is_fashion_mnist_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(constant_onnx(tmp_path / "c.onnx", 5)), "--limit", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "fashion-mnist:test" and out["count"] == 300
    assert out["per_class"][5]["label"] == "Sandal" and out["per_class"][5]["top1"] == 100.0


@needs_fmnist
def test_checkpoint_vs_its_onnx_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet_deploy.build import export_onnx
    from resnet_deploy.models.weights import load_model
    from resnet_deploy.onnx_io import save_onnx

    info = ModelInfo(
        arch="resnet20",
        num_classes=10,
        in_channels=1,
        input_size=28,
        mean=[0.286],
        std=[0.353],
        dataset="fashion-mnist",
    )
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", build_model("resnet20", 10, 1), info)
    module, loaded = load_model(weights=ckpt)
    save_onnx(export_onnx(module, loaded)[0], tmp_path / "tiny.onnx")
    args = ["eval", str(ckpt), "--reference", str(tmp_path / "tiny.onnx"), "--limit", "64", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["count"] == 64 and out["model"] == "tiny.safetensors (pytorch, fp32)"
    assert out["reference"] == "tiny.onnx (onnxruntime, fp32)"
    assert out["agreement"] >= 95.0  # same weights; only float rounding near ties may differ


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda p: ["eval", str(p / "missing.onnx"), "--data", str(p / "d.npz")], "not found"),
        (lambda p: ["eval", str(p / "c.onnx"), "--data", str(p / "nowhere")], "data '.*nowhere' not found"),
        (lambda p: ["eval", str(p / "c.onnx"), "--data", str(p / "empty")], "is empty"),
        (lambda p: ["eval", str(p / "c.onnx"), "--data", str(p / "bad.npz")], "out of range"),
        (lambda p: ["eval", str(p / "foreign.onnx")], "--data is required"),
        (lambda p: ["eval", str(p / "c.onnx"), "--data", str(p / "d.npz"), "--batch-size", "0"], "--batch-size"),
        (lambda p: ["eval", str(p / "c.onnx"), "--data", str(p / "d.npz"), "--limit", "0"], "--limit"),
        (lambda p: ["eval", str(p / "c.onnx"), "--data", str(p / "d.npz"), "-o", str(p / "no/dir/r.json")], "folder"),
        (lambda p: ["eval", str(p / "c.onnx"), "--arch", "resnet20", "--data", str(p / "d.npz")], "--arch applies"),
        (lambda p: ["eval", str(p / "d.npz"), "--data", str(p / "d.npz")], "is not a model"),
    ],
)
def test_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args: Callable[[Path], list[str]], message: str
) -> None:
    constant_onnx(tmp_path / "c.onnx", 0)
    constant_onnx(tmp_path / "foreign.onnx", 0, info=None)
    npz(tmp_path / "d.npz", [0, 1])
    npz(tmp_path / "bad.npz", [0, 10])
    (tmp_path / "empty").mkdir()
    assert main(make_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet-deploy eval: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


@needs_fmnist
def test_runtime_openvino_runs_the_onnx_on_openvino(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from resnet_deploy.api import export_model

    path = export_model(weights="fmnist_resnet20", out=tmp_path / "m.onnx").path
    assert main(["eval", str(path), "--runtime", "openvino", "--limit", "200", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 200 and "openvino" in report["model"] and report["top1"] > 80
    # a checkpoint has no runtime to choose: one line, exit 2
    assert main(["eval", "fmnist_resnet20", "--runtime", "openvino", "--limit", "10"]) == 2
    assert "runtime" in capsys.readouterr().err


def test_eval_runs_a_graph_on_the_runtime_auto_recorded_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from resnet_deploy.info import RUNTIME_KEY
    from resnet_deploy.onnx_io import load_onnx, save_onnx, set_metadata

    path = constant_onnx(tmp_path / "c2.onnx", 2)
    save_onnx(set_metadata(load_onnx(path), {RUNTIME_KEY: "openvino"}), path)
    data = npz(tmp_path / "d.npz", [2, 2, 1, 0])
    assert main(["eval", str(path), "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "c2.onnx (openvino, fp32)" and out["top1"] == 50.0 and out["warnings"] == []
    assert main(["eval", str(path), "--data", str(data), "--runtime", "onnxruntime"]) == 0
    assert "model    c2.onnx (onnxruntime, fp32)" in capsys.readouterr().out
    save_onnx(set_metadata(load_onnx(path), {RUNTIME_KEY: "tvm"}), path)  # validated: ignored, with one warning
    assert main(["eval", str(path), "--data", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "model    c2.onnx (onnxruntime, fp32)" in out
    assert err.startswith("WARNING: ") and "resnet_deploy.runtime 'tvm'" in err and len(err.splitlines()) == 1
