"""``resnet_deploy.load``: one entry point for engines and ONNX files, with clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import resnet_deploy
from resnet_deploy.backends.base import InferenceModel
from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.errors import UserError


def tiny_graph() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(108, dtype=np.float32).reshape(4, 3, 3, 3) / 100, "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_load_is_exported_lazily() -> None:
    assert resnet_deploy.load is not None and callable(resnet_deploy.load)


def test_load_onnx(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_graph().SerializeToString())
    model = resnet_deploy.load(path, threads=1)
    assert isinstance(model, InferenceModel) and model.backend == "onnxruntime"
    x = np.ones((3, 3, 8, 8), np.float32)
    out = model.predict(x)
    # Conv of ones (zero padding) then mean: exact value checked against numpy.
    w = np.arange(108, dtype=np.float32).reshape(4, 3, 3, 3) / 100
    padded = np.pad(np.ones((3, 8, 8), np.float32), ((0, 0), (1, 1), (1, 1)))
    conv = np.array(
        [[[(padded[:, i : i + 3, j : j + 3] * w[k]).sum() for j in range(8)] for i in range(8)] for k in range(4)]
    )
    np.testing.assert_allclose(out, np.tile(conv.mean(axis=(1, 2)), (3, 1)), rtol=1e-5)
    probs, idx = model.topk(x, k=2)
    assert idx.tolist() == [[3, 2]] * 3 and probs.shape == (3, 2)


def test_load_refusals(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        resnet_deploy.load(tmp_path / "missing.onnx")
    with pytest.raises(UserError, match="is not a file"):
        resnet_deploy.load(tmp_path)
    (tmp_path / "notes.txt").write_bytes(b"x")
    with pytest.raises(UserError, match=r"is not a model: expected .onnx, an OpenVINO IR \(.xml\), a TensorRT engine"):
        resnet_deploy.load(tmp_path / "notes.txt")
    (tmp_path / "weights.pth").write_bytes(b"x")  # a checkpoint by its suffix: read safely, refused as corrupt
    with pytest.raises(UserError, match="corrupt, or not a plain state dict"):
        resnet_deploy.load(tmp_path / "weights.pth")
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_graph().SerializeToString())
    with pytest.raises(UserError, match="unknown option.*cuda_graphs"):
        resnet_deploy.load(path, cuda_graphs=True)
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(UserError):
        resnet_deploy.load(tmp_path / "bad.onnx")


@pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")
def test_load_engine(tmp_path: Path) -> None:
    from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine

    report = build_engine(tiny_graph(), tmp_path / "tiny.engine", EngineBuildOptions(max_batch=4))
    with pytest.raises(UserError, match="unknown option.*threads"):
        resnet_deploy.load(report.engine_path, threads=2)
    usable, reason = compat.gpu_runtime_status()
    if not usable:
        with pytest.raises(UserError, match="cannot run") as exc:
            resnet_deploy.load(report.engine_path)
        assert reason in str(exc.value)
        return
    # NEVER RUN so far (no TensorRT-capable GPU on any machine of this project).
    onnx_path = tmp_path / "tiny.onnx"
    onnx_path.write_bytes(tiny_graph().SerializeToString())
    with resnet_deploy.load(report.engine_path) as model:
        assert model.backend == "tensorrt" and model.max_batch == 4
        x = np.ones((9, 3, 8, 8), np.float32)
        np.testing.assert_allclose(model.predict(x), resnet_deploy.load(onnx_path).predict(x), rtol=1e-3)


def _tiny_with_runtime(path: Path, runtime: str) -> Path:
    """tiny_graph carrying the runtime ``build --backend auto`` records (any value, for the validation)."""
    from resnet_deploy.info import RUNTIME_KEY
    from resnet_deploy.onnx_io import set_metadata

    path.write_bytes(set_metadata(tiny_graph(), {RUNTIME_KEY: runtime}).SerializeToString())
    return path


def test_load_follows_the_recorded_runtime_and_runtime_wins(tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    path = _tiny_with_runtime(tmp_path / "auto.onnx", "openvino")
    x = np.ones((2, 3, 8, 8), np.float32)
    model = resnet_deploy.load(path, threads=1)
    assert model.backend == "openvino" and getattr(model, "warnings", []) == []
    ort = resnet_deploy.load(path, runtime="onnxruntime")
    assert ort.backend == "onnxruntime"
    np.testing.assert_allclose(model.predict(x), ort.predict(x), rtol=1e-5)
    # options only ONNX Runtime takes name it as plainly as runtime= does
    assert resnet_deploy.load(path, spinning=True).backend == "onnxruntime"
    assert resnet_deploy.load(_tiny_with_runtime(tmp_path / "ort.onnx", "onnxruntime")).backend == "onnxruntime"
    assert resnet_deploy.load(_tiny_with_runtime(tmp_path / "ort.onnx", "onnxruntime"), runtime="openvino").backend == (
        "openvino"
    )


def test_an_unknown_recorded_runtime_is_ignored_with_one_warning(tmp_path: Path) -> None:
    path = _tiny_with_runtime(tmp_path / "odd.onnx", "tvm-9000")
    with pytest.warns(UserWarning, match="resnet_deploy.runtime 'tvm-9000' is not a runtime resnet-deploy knows"):
        model = resnet_deploy.load(path)
    assert model.backend == "onnxruntime"
    assert len(model.warnings) == 1 and "ignored" in model.warnings[0]  # type: ignore[attr-defined]


def test_without_openvino_a_graph_auto_gave_to_openvino_runs_on_onnxruntime(tmp_path: Path) -> None:
    """OpenVINO made unimportable in a fresh interpreter, as on a machine without the extra."""
    import json
    import subprocess
    import sys

    path = _tiny_with_runtime(tmp_path / "auto.onnx", "openvino")
    code = (
        "import sys, json, warnings\n"
        "sys.modules['openvino'] = None\n"
        "import resnet_deploy\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    m = resnet_deploy.load({str(path)!r})\n"
        "print(json.dumps([m.backend, m.warnings, [str(w.message) for w in caught]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    backend, warnings, caught = json.loads(done.stdout.strip().splitlines()[-1])
    assert backend == "onnxruntime" and warnings == caught and len(warnings) == 1
    assert "OpenVINO is not installed" in warnings[0] and "resnet-deploy[openvino]" in warnings[0]
    assert "\n" not in warnings[0]
