"""Engine building through the real TensorRT builder (TensorRT-RTX on the GPU-less CI machine).

Every assertion is about what TensorRT itself reported (layers of the parsed network, I/O tensors, the
optimization profile read back) or what was written to disk; nothing here is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.errors import UserError
from resnet_deploy.info import from_sidecar

pytestmark = pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")

from resnet_deploy.backends.tensorrt import sidecar as sc  # noqa: E402
from resnet_deploy.backends.tensorrt.builder import (  # noqa: E402
    TIMING_CACHE_MAGIC,
    EngineBuildOptions,
    build_engine,
)
from resnet_deploy.backends.tensorrt.engine_inspector import format_engine_summary, inspect_engine  # noqa: E402

# ------------------------------------------------------------------------------------------------ graphs


def export(arch: str, input_size: int, num_classes: int = 10) -> onnx.ModelProto:
    from resnet_deploy.build import export_onnx
    from resnet_deploy.models.weights import load_model

    model, info = load_model(arch, num_classes=num_classes, input_size=input_size)
    proto, _ = export_onnx(model, info)
    return proto


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        from resnet_deploy.passes.fp16 import to_fp16 as fp16_pass
    except ImportError:
        pytest.skip("waits for the FP16 pass (resnet_deploy/passes/fp16.py)")
    converted, _ = fp16_pass(model)
    return converted


def qdq_conv_graph(channels: int = 8, size: int = 16, classes: int = 5) -> onnx.ModelProto:
    """Symmetric INT8 Q/DQ: per-tensor Q/DQ on conv inputs, per-channel (axis 0) weights, float biases."""
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def act_qdq(x: str, scale: float, tag: str) -> str:
        s, z = const(f"{tag}_s", np.array(scale, np.float32)), const(f"{tag}_z", np.array(0, np.int8))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{tag}_q"], name=f"{tag}_Q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tag}_q", s, z], [f"{tag}_dq"], name=f"{tag}_DQ"))
        return f"{tag}_dq"

    def weight_qdq(w: np.ndarray, tag: str) -> str:
        scale = (np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127.0).astype(np.float32)
        q = np.clip(np.rint(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
        wq, s = const(f"{tag}_wq", q), const(f"{tag}_ws", scale)
        z = const(f"{tag}_wz", np.zeros(w.shape[0], np.int8))
        nodes.append(helper.make_node("DequantizeLinear", [wq, s, z], [f"{tag}_w"], name=f"{tag}_wDQ", axis=0))
        return f"{tag}_w"

    x = act_qdq("input", 1 / 64, "in")
    w1 = weight_qdq(rng.normal(size=(channels, 3, 3, 3)).astype(np.float32), "c1")
    b1 = const("c1_b", rng.normal(size=channels).astype(np.float32))
    nodes.append(helper.make_node("Conv", [x, w1, b1], ["c1_y"], name="conv1", pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1_y"], ["c1_r"], name="relu1"))
    x = act_qdq("c1_r", 1 / 16, "a1")
    w2 = weight_qdq(rng.normal(size=(channels, channels, 3, 3)).astype(np.float32), "c2")
    b2 = const("c2_b", rng.normal(size=channels).astype(np.float32))
    nodes.append(helper.make_node("Conv", [x, w2, b2], ["c2_y"], name="conv2", pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c2_y"], ["c2_r"], name="relu2"))
    nodes.append(helper.make_node("GlobalAveragePool", ["c2_r"], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1))
    fc_w = const("fc_w", rng.normal(size=(classes, channels)).astype(np.float32))
    fc_b = const("fc_b", np.zeros(classes, np.float32))
    nodes.append(helper.make_node("Gemm", ["flat", fc_w, fc_b], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def tiny_graph(batch: int | str = "batch", op: str = "Relu") -> onnx.ModelProto:
    """Conv -> ``op`` -> GAP -> Flatten: builds in a fraction of a second."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32) / 27, "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(op, ["c"], ["r"], name="act", domain="" if op == "Relu" else "custom.domain"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["logits"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        [w],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("custom.domain", 1)] if op != "Relu" else [])
    return helper.make_model(graph, opset_imports=opsets)


