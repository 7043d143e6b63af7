"""Engine building through the real TensorRT builder (TensorRT-RTX on the GPU-less CI machine).

Every assertion is about what TensorRT itself reported (layers of the parsed network, I/O tensors, the
optimization profile read back) or what was written to disk; nothing here is mocked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import warnings
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


def tiny_graph(
    batch: int | str = "batch", op: str = "Relu", hw: tuple[int | str, int | str] = (8, 8)
) -> onnx.ModelProto:
    """Conv -> ``op`` -> GAP -> Flatten: builds in a fraction of a second; ``hw`` names for dynamic H and W."""
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
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, *hw])],
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
    # the sidecar records the profile the engine has, not the max batch 8 that was asked for
    options = sc.read(report.sidecar_path)["build_options"]
    assert (options["min_batch"], options["opt_batch"], options["max_batch"]) == (2, 2, 2)


def test_dynamic_h_w_gets_the_h_w_profile(tmp_path: Path) -> None:
    """A graph with dynamic H and W: the profile holds the H x W range with the batch range, as trtexec's
    --minShapes/--optShapes/--maxShapes set it; without a range, or a range on a fixed-size graph, one line."""
    dynamic = tiny_graph(hw=("h", "w"))
    opts = EngineBuildOptions(min_batch=1, opt_batch=2, max_batch=4, hw_profile=((4, 6), (8, 8), (16, 12)))
    report = build_engine(dynamic, tmp_path / "dyn.engine", opts)
    assert report.inputs[0]["shape"] == [-1, 3, -1, -1]  # the network TensorRT parsed: H and W dynamic
    assert report.profile == {"min": [1, 3, 4, 6], "opt": [2, 3, 8, 8], "max": [4, 3, 16, 12]}
    meta = sc.read(report.sidecar_path)
    assert (meta["input"]["min_shape"], meta["input"]["max_shape"]) == ([1, 3, 4, 6], [4, 3, 16, 12])
    assert "hw_profile" not in meta["build_options"]  # the input section holds it, as the engine has it
    with pytest.raises(UserError, match=r"has dynamic H and W: give their range"):
        build_engine(dynamic, tmp_path / "x.engine", EngineBuildOptions(max_batch=4))
    with pytest.raises(UserError, match=r"fixed H x W \[8, 8\]"):
        build_engine(tiny_graph(), tmp_path / "x.engine", opts)
    with pytest.raises(UserError, match="H x W profile must satisfy"):
        EngineBuildOptions(hw_profile=((8, 8), (4, 4), (16, 16))).validate()
    assert not (tmp_path / "x.engine").exists()


def test_the_batch_profile_moves_max_along_and_names_only_what_was_set() -> None:
    assert EngineBuildOptions().to_dict()["max_batch"] == 32  # the default, unchanged
    o = EngineBuildOptions(opt_batch=64)
    assert (o.resolved_opt_batch(), o.resolved_max_batch(), o.to_dict()["max_batch"]) == (64, 64, 64)
    assert EngineBuildOptions(opt_batch=8).resolved_max_batch() == 32
    assert EngineBuildOptions(min_batch=48).resolved_max_batch() == 48
    with pytest.raises(UserError, match=r"got --min-batch 8, --opt-batch 4, max 32 \(default\)$"):
        EngineBuildOptions(min_batch=8, opt_batch=4).validate()
    with pytest.raises(UserError, match=r"got min 1 \(default\), --opt-batch 16, --max-batch 8$"):
        EngineBuildOptions(opt_batch=16, max_batch=8).validate()
    with pytest.raises(UserError, match=r"got min 1 \(default\), opt = max 0 \(default\), --max-batch 0$"):
        EngineBuildOptions(max_batch=0).validate()


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


def _cache_with_header(good: bytes, header_line: bytes) -> bytes:
    header_end = good.index(b"\n", len(TIMING_CACHE_MAGIC))
    return TIMING_CACHE_MAGIC + header_line + good[header_end:]


def test_timing_cache_is_saved_reused_and_replaced_when_ours_and_broken(tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    opts = EngineBuildOptions(max_batch=2, timing_cache=cache)
    first = build_engine(tiny_graph(), tmp_path / "a.engine", opts)
    assert first.timing_cache["status"] == "created" and cache.read_bytes().startswith(TIMING_CACHE_MAGIC)
    second = build_engine(tiny_graph(), tmp_path / "b.engine", opts)
    assert second.timing_cache["status"] == "loaded"
    assert leftovers(tmp_path) == []

    good = cache.read_bytes()
    header = json.loads(good[len(TIMING_CACHE_MAGIC) : good.index(b"\n", len(TIMING_CACHE_MAGIC))])
    cases = {
        "checksum": good[:-3] + (b"\x00\x00\x00" if good[-3:] != b"\x00\x00\x00" else b"\x01\x01\x01"),
        "other-version": _cache_with_header(good, json.dumps({**header, "version": "0.0.1"}).encode()),
        # issue #14 item 10: nesting past the JSON parser's recursion limit, an integer of thousands of digits
        "nested": _cache_with_header(good, b"[" * 3000 + b"]" * 3000),
        "huge-int": _cache_with_header(good, b'{"size": ' + b"9" * 4000 + b"}"),
        "no-header": TIMING_CACHE_MAGIC + b"x" * 5000,
    }
    for name, data in cases.items():
        cache.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one line in the report, never a raw UserWarning
            report = build_engine(tiny_graph(), tmp_path / f"{name}.engine", opts)
        status = "replaced-other-version" if name == "other-version" else "replaced-corrupt"
        assert report.timing_cache["status"] == status, name
        lines = [w for w in report.warnings if str(cache) in w]
        assert len(lines) == 1 and "\n" not in lines[0] and "wrote a fresh one" in lines[0], (name, lines)
        assert cache.read_bytes().startswith(TIMING_CACHE_MAGIC) and cache.read_bytes() != data  # ours: replaced
        assert build_engine(tiny_graph(), tmp_path / "again.engine", opts).timing_cache["status"] == "loaded"
    assert leftovers(tmp_path) == []


def test_a_timing_cache_that_is_not_ours_is_left_untouched(tmp_path: Path) -> None:
    """Issue #14 item 4: e.g. a calibration cache passed as --timing-cache by mistake."""
    cache = tmp_path / "calib.cache"
    original = b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n"
    cache.write_bytes(original)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = build_engine(tiny_graph(), tmp_path / "m.engine", EngineBuildOptions(max_batch=2, timing_cache=cache))
    assert report.engine_path.is_file()
    assert cache.read_bytes() == original
    assert report.timing_cache["status"] == "foreign"
    (line,) = [w for w in report.warnings if str(cache) in w]
    assert "not a resnet-deploy timing cache" in line and "untouched" in line


