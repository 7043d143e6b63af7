"""Engine files as untrusted input: sidecar schema, tampering, foreign TensorRT/GPU, inspection, and the GPU
runtime (whose GPU half skips here: no machine of this project can run a TensorRT engine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.backends.tensorrt import sidecar as sc
from resnet_deploy.backends.tensorrt.compat import GpuInfo, TrtInfo
from resnet_deploy.backends.tensorrt.engine_inspector import (
    format_engine_summary,
    inspect_engine,
    layers_from_inspector_json,
    summarize_layers,
)
from resnet_deploy.errors import UserError
from resnet_deploy.info import from_sidecar

needs_trt = pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")
needs_gpu_runtime = pytest.mark.skipif(
    not compat.gpu_runtime_usable(), reason=f"no TensorRT GPU runtime: {compat.gpu_runtime_status()[1]}"
)


def tiny_graph() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["logits"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    """A real engine + sidecar (kept pristine: tests copy it)."""
    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine

    folder = tmp_path_factory.mktemp("engine")
    report = build_engine(tiny_graph(), folder / "tiny.engine", EngineBuildOptions(min_batch=1, max_batch=4))
    return report.engine_path, report.engine_path.read_bytes(), report.sidecar_path.read_bytes()


def copy_engine(built: tuple[Path, bytes, bytes], dest: Path, meta_edit: Any = None) -> Path:
    _, engine, side = built
    path = dest / "model.engine"
    path.write_bytes(engine)
    meta = json.loads(side)
    if meta_edit is not None:
        meta_edit(meta)
    sc.sidecar_path(path).write_text(json.dumps(meta))
    return path


RTX = TrtInfo("tensorrt_rtx", "1.7.1.116", "tensorrt_rtx_bindings")


# --------------------------------------------------------------------------------------------- verification


@needs_trt
def test_a_fresh_engine_verifies(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    path = copy_engine(built, tmp_path)
    data, meta, warnings = sc.verify_engine_file(path, compat.info(), compat.gpu())
    assert data == built[1] and meta["engine"]["file"] == "tiny.engine" and warnings == []
    assert from_sidecar(meta) is None  # a foreign graph carries no ModelInfo


@needs_trt
@pytest.mark.parametrize("offset", [0, 100, -1])
def test_a_flipped_byte_is_refused(built: tuple[Path, bytes, bytes], tmp_path: Path, offset: int) -> None:
    path = copy_engine(built, tmp_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its sidecar"):
        sc.verify_engine_file(path, compat.info(), compat.gpu())
    info = inspect_engine(path)
    assert info["integrity"] == "mismatch"
    assert "WARNING" in format_engine_summary(info)


@needs_trt
def test_truncated_and_missing_files(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    path = copy_engine(built, tmp_path)
    path.write_bytes(built[1][:1000])
    with pytest.raises(UserError, match="does not match its sidecar"):
        sc.verify_engine_file(path, compat.info(), None)
    path.write_bytes(b"")
    with pytest.raises(UserError, match="not a TensorRT engine"):
        sc.verify_engine_file(path, compat.info(), None)
    path.write_bytes(built[1])
    sc.sidecar_path(path).unlink()
    with pytest.raises(UserError, match="has no sidecar"):
        sc.verify_engine_file(path, compat.info(), None)
    with pytest.raises(UserError, match="not found"):
        sc.verify_engine_file(tmp_path / "nope.engine", compat.info(), None)


@needs_trt
def test_sidecar_from_another_flavour_or_version_is_refused(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    running = compat.info()
    other = "tensorrt" if running.flavour == "tensorrt_rtx" else "tensorrt_rtx"
    path = copy_engine(built, tmp_path, lambda m: m["tensorrt"].update(flavour=other))
    with pytest.raises(UserError, match="rebuild the engine here"):
        sc.verify_engine_file(path, running, None)
    path = copy_engine(built, tmp_path, lambda m: m["tensorrt"].update(version="0.9.0.1"))
    with pytest.raises(UserError, match=r"built with .* 0\.9\.0\.1"):
        sc.verify_engine_file(path, running, None)


def test_version_rules() -> None:
    def meta(version: str, compatible: bool) -> dict[str, Any]:
        return {
            "tensorrt": {"flavour": "tensorrt", "version": version},
            "build_options": {"version_compatible": compatible},
        }

    running = TrtInfo("tensorrt", "10.13.0.35", "tensorrt")
    sc.check_tensorrt(meta("10.13.0.35", False), running, "e")
    sc.check_tensorrt(meta("10.3.0.30", True), running, "e")  # version-compatible: later 10.x runs it
    with pytest.raises(UserError, match="--version-compatible"):
        sc.check_tensorrt(meta("10.3.0.30", False), running, "e")
    with pytest.raises(UserError, match="same or a later"):
        sc.check_tensorrt(meta("10.14.1.0", True), running, "e")  # never backwards
    with pytest.raises(UserError, match="same or a later"):
        sc.check_tensorrt(meta("9.3.0.1", True), running, "e")  # never across majors
    with pytest.raises(UserError, match="TensorRT-RTX"):
        sc.check_tensorrt(meta("10.13.0.35", False), RTX, "e")


def test_gpu_rules() -> None:
    def meta(cc: str, level: str = "none") -> dict[str, Any]:
        return {"gpu": {"name": "NVIDIA A100", "compute_capability": cc}, "build_options": {"hardware_compat": level}}

    a100 = GpuInfo("NVIDIA A100", (8, 0), None, "torch")
    h100 = GpuInfo("NVIDIA H100", (9, 0), None, "torch")
    a30 = GpuInfo("NVIDIA A30", (8, 0), None, "torch")
    assert sc.check_gpu(meta("8.0"), a100, "e") == []
    assert "may not be the fastest" in sc.check_gpu(meta("8.0"), a30, "e")[0]
    with pytest.raises(UserError, match=r"compute capability 8\.0.*H100 \(9\.0\).*--hardware-compat"):
        sc.check_gpu(meta("8.0"), h100, "e")
    assert "Ampere+" in sc.check_gpu(meta("8.0", "ampere_plus"), h100, "e")[0]
    with pytest.raises(UserError, match="rebuild the engine on this GPU"):
        sc.check_gpu(meta("8.0", "same_compute_capability"), h100, "e")
    assert sc.check_gpu({"gpu": None, "build_options": {}}, h100, "e") == []  # built without a GPU (RTX)


# ------------------------------------------------------------------------------------------- sidecar schema


@needs_trt
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("engine"), r"\$\.engine is missing"),
        (lambda m: m["engine"].update(sha256="XYZ"), r"\$\.engine\.sha256"),
        (lambda m: m.update(precision="int4"), r"\$\.precision must be one of"),
        (lambda m: m["input"].update(max_shape="big"), r"\$\.input\.max_shape must be a list"),
        (lambda m: m["input"].update(max_shape=[True, 3, 8, 8]), r"max_shape\[0\]"),
        (lambda m: m.update(format="other/1"), r"\$\.format"),
        (lambda m: m.update(surprise=1), "unknown key 'surprise'"),
        (lambda m: m["build_options"].update(nested={"a": 1}), "must be a scalar"),
        (lambda m: m["preprocessing"].update(mean=[float("nan")]), "finite number"),
        (lambda m: m["layers"]["items"][0].pop("type"), r"items\[0\]\.type is missing"),
    ],
)
def test_invalid_sidecars_are_refused(
    built: tuple[Path, bytes, bytes], tmp_path: Path, edit: Any, message: str
) -> None:
    path = copy_engine(built, tmp_path, edit)
    with pytest.raises(UserError, match=message):
        sc.verify_engine_file(path, compat.info(), None)


@needs_trt
def test_sidecar_that_is_not_json(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    path = copy_engine(built, tmp_path)
    side = sc.sidecar_path(path)
    for junk in (b"{not json", b"\xff\xfe\x00", b"[1, 2, 3]", b"null"):
        side.write_bytes(junk)
        with pytest.raises(UserError, match="sidecar"):
            sc.read(side)


# ----------------------------------------------------------------------------------------------- inspection


@needs_trt
def test_inspect_shows_what_the_build_captured(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    path = copy_engine(built, tmp_path)
    info = inspect_engine(path)
    assert info["integrity"] == "ok"
    summary = info["summary"]
    if not compat.gpu_runtime_usable():
        assert summary["source"] == "network_definition" and summary["fused_count"] is None
        assert info["layers_origin"].startswith("sidecar")
    assert summary["by_type"]["CONVOLUTION"] == 1 and summary["layer_count"] == len(info["layers"])
    text = format_engine_summary(info, max_layers=50)
    assert "profile min (1, 3, 8, 8) opt (4, 3, 8, 8) max (4, 3, 8, 8)" in text
    assert "CONVOLUTION" in text and "output      logits FP32 (N, 4)" in text


# A hand-written sample in the format TensorRT documents for IEngineInspector JSON with DETAILED verbosity
# (field names as NVIDIA's trt-engine-explorer parses them); it tests our parser, not TensorRT.
INSPECTOR_SAMPLE = {
    "Layers": [
        {
            "Name": "/conv1/Conv + /relu/Relu",
            "LayerType": "CaskConvolution",
            "ParameterType": "Convolution",
            "Inputs": [{"Name": "input", "Dimensions": [1, 3, 8, 8], "Format/Datatype": "Row major linear FP32"}],
            "Outputs": [{"Name": "r", "Dimensions": [1, 4, 8, 8], "Format/Datatype": "Channel major FP16 format"}],
            "Metadata": "[ONNX Layer: /conv1/Conv]\x1e[ONNX Layer: /relu/Relu]",
            "TacticName": "sm80_xmma_fprop_implicit_gemm",
        },
        {
            "Name": "/gap/GlobalAveragePool",
            "LayerType": "CaskPooling",
            "ParameterType": "Pooling",
            "Inputs": [{"Name": "r", "Dimensions": [1, 4, 8, 8], "Format/Datatype": "Channel major FP16 format"}],
            "Outputs": [{"Name": "g", "Dimensions": [1, 4, 1, 1], "Format/Datatype": "Row major linear FP32"}],
            "Metadata": "[ONNX Layer: /gap/GlobalAveragePool]",
        },
        "reformatting_layer_names_only",
    ],
    "Bindings": ["input", "logits"],
}


def test_inspector_json_parsing_and_summary() -> None:
    layers = layers_from_inspector_json(json.dumps(INSPECTOR_SAMPLE))
    assert [layer["fused"] for layer in layers] == [True, False, False]
    assert layers[0]["onnx_nodes"] == ["/conv1/Conv", "/relu/Relu"]
    assert layers[0]["precisions"] == ["FP16", "FP32"] and layers[0]["tactic"] == "sm80_xmma_fprop_implicit_gemm"
    assert layers[1]["type"] == "Pooling" and layers[2]["type"] == "unknown"
    summary = summarize_layers(layers, "engine_inspector")
    assert summary["fused_count"] == 1 and summary["fused"][0]["name"] == "/conv1/Conv + /relu/Relu"
    assert summary["by_precision"] == {"FP32": 2, "FP16": 2, "unknown": 1}
    with pytest.raises(UserError, match="invalid JSON"):
        layers_from_inspector_json("{")
    with pytest.raises(UserError, match="no 'Layers'"):
        layers_from_inspector_json("{}")


# -------------------------------------------------------------------------------------------------- compat


def test_importing_the_package_imports_no_tensorrt() -> None:
    code = (
        "import sys, resnet_deploy, resnet_deploy.backends.loader, resnet_deploy.backends.tensorrt, "
        "resnet_deploy.backends.tensorrt.builder, resnet_deploy.backends.tensorrt.engine_inspector, "
        "resnet_deploy.backends.tensorrt.plugin, resnet_deploy.backends.tensorrt.autotune\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'tensorrt_rtx_bindings', 'tensorrt_rtx')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@needs_trt
def test_a_stubs_only_tensorrt_package_is_skipped(tmp_path: Path) -> None:
    # tensorrt-stubs installs tensorrt/__init__.pyi alone, which imports as an empty namespace package.
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("class Builder: ...\n")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import tensorrt\n"
        "from resnet_deploy.backends.tensorrt import compat\n"
        "found = compat.available()\n"
        "assert found is not None and found.module_name != 'tensorrt', found\n"
        "print(found.flavour)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True, text=True)
    assert out.stdout.strip() in ("tensorrt_rtx", "tensorrt")


@needs_trt
def test_enum_members_by_name() -> None:
    flag = compat.member("NetworkDefinitionCreationFlag", "STRONGLY_TYPED")
    assert flag is not None and compat.strongly_typed_flags() == 1 << int(flag)
    assert compat.member("BuilderFlag", "NO_SUCH_FLAG") is None
    assert compat.member("NoSuchEnum", "X") is None
    assert compat.dims_list(compat.trt.Dims([2, 3, 4])) == [2, 3, 4]
    assert compat.numpy_dtype(compat.trt.DataType.HALF) == np.float16
    if compat.info().flavour == "tensorrt_rtx":
        assert (8, 6) in (compat.supported_compute_capabilities() or [])
        assert (9, 0) not in (compat.supported_compute_capabilities() or [])  # TensorRT-RTX skips Hopper


# ------------------------------------------------------------------------------------------------- runtime


@needs_trt
@pytest.mark.skipif(compat.gpu_runtime_usable(), reason="this machine can run engines")
def test_runtime_refuses_without_a_gpu(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    with pytest.raises(UserError, match=r"cannot run .*model\.engine: .*(GPU|TensorRT|CUDA)"):
        TensorRTModel(copy_engine(built, tmp_path))


@needs_trt
@needs_gpu_runtime
@pytest.mark.gpu
def test_engine_matches_onnxruntime_on_gpu(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    """NEVER RUN so far (no TensorRT-capable GPU on any machine of this project)."""
    from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    x = np.random.default_rng(0).normal(size=(11, 3, 8, 8)).astype(np.float32)
    with TensorRTModel(copy_engine(built, tmp_path)) as model:
        assert model.max_batch == 4
        got = model.predict(x)  # 11 = 4 + 4 + 3: split by the base class
        np.testing.assert_allclose(got, OnnxRuntimeModel(tiny_graph()).predict(x), rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(model.predict(x[:4]), model.predict(x[:4]))  # CUDA-graph replay
        with pytest.raises(UserError, match="dtype"):
            model.predict(x.astype(np.float64))
        with pytest.raises(UserError, match="shape"):
            model.predict(x[:, :, :4])
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(model.predict, [x] * 8))
        for out in outs:
            np.testing.assert_array_equal(out, outs[0])


@needs_trt
@needs_gpu_runtime
@pytest.mark.gpu
def test_torch_cuda_zero_copy_and_async(built: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    """NEVER RUN so far (no TensorRT-capable GPU on any machine of this project)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    x = torch.randn(6, 3, 8, 8, device="cuda")
    with TensorRTModel(copy_engine(built, tmp_path)) as model:
        stream = torch.cuda.Stream()
        out = model.predict_async(x, stream=stream)
        stream.synchronize()
        assert out.is_cuda and tuple(out.shape) == (6, 4)
        np.testing.assert_allclose(out.cpu().numpy(), model.predict(x.cpu().numpy()), rtol=1e-3, atol=1e-4)