def onnx_count(model: onnx.ModelProto, op: str) -> int:
    return sum(1 for n in model.graph.node if n.op_type == op)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def resnet18_64() -> onnx.ModelProto:
    return export("resnet18", 64)


# ------------------------------------------------------------------------------------------------- builds


def check_build(report, model: onnx.ModelProto, in_shape: list[int], classes: int, precision: str) -> dict:
    """Assertions shared by every real build; returns the sidecar."""
    assert report.engine_path.is_file() and report.engine_bytes == report.engine_path.stat().st_size > 0
    assert report.precision == precision
    assert report.inputs == [{"name": "input", "dtype": "FP32", "shape": [-1, *in_shape]}]
    assert report.outputs == [{"name": "logits", "dtype": "FP32", "shape": [-1, classes]}]
    meta = sc.read(report.sidecar_path)
    assert meta["engine"]["sha256"] == sc.sha256_file(report.engine_path)
    assert meta["source_onnx"]["sha256"] == sc.sha256_bytes(model.SerializeToString())
    assert meta["precision"] == precision
    assert meta["tensorrt"] == {"flavour": compat.info().flavour, "version": compat.info().version}
    assert meta["layers"]["count"] == report.network_layers == len(meta["layers"]["items"])
    # TensorRT's network has one CONVOLUTION layer per ONNX Conv (nothing lost or invented by the parser).
    convs = [layer for layer in meta["layers"]["items"] if layer["type"] == "CONVOLUTION"]
    if meta["layers"]["source"] == "network_definition":
        assert len(convs) == onnx_count(model, "Conv")
    summary = format_engine_summary(inspect_engine(report.engine_path))
    assert f"precision   {precision}" in summary and "layers      " in summary
    return meta


