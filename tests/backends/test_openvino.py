"""The OpenVINO backend on the real OpenVINO runtime: our FP32 and INT8 (ONNX Runtime placement) graphs as .onnx and
as IR, the same interface as ONNX Runtime's, and INT8 accuracy on all 10,000 Fashion-MNIST test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.api import BuildOptions, build, evaluate_model, load
from resnet_deploy.data.idx import FASHION_MNIST_DIR
from resnet_deploy.errors import UserError

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'resnet-deploy[openvino]')")

needs_fmnist = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fmnist_resnet20 FP32 and INT8 .onnx (the INT8 one for OpenVINO, calibrated once) and the INT8 IR."""
    d = tmp_path_factory.mktemp("ov")
    out = {"fp32": d / "fp32.onnx", "int8": d / "int8.onnx", "ir": d / "int8.xml"}
    build(BuildOptions(output=out["fp32"], weights="fmnist_resnet20", precision="fp32"))
    cache = d / "calib.json"
    build(BuildOptions(output=out["int8"], onnx=out["fp32"], precision="int8", backend="openvino"))
    opts = BuildOptions(output=out["ir"], onnx=out["fp32"], precision="int8", backend="openvino")
    opts.int8.cache_path = cache
    build(opts)
    return out


def test_fp32_onnx_on_openvino_matches_onnxruntime(graphs: dict[str, Path]) -> None:
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    ov, ort = load(graphs["fp32"], runtime="openvino", threads=1), load(graphs["fp32"], threads=1)
    assert ov.backend == "openvino" and ort.backend == "onnxruntime"
    assert ov.info == ort.info and ov.info is not None and ov.info.name == "fmnist_resnet20"
    assert ov.precision == "fp32" and ov.input_shape == (None, 1, 28, 28) and ov.input_dtype == np.float32
    np.testing.assert_allclose(ov.predict(x), ort.predict(x), rtol=1e-4, atol=1e-4)


def test_int8_graph_is_our_openvino_placement_and_runs(graphs: dict[str, Path]) -> None:
    from resnet_deploy.onnx_io import load_onnx

    meta = {p.key: p.value for p in load_onnx(graphs["int8"], check=False).metadata_props}
    assert meta["resnet_deploy.qdq_placement"] == "openvino"
    model = load(graphs["int8"], runtime="openvino")
    assert model.precision == "int8"
    x = np.random.default_rng(1).random((300, 1, 28, 28), dtype=np.float32)
    logits = model.predict(x)
    assert logits.shape == (300, 10) and np.isfinite(logits).all()
    # predict() copies out of the request's output tensor: a second call does not overwrite the first's result
    first = model.predict(x[:2])
    model.predict(x[2:4])
    np.testing.assert_array_equal(first, model.predict(x[:2]))


def test_ir_carries_the_metadata_and_gives_the_onnx_logits(graphs: dict[str, Path]) -> None:
    ir = graphs["ir"]
    assert ir.with_suffix(".bin").is_file()
    from_ir, from_onnx = load(ir), load(graphs["int8"], runtime="openvino")
    assert from_ir.backend == "openvino" and from_ir.precision == "int8"
    assert from_ir.info == from_onnx.info and from_ir.path == ir
    x = np.random.default_rng(2).random((8, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(from_ir.predict(x), from_onnx.predict(x), rtol=1e-5, atol=1e-5)


def test_bad_requests_are_one_line_errors(graphs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="applies to ONNX Runtime"):
        load(graphs["fp32"], runtime="openvino", providers=["CPUExecutionProvider"])
    with pytest.raises(UserError, match="unknown runtime"):
        load(graphs["fp32"], runtime="tvm")
    with pytest.raises(UserError, match="only the openvino runtime"):
        load(graphs["ir"], runtime="onnxruntime")
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(graphs["ir"].read_text())
    with pytest.raises(UserError, match="weights file"):
        load(lonely)
    junk = tmp_path / "junk.xml"
    junk.with_suffix(".bin").write_bytes(b"")
    for text, match in (
        ("<net><broken", "names no IR version"),  # refused before OpenVINO sees it
        ("<html><body>not IR</body></html>", "root element is not <net>"),
        ('<?xml version="1.0"?><!DOCTYPE net [<!ENTITY a "aaaa">]><net version="11">&a;</net>', "DTD or entity"),
        ('<net name="m" version="11"><layers><layer id="0" type="Nope"', "OpenVINO cannot read"),  # OpenVINO's own
        ("<!-- -->" * 5000 + "<html>", "root element is not <net>"),  # at once: the header check cannot backtrack
    ):
        junk.write_text(text)
        with pytest.raises(UserError, match=match):
            load(junk)
    with pytest.raises(UserError, match="not an ONNX model"):
        (tmp_path / "junk.onnx").write_bytes(b"junk")
        load(tmp_path / "junk.onnx", runtime="openvino")


def test_build_refuses_what_openvino_cannot_take(graphs: dict[str, Path], tmp_path: Path) -> None:
    for output, extra, match in (
        (tmp_path / "m.engine", {}, "writes .onnx"),
        (tmp_path / "m.onnx", {"residual_fusion": "plugin"}, "TensorRT plugin"),
    ):
        with pytest.raises(UserError, match=match):
            build(BuildOptions(output=output, onnx=graphs["fp32"], precision="int8", backend="openvino", **extra))
    opts = BuildOptions(output=tmp_path / "m.onnx", onnx=graphs["fp32"], precision="int8", backend="openvino")
    opts.int8.placement = "tensorrt"
    with pytest.raises(UserError, match="float convolutions"):
        build(opts)
    assert list(tmp_path.iterdir()) == []


@needs_fmnist
@pytest.mark.slow
def test_int8_accuracy_on_openvino_is_within_0_3_points_of_onnxruntime(graphs: dict[str, Path]) -> None:
    """All 10,000 test images: the same INT8 graph on both CPU runtimes."""
    on_ov = evaluate_model(graphs["int8"], "fashion-mnist:test", runtime="openvino", progress=False)
    on_ort = evaluate_model(graphs["int8"], "fashion-mnist:test", progress=False)
    assert on_ov.count == on_ort.count == 10_000
    assert abs(on_ov.top1 - on_ort.top1) <= 0.3, (on_ov.top1, on_ort.top1)
    assert on_ov.top1 > 90.0  # and the model is the trained one, not a broken graph that both runtimes agree on