def test_a_timing_cache_that_is_a_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    """Issue #14 item 2: reading a FIFO blocks forever; it is refused in one line before anything is opened.
    Run in a child process with a deadline, so a regression fails instead of hanging the suite."""
    fifo = tmp_path / "timing.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "m.engine"
    cmd = [sys.executable, "-m", "resnet_deploy", "build", "--backend", "tensorrt", "-o", str(out)]
    try:
        proc = subprocess.run([*cmd, "--timing-cache", str(fifo)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the build blocked on the FIFO")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "FIFO" in lines[0] and "not a regular file" in lines[0], proc.stderr
    assert not out.exists() and not sc.sidecar_path(out).exists()
    with pytest.raises(UserError, match="FIFO"):
        build_engine(tiny_graph(), out, EngineBuildOptions(max_batch=2, timing_cache=fifo))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timing.fifo"]


# ------------------------------------------------------------------------- the engine/sidecar pair (issue #14)

_KILL_AT_RENAME = """
import os, signal, sys
target = sys.argv[2]

def hook(event, args):
    # os.replace raises the os.rename audit event: die by SIGKILL just before the rename into `target`.
    if event == "os.rename" and str(args[1]).endswith(target):
        os.kill(os.getpid(), signal.SIGKILL)

from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine
import onnx
model = onnx.load(sys.argv[1])
sys.addaudithook(hook)
build_engine(model, sys.argv[3], EngineBuildOptions(max_batch=int(sys.argv[4])))
"""


def _killed_build(tmp_path: Path, out: Path, target: str, max_batch: int) -> None:
    onnx_path = tmp_path / "tiny.onnx"
    onnx.save(tiny_graph(), str(onnx_path))
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AT_RENAME, str(onnx_path), target, str(out), str(max_batch)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.slow
def test_a_kill_between_the_renames_leaves_a_stale_sidecar_not_a_lying_one(tmp_path: Path) -> None:
    out = tmp_path / "m.engine"
    old = build_engine(tiny_graph(), out, EngineBuildOptions(max_batch=2))
    old_engine, old_side = out.read_bytes(), sc.sidecar_path(out).read_bytes()
    _killed_build(tmp_path, out, out.name + ".json", max_batch=4)  # killed as the sidecar is renamed
    # The engine went first: the new engine sits beside the old sidecar, which loading refuses as stale.
    assert out.read_bytes() != old_engine and sc.sidecar_path(out).read_bytes() == old_side
    with pytest.raises(UserError, match="stale"):
        sc.verify_engine_file(out, compat.info(), None)
    assert inspect_engine(out)["sidecar_stale"] is True
    assert old.engine_bytes == len(old_engine)
    # ... and the next build removes the killed run's temporary file and writes a consistent pair.
    assert leftovers(tmp_path) != []
    again = build_engine(tiny_graph(), out, EngineBuildOptions(max_batch=4))
    assert leftovers(tmp_path) == [] and any("interrupted earlier run" in w for w in again.warnings)
    sc.verify_engine_file(out, compat.info(), None)


@pytest.mark.slow
def test_a_kill_at_the_first_rename_keeps_the_old_pair_and_the_temp_files_go_next_run(tmp_path: Path) -> None:
    out = tmp_path / "m.engine"
    build_engine(tiny_graph(), out, EngineBuildOptions(max_batch=2))
    before = out.read_bytes(), sc.sidecar_path(out).read_bytes()
    _killed_build(tmp_path, out, out.name, max_batch=4)  # killed as the engine is renamed
    assert (out.read_bytes(), sc.sidecar_path(out).read_bytes()) == before
    sc.verify_engine_file(out, compat.info(), None)  # still a valid pair
    assert len(leftovers(tmp_path)) == 2  # the engine's and the sidecar's temporary files
    build_engine(tiny_graph(), out, EngineBuildOptions(max_batch=4))
    assert leftovers(tmp_path) == []


_INTERRUPT_DURING_BUILD = """
import os, signal, sys
from resnet_deploy.backends.tensorrt import log
from resnet_deploy.cli import main

sent = []

def on_message(severity, msg):
    # A real SIGINT, delivered while TensorRT is parsing or building (the first thing it logs).
    if not sent:
        sent.append(msg)
        os.kill(os.getpid(), signal.SIGINT)

with log.capture(on_message):
    code = main(["build", "--backend", "tensorrt", "-o", sys.argv[1]])
print("signalled during:", sent[:1])
raise SystemExit(code)
"""


@pytest.mark.slow
def test_ctrl_c_during_the_tensorrt_build_writes_nothing_and_exits_130(tmp_path: Path) -> None:
    """Issue #14 item 6: before, pybind11 swallowed the KeyboardInterrupt raised in the logger callback, the
    build went on and wrote a complete engine."""
    out = tmp_path / "m.engine"
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_DURING_BUILD, str(out)], capture_output=True, text=True, timeout=600
    )
    assert "signalled during: ['" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "interrupted" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- plugins (#13)


def _fused_tiny() -> onnx.ModelProto:
    """Two branches joined by a residual Add + Relu, fused into one ResidualAddRelu node."""
    from resnet_deploy.passes.residual_fusion import fuse_residual_add_relu

    w = numpy_helper.from_array(np.full((3, 3, 3, 3), 0.05, np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "input"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["logits"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "res",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [w],
    )
    fused, report = fuse_residual_add_relu(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert report.changes["fused"] == 1
    return fused


@pytest.mark.skipif(compat.available() is None or compat.info().flavour != "tensorrt_rtx", reason="TensorRT-RTX only")
def test_the_sidecar_says_what_the_network_holds_not_what_was_asked(tmp_path: Path) -> None:
    """Item 1: the plugin-layer count comes from the parsed network. TensorRT-RTX has no plugin layers: with no
    creator registered its parser inlines the node's function, and the sidecar must not claim a plugin."""
    report = build_engine(
        _fused_tiny(), tmp_path / "f.engine", EngineBuildOptions(max_batch=2), extra={"residual_fusion": "plugin"}
    )
    extra = sc.read(report.sidecar_path)["extra"]
    assert extra["residual_fusion"] == "native" and extra["plugin_layers"] == 0 == report.plugin_layers
    assert "expanded the 1 ResidualAddRelu node(s) into their ONNX function" in extra["residual_fusion_reason"]
    types = [layer["type"] for layer in sc.read(report.sidecar_path)["layers"]["items"]]
    assert "PLUGIN_V3" not in types and "ELEMENTWISE" in types  # read from the network, as the count is


def test_for_tensorrt_before_10_7_needs_the_plugin_to_parse(tmp_path: Path) -> None:
    """Item 2: the < 10.7 node form has no local function (onnx-tensorrt 10.1 imports a local function before it
    tries the plugin registry), so without a creator the parser fails on the node instead of inlining it."""
    from resnet_deploy.passes.residual_fusion import for_tensorrt

    with pytest.raises(UserError, match=r"ResidualAddRelu.*Plugin not found"):
        build_engine(for_tensorrt(_fused_tiny(), "10.3.0.30"), tmp_path / "x.engine", EngineBuildOptions(max_batch=2))
    assert list(tmp_path.iterdir()) == []


_RTX_CREATOR = """
import sys
import numpy as np
import onnx
import tensorrt_rtx_bindings as trt

class Plugin(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
    def __init__(self):
        trt.IPluginV3.__init__(self)
        trt.IPluginV3OneCore.__init__(self)
        trt.IPluginV3OneBuild.__init__(self)
        trt.IPluginV3OneRuntime.__init__(self)
        self.num_outputs, self.plugin_namespace = 1, "resnet_deploy"
        self.plugin_name, self.plugin_version = "ResidualAddRelu", "1"

    def get_capability_interface(self, kind):
        return self

    def get_output_data_types(self, types):
        return [types[0]]

    def get_output_shapes(self, inputs, shape_inputs, builder):
        return [trt.DimsExprs(inputs[0])]

    def get_fields_to_serialize(self):
        return trt.PluginFieldCollection([])

    def supports_format_combination(self, pos, in_out, num_inputs):
        return True

    def configure_plugin(self, inp, out):
        pass

    def clone(self):
        return Plugin()

class Creator(trt.IPluginCreatorV3One):
    def __init__(self):
        trt.IPluginCreatorV3One.__init__(self)
        self.name, self.plugin_namespace, self.plugin_version = "ResidualAddRelu", "resnet_deploy", "1"
        self.field_names = trt.PluginFieldCollection([])

    def create_plugin(self, name, fc, phase):
        return Plugin()

assert trt.get_plugin_registry().register_creator(Creator(), "resnet_deploy")
from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine
from resnet_deploy.errors import UserError
try:
    build_engine(onnx.load(sys.argv[1]), sys.argv[2], EngineBuildOptions(max_batch=2))
except UserError as exc:
    print("REFUSED", exc)
"""


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx_bindings") is None, reason="TensorRT-RTX is not installed")
def test_tensorrt_rtx_with_a_registered_creator_is_refused_not_aborted(tmp_path: Path) -> None:
    """Item 7: with a creator registered, TensorRT-RTX's parser creates the plugin and then calls std::terminate
    (seen); the build is refused in one line before the parser runs, and the process lives on."""
    onnx_path = tmp_path / "fused.onnx"
    onnx.save(_fused_tiny(), str(onnx_path))
    out = tmp_path / "f.engine"
    proc = subprocess.run(
        [sys.executable, "-c", _RTX_CREATOR, str(onnx_path), str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("REFUSED")]
    assert "TensorRT-RTX cannot build node" in line and "resnet_deploy::ResidualAddRelu" in line
    assert not out.exists()


@pytest.mark.skipif(compat.available() is None or compat.info().flavour != "tensorrt_rtx", reason="TensorRT-RTX only")
def test_plugin_engine_on_tensorrt_rtx_is_refused_up_front_in_one_line(tmp_path: Path) -> None:
    """Item 7, through the CLI: refused before export or calibration, exit 2, one line, nothing written."""
    out = tmp_path / "p.engine"
    cmd = [sys.executable, "-m", "resnet_deploy", "build", "--backend", "tensorrt", "--residual-fusion", "plugin"]
    proc = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "TensorRT-RTX" in lines[0] and "--residual-fusion native" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_plugin_impl_option_is_checked() -> None:
    from resnet_deploy.build import BuildOptions
    from resnet_deploy.build.options import validate

    with pytest.raises(UserError, match="unknown plugin implementation"):
        EngineBuildOptions(plugin_impl="jit").validate()
    with pytest.raises(UserError, match="--plugin-impl only applies to --residual-fusion plugin or auto"):
        validate(BuildOptions(engine=EngineBuildOptions(plugin_impl="aot")))
    validate(BuildOptions(residual_fusion="plugin", engine=EngineBuildOptions(plugin_impl="python")))


# ----------------------------------------------------------------------------- logger, warnings in the summary


def test_one_logger_for_the_process_and_errors_of_later_builds_reach_it(tmp_path: Path) -> None:
    """Item 13: TensorRT keeps the first logger it was given (NVIDIA/TensorRT#1475); there is only one."""
    from resnet_deploy.backends.tensorrt import log

    assert log.logger() is log.logger()
    build_engine(tiny_graph(), tmp_path / "a.engine", EngineBuildOptions(max_batch=2))
    with log.capture() as cap, pytest.raises(UserError, match="MyUnknownOp"):
        build_engine(tiny_graph(op="MyUnknownOp"), tmp_path / "b.engine", EngineBuildOptions(max_batch=2))
    assert any("MyUnknownOp" in m for m in cap.errors())


@pytest.mark.slow
def test_tensorrt_build_warnings_are_in_the_text_summary(tmp_path: Path) -> None:
    """'Also': what the TensorRT build warned about shows in `build`'s text summary, not only in --json."""
    out = tmp_path / "m.engine"
    cmd = [sys.executable, "-m", "resnet_deploy", "build", "--backend", "tensorrt", "-o", str(out)]
    proc = subprocess.run(
        [*cmd, "--max-batch", "2", "--hardware-compat", "ampere_plus"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stdout.splitlines() if ln.startswith("WARNING: TensorRT: ")]
    if compat.info().flavour == "tensorrt_rtx":
        assert any("ignores hardware compatibility" in ln for ln in warned), proc.stdout
    meta = sc.read(sc.sidecar_path(out))
    assert meta["extra"]["plugin_layers"] == 0 and meta["extra"]["residual_fusion"] == "native"