def test_resnet18_fp32_engine(tmp_path: Path, resnet18_64: onnx.ModelProto) -> None:
    opts = EngineBuildOptions(min_batch=1, opt_batch=4, max_batch=16)
    report = build_engine(resnet18_64, tmp_path / "r18.engine", opts)
    meta = check_build(report, resnet18_64, [3, 64, 64], 10, "fp32")
    assert report.profile == {"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [16, 3, 64, 64]}
    assert meta["input"]["max_shape"] == [16, 3, 64, 64] and meta["input"]["min_shape"] == [1, 3, 64, 64]
    assert sum(layer["type"] == "CONVOLUTION" for layer in meta["layers"]["items"]) == 20  # 17 + 3 downsample
    assert meta["model"]["arch"] == "resnet18" and meta["model"]["num_classes"] == 10
    assert meta["build_options"]["opt_level"] == 3 and meta["build_options"]["max_batch"] == 16
    info = from_sidecar(meta)
    assert info is not None and (info.arch, info.num_classes, info.input_size) == ("resnet18", 10, 64)
    assert leftovers(tmp_path) == []


def test_resnet18_fp16_engine(tmp_path: Path, resnet18_64: onnx.ModelProto) -> None:
    fp16 = to_fp16(resnet18_64)
    report = build_engine(fp16, tmp_path / "r18_fp16.engine", EngineBuildOptions(max_batch=8))
    meta = check_build(report, fp16, [3, 64, 64], 10, "fp16")
    conv_precisions = {
        p for layer in meta["layers"]["items"] if layer["type"] == "CONVOLUTION" for p in layer["precisions"]
    }
    assert conv_precisions == {"FP16"}  # strongly typed: TensorRT took the precision from the graph
    assert report.profile["opt"] == [8, 3, 64, 64]  # opt defaults to max


@pytest.mark.slow
def test_resnet50_224_fp32_and_fp16_engines(tmp_path: Path) -> None:
    model = export("resnet50", 224, num_classes=1000)
    for precision, graph in (("fp32", model), ("fp16", to_fp16(model))):
        report = build_engine(graph, tmp_path / f"r50_{precision}.engine", EngineBuildOptions(max_batch=4))
        meta = check_build(report, graph, [3, 224, 224], 1000, precision)
        assert sum(layer["type"] == "CONVOLUTION" for layer in meta["layers"]["items"]) == 53
        assert report.profile["max"] == [4, 3, 224, 224]


def _bundled() -> list[str]:
    from resnet_deploy.models.bundled import bundled_checkpoints

    return sorted(bundled_checkpoints())


@pytest.mark.parametrize(
    "name", _bundled() or [pytest.param("none", marks=pytest.mark.skip("no bundled checkpoints yet"))]
)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bundled_checkpoint_engines(tmp_path: Path, name: str, precision: str) -> None:
    from resnet_deploy.build import export_onnx
    from resnet_deploy.models.weights import load_model

    model, info = load_model(weights=name)
    graph, _ = export_onnx(model, info)
    if precision == "fp16":
        graph = to_fp16(graph)
    report = build_engine(graph, tmp_path / f"{name}.engine", EngineBuildOptions(max_batch=8))
    size = [info.in_channels, info.input_size, info.input_size]
    meta = check_build(report, graph, size, info.num_classes, precision)
    pre = meta["preprocessing"]
    assert pre["input_size"] == info.input_size and pre["in_channels"] == info.in_channels
    assert pre["mean"] == info.mean and pre["std"] == info.std
    assert pre["normalization"] == ("in_graph" if info.mean is not None else "caller")
    assert meta["model"]["name"] == info.name and meta["model"]["labels"] == info.labels
    assert from_sidecar(meta) == info


def test_int8_qdq_graph_parses_and_builds(tmp_path: Path) -> None:
    graph = qdq_conv_graph()
    calibration = {"method": "max", "cache_sha256": "ab" * 32}
    report = build_engine(graph, tmp_path / "qdq.engine", EngineBuildOptions(max_batch=8), calibration=calibration)
    meta = check_build(report, graph, [3, 16, 16], 5, "int8")
    types = [layer["type"] for layer in meta["layers"]["items"]]
    assert types.count("QUANTIZE") == 2 and types.count("DEQUANTIZE") == 4  # 2 activation pairs + 2 weight DQs
    precisions = {p for layer in meta["layers"]["items"] for p in layer["precisions"]}
    assert "INT8" in precisions
    assert meta["calibration"] == {"method": "max", "cache_sha256": "ab" * 32}


def test_static_batch_pins_the_profile(tmp_path: Path) -> None:
    report = build_engine(tiny_graph(batch=2), tmp_path / "static.engine", EngineBuildOptions(max_batch=8))
    assert report.profile == {"min": [2, 3, 8, 8], "opt": [2, 3, 8, 8], "max": [2, 3, 8, 8]}
    assert any("fixed batch of 2" in w for w in report.warnings)


def test_build_takes_bytes_and_path(tmp_path: Path) -> None:
    graph = tiny_graph()
    onnx_path = tmp_path / "tiny.onnx"
    onnx_path.write_bytes(graph.SerializeToString())
    a = build_engine(graph.SerializeToString(), tmp_path / "a.engine", EngineBuildOptions(max_batch=2))
    b = build_engine(onnx_path, tmp_path / "b.engine", EngineBuildOptions(max_batch=2))
    assert a.network_layers == b.network_layers > 0
    assert sc.read(a.sidecar_path)["source_onnx"] == sc.read(b.sidecar_path)["source_onnx"]
    assert sc.read(a.sidecar_path)["model"]["arch"] is None  # a foreign graph: no ModelInfo


# --------------------------------------------------------------------------------------- failures, no files


def test_parse_error_names_the_node_and_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "bad.engine"
    with pytest.raises(UserError, match=r"node 'act' \(MyUnknownOp\)"):
        build_engine(tiny_graph(op="MyUnknownOp"), out, EngineBuildOptions(max_batch=2))
    assert not out.exists() and not sc.sidecar_path(out).exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_build_keeps_the_previous_engine(tmp_path: Path) -> None:
    out = tmp_path / "m.engine"
    build_engine(tiny_graph(), out, EngineBuildOptions(max_batch=2))
    before = out.read_bytes(), sc.sidecar_path(out).read_bytes()
    with pytest.raises(UserError):
        build_engine(tiny_graph(op="MyUnknownOp"), out, EngineBuildOptions(max_batch=2))
    assert (out.read_bytes(), sc.sidecar_path(out).read_bytes()) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_batch": 4, "max_batch": 2}, "min <= opt <= max"),
        ({"opt_batch": 9, "max_batch": 8}, "min <= opt <= max"),
        ({"opt_level": 7}, "optimization level"),
        ({"workspace_mb": 0}, "workspace"),
        ({"hardware_compat": "everything"}, "hardware compatibility"),
    ],
)
def test_bad_options(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_engine(tiny_graph(), tmp_path / "x.engine", EngineBuildOptions(**kwargs))
    assert list(tmp_path.iterdir()) == []


def test_bad_onnx_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an ONNX model"):
        build_engine(b"\x08\x07garbage", tmp_path / "x.engine")
    two_inputs = tiny_graph()
    two_inputs.graph.input.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, [1]))
    with pytest.raises(UserError):
        build_engine(two_inputs, tmp_path / "x.engine")
    with pytest.raises(UserError, match="does not exist"):
        build_engine(tiny_graph(), tmp_path / "missing" / "x.engine")
    assert list(tmp_path.iterdir()) == []


