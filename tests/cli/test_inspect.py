"""`resnet-deploy inspect` of ONNX models and engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from resnet_deploy.cli import main


def test_inspect_onnx(resnet18_onnx: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(resnet18_onnx.onnx_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "onnx" and d["checker"] == "ok" and d["precision"] == "fp32"
    assert d["op_counts"]["Conv"] == 20 and d["batchnorm_nodes"] == 0 and d["qdq_nodes"] == 0
    assert d["plugin_nodes"] == {} and d["opset"] == {"ai.onnx": 17}
    assert d["inputs"] == [{"name": "input", "shape": ["batch", 3, 64, 64], "dtype": "float"}]
    assert d["outputs"] == [{"name": "logits", "shape": ["batch", 1000], "dtype": "float"}]
    # folding replaces each BN's gamma/beta (2 per channel) by one Conv bias value: 4,800 BN channels in resnet18
    assert d["parameters"] == 11_689_512 - 4_800
    assert d["initializer_bytes"] == 4 * d["parameters"]
    assert d["model_info"]["arch"] == "resnet18" and d["model_info"]["input_size"] == 64
    assert main(["inspect", str(resnet18_onnx.onnx_path)]) == 0
    text = capsys.readouterr().out
    assert "Conv 20" in text and "batchnorm   0" in text and "input       input float (batch, 3, 64, 64)" in text


def test_inspect_reports_qdq_and_plugins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
        helper.make_node("ResidualAddRelu", ["dq", "dq"], ["y"], domain="resnet_deploy"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("resnet_deploy", 1)]
    )
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "q.onnx"))
    assert main(["inspect", str(tmp_path / "q.onnx"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["precision"] == "int8" and d["qdq_nodes"] == 2
    assert d["plugin_nodes"] == {"resnet_deploy::ResidualAddRelu": 1} and d["model_info"] is None


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("text.onnx", "is not an ONNX model or TensorRT engine"),
        ("notes.txt", "is not an ONNX model or TensorRT engine"),
        ("r20.pth", "is not an ONNX model or TensorRT engine"),
        ("empty.onnx", "is not an ONNX model or TensorRT engine"),
        ("missing.onnx", "not found"),
    ],
)
def test_inspect_bad_input(
    name: str,
    match: str,
    bad_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fails_cleanly: Any,
) -> None:
    path = bad_files.get(name, tmp_path / name)
    fails_cleanly(capsys, ["inspect", str(path)], match)


def test_inspect_engine_without_sidecar(tmp_path: Path, capsys: pytest.CaptureFixture[str], fails_cleanly: Any) -> None:
    """trtexec/Polygraphy engines have no sidecar: described with a warning that nothing could be verified (this
    one is not even an engine, which only deserializing it on a GPU could tell)."""
    (tmp_path / "m.engine").write_bytes(b"\x00" * 64)
    assert main(["inspect", str(tmp_path / "m.engine")]) == 0
    out = capsys.readouterr().out
    assert "WARNING   no sidecar" in out and "nothing could be verified" in out
    assert main(["inspect", str(tmp_path / "m.engine"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["integrity"] == "unverified" and doc["sidecar"] is None
    (tmp_path / "empty.engine").write_bytes(b"")
    fails_cleanly(capsys, ["inspect", str(tmp_path / "empty.engine")], "empty.engine")


def test_inspect_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real engine built here by TensorRT(-RTX), described from its sidecar (no GPU needed to inspect)."""
    from onnx import TensorProto, helper, numpy_helper

    from resnet_deploy.backends.tensorrt import compat

    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine

    w = numpy_helper.from_array(np.random.default_rng(1).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
            helper.make_node("Flatten", ["g"], ["logits"], name="flatten"),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = build_engine(model, tmp_path / "tiny.engine", EngineBuildOptions(min_batch=1, max_batch=2))
    assert main(["inspect", str(report.engine_path)]) == 0
    text = capsys.readouterr().out
    assert "engine" in text and "tiny.engine" in text and "precision" in text
    assert main(["inspect", str(report.engine_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "engine" and d["integrity"] == "ok"


@pytest.fixture(scope="module")
def ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fmnist_resnet20 FP32 as OpenVINO IR, written by ``build -o M.xml``."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    xml = tmp_path_factory.mktemp("ir") / "m.xml"
    assert main(["build", "-o", str(xml), "--progress", "none"]) == 0
    return xml


def test_inspect_ir(ir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["inspect", str(ir), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "openvino-ir" and d["precision"] == "fp32" and d["model_info"]["name"] == "fmnist_resnet20"
    assert d["inputs"] == [{"name": "input", "shape": [None, 1, 28, 28], "dtype": "float"}]
    assert d["weights_bytes"] == ir.with_suffix(".bin").stat().st_size
    assert main(["inspect", str(ir)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"model       {ir} (OpenVINO IR v11") and f"weights     {ir.with_suffix('.bin')}" in text
    assert "output      logits float (?, 10)" in text and "Convolution 19" in text


def test_inspect_ir_bad_files(ir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fails_cleanly: Any) -> None:
    """Untrusted IR: a missing or short .bin, an .xml that is not IR or does not parse -- one line each."""
    xml_text, weights = ir.read_bytes(), ir.with_suffix(".bin").read_bytes()

    def case(name: str, xml: bytes, bin_data: bytes | None, match: str) -> None:
        (tmp_path / f"{name}.xml").write_bytes(xml)
        if bin_data is not None:
            (tmp_path / f"{name}.bin").write_bytes(bin_data)
        fails_cleanly(capsys, ["inspect", str(tmp_path / f"{name}.xml")], match)

    case("lonely", xml_text, None, "needs its weights file")
    case("short", xml_text, weights[: len(weights) // 2], "Incorrect weights in bin file")
    case("cut", xml_text[: len(xml_text) // 2], weights, "OpenVINO cannot read")
    case("html", b"<html><body>hello</body></html>", weights, "is not OpenVINO IR")
    case("binary", b"\x00\xff" * 64, weights, "is not OpenVINO IR")
    case("protobuf", b"\x08\x08\x12\x0dresnet-deploy:\x02\x10\x11", weights, "is not OpenVINO IR")  # an ONNX
    (tmp_path / "dir.bin").mkdir()
    case("dir", xml_text, None, "is a directory")


def test_inspect_ir_without_openvino_names_the_extra(ir: Path) -> None:
    """OpenVINO made unimportable in a fresh interpreter, as on a machine without the extra."""
    import subprocess
    import sys

    argv = ["inspect", str(ir)]
    code = f"import sys; sys.modules['openvino'] = None; from resnet_deploy.cli import main; sys.exit(main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("resnet-deploy inspect: error: ") and "pip install 'resnet-deploy[openvino]'" in line
