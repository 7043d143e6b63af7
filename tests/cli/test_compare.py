"""`resnet-deploy compare` end to end: exit 0 on pass and 1 on fail, --json, -o, --layers --plot, and bad input
(exit 2, one line). Engines: refused in one line without a TensorRT GPU; compared on one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.cli import main
from resnet_deploy.info import ModelInfo
from resnet_deploy.onnx_io import set_info

INFO = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, dataset="fashion-mnist")


def linear_onnx(path: Path, scale: float, bias: float = 0.0) -> Path:
    """logits = scale * (x flattened @ W) + bias, W fixed: two such graphs differ by a known amount."""
    w = np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32) * scale
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "b"], ["hidden"]),
            helper.make_node("Relu", ["hidden"], ["logits"]),
        ],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.full(10, bias, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_info(model, INFO)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(1).uniform(size=(12, 1, 28, 28)).astype(np.float32))
    return path


def test_pass_and_fail_exit_codes(tmp_path: Path, inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = linear_onnx(tmp_path / "a.onnx", 1.0)
    assert main(["compare", str(a), str(a), "--input", str(inputs)]) == 0
    out = capsys.readouterr().out
    assert "PASSED output 'logits': 0 of 120 elements" in out and "top-1 100.00 %" in out
    b = linear_onnx(tmp_path / "b.onnx", 1.0, bias=0.5)  # every logit 0.5 higher where the ReLU lets it through
    assert main(["compare", str(b), str(a), "--input", str(inputs), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (o,) = doc["outputs"]
    assert doc["passed"] is False and doc["samples"] == 12 and o["passed"] is False
    assert o["max_abs"] == pytest.approx(0.5, abs=1e-5) and o["top1_agreement"] == 100.0
    # the same difference passes once either tolerance covers it: Polygraphy's rule
    assert main(["compare", str(b), str(a), "--input", str(inputs), "--atol", "0.51"]) == 0
    capsys.readouterr()


def test_report_file_and_layers_plot(tmp_path: Path, inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = linear_onnx(tmp_path / "a.onnx", 1.0)
    b = linear_onnx(tmp_path / "b.onnx", 1.01)
    report, plot = tmp_path / "r.json", tmp_path / "sqnr.png"
    argv = ["compare", str(b), str(a), "--input", str(inputs), "--layers", "--plot", str(plot), "-o", str(report)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "first difference: flat" not in out and "first difference: hidden" in out
    doc = json.loads(report.read_text())
    layers = doc["layers"]["layers"]
    assert [x["name"] for x in layers] == ["flat", "hidden", "logits"]
    assert layers[0]["identical"] and layers[0]["sqnr_db"] is None
    # a uniform 1 % weight change: the error is 1 % of the signal, 40 dB
    assert layers[1]["sqnr_db"] == pytest.approx(40.0, abs=1e-3)
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_bad_input_is_one_line(
    tmp_path: Path, inputs: Path, capsys: pytest.CaptureFixture[str], fails_cleanly: Any
) -> None:
    a = linear_onnx(tmp_path / "a.onnx", 1.0)
    fails_cleanly(capsys, ["compare", str(a), str(tmp_path / "missing.onnx")], "not found", tmp_path)
    fails_cleanly(capsys, ["compare", "fmnist_resnet20", str(a), "--layers"], "A is a checkpoint", tmp_path)
    fails_cleanly(capsys, ["compare", str(a), str(a), "--plot", str(tmp_path / "p.png")], "needs --layers", tmp_path)
    fails_cleanly(capsys, ["compare", str(a), str(a), "--atol", "-1"], "--atol", tmp_path)
    fails_cleanly(capsys, ["compare", str(a), str(a), "--input", str(a), "-o", str(a)], "", tmp_path)
    with pytest.raises(SystemExit) as exc:  # argparse: --data and --input are one choice
        main(["compare", str(a), str(a), "--input", str(inputs), "--data", "fashion-mnist:test"])
    assert exc.value.code == 2
    capsys.readouterr()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """fmnist_resnet20 as an FP32 TensorRT(-RTX) engine and as ONNX."""
    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    from resnet_deploy.build import BuildOptions, build

    d = tmp_path_factory.mktemp("engine")
    build(BuildOptions(output=d / "r20.engine", weights="fmnist_resnet20", backend="tensorrt"))
    build(BuildOptions(output=d / "r20.onnx", weights="fmnist_resnet20"))
    return d / "r20.engine", d / "r20.onnx"


def test_engines_without_a_gpu_are_refused_in_one_line(
    engine: tuple[Path, Path], capsys: pytest.CaptureFixture[str], fails_cleanly: Any
) -> None:
    if compat.gpu_runtime_status()[0]:
        pytest.skip("a TensorRT GPU runtime is usable here: the engine runs (see the tensorrt_gpu test)")
    fails_cleanly(capsys, ["compare", str(engine[0]), str(engine[1]), "--limit", "8"], "cannot run")


@pytest.mark.tensorrt_gpu
def test_engine_against_onnxruntime_on_a_gpu(engine: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["compare", str(engine[0]), str(engine[1]), "--limit", "512", "--atol", "1e-3", "--rtol", "1e-3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "top-1 100.00 %" in out or "top-1 99." in out