def test_version_compatible_and_hardware_compat_options(tmp_path: Path) -> None:
    opts = EngineBuildOptions(max_batch=2, version_compatible=True, hardware_compat="ampere_plus")
    if not compat.supports_version_compatible():
        with pytest.raises(UserError, match="version-compatible"):
            build_engine(tiny_graph(), tmp_path / "vc.engine", opts)
        return
    report = build_engine(tiny_graph(), tmp_path / "vc.engine", opts)
    options = sc.read(report.sidecar_path)["build_options"]
    assert options["version_compatible"] is True and options["hardware_compat"] == "ampere_plus"


# ------------------------------------------------------------------------------------------- timing cache


def test_timing_cache_is_saved_reused_and_survives_corruption(tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    opts = EngineBuildOptions(max_batch=2, timing_cache=cache)
    first = build_engine(tiny_graph(), tmp_path / "a.engine", opts)
    assert first.timing_cache["status"] == "created" and cache.read_bytes().startswith(TIMING_CACHE_MAGIC)
    second = build_engine(tiny_graph(), tmp_path / "b.engine", opts)
    assert second.timing_cache["status"] == "loaded"
    assert leftovers(tmp_path) == []

    good = cache.read_bytes()
    cache.write_bytes(good[:-3] + b"\x00\x00\x00" if good[-3:] != b"\x00\x00\x00" else good[:-3] + b"\x01\x01\x01")
    with pytest.warns(UserWarning, match="corrupt"):
        third = build_engine(tiny_graph(), tmp_path / "c.engine", opts)
    assert third.timing_cache["status"] == "ignored-corrupt"
    assert build_engine(tiny_graph(), tmp_path / "d.engine", opts).timing_cache["status"] == "loaded"  # rewritten

    header_end = good.index(b"\n", len(TIMING_CACHE_MAGIC))
    header = json.loads(good[len(TIMING_CACHE_MAGIC) : header_end])
    header["version"] = "0.0.1"
    cache.write_bytes(TIMING_CACHE_MAGIC + json.dumps(header).encode() + good[header_end:])
    with pytest.warns(UserWarning, match="not"):
        fourth = build_engine(tiny_graph(), tmp_path / "e.engine", opts)
    assert fourth.timing_cache["status"] == "ignored-other-version"

    cache.write_bytes(b"not a cache at all")
    with pytest.warns(UserWarning, match="corrupt"):
        build_engine(tiny_graph(), tmp_path / "f.engine", opts)
