"""The ``build`` Python API: each precision and backend, ONNX input, plugin rewrite, mixed precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions
from resnet_deploy.build import BuildOptions, build
from resnet_deploy.errors import UserError
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.models.weights import save_checkpoint
from resnet_deploy.precision.ptq import Int8Options

INFO = ModelInfo(
    arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353], dataset="fashion-mnist"
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "r20.safetensors", build_model("resnet20", 10, 1), INFO)


@pytest.fixture(scope="module")
def calib_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "calib.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (32, 28, 28), dtype=np.uint8), y=rng.integers(0, 10, 32))
    return path


def _trt_available() -> bool:
    from resnet_deploy.backends.tensorrt import compat

    return compat.available() is not None


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_onnxruntime_precisions(ckpt: Path, calib_npz: Path, tmp_path: Path, precision: str) -> None:
    stages: list[str] = []
    opts = BuildOptions(output=tmp_path / "m.onnx", weights=ckpt, precision=precision)
    if precision == "int8":
        opts.calib_data, opts.calib_samples = str(calib_npz), 16
    r = build(opts, lambda stage, detail: stages.append(stage))
    assert r.output.is_file() and r.output_bytes == r.output.stat().st_size
    assert "export" in stages and "write" in stages
    m = OnnxRuntimeModel(r.output)
    assert m.precision == precision and m.info is not None and m.info.arch == "resnet20"
    out = m.predict(np.zeros((2, 1, 28, 28), np.float32))
    assert out.shape == (2, 10) and np.isfinite(out).all()
    meta = {p.key: p.value for p in onnx.load(str(r.output)).metadata_props}
    assert meta["resnet_deploy.precision"] == precision
    if precision == "int8":
        assert r.int8.samples == 16 and r.calibration_data == str(calib_npz)
        assert meta["resnet_deploy.calibration"] == "percentile:16"
        assert meta["resnet_deploy.qdq_placement"] == r.int8.placement == "onnxruntime"  # the backend's own
        from resnet_deploy.api import inspect_onnx

        assert inspect_onnx(r.output)["qdq_placement"] == "onnxruntime"
    assert any(line.startswith("wrote ONNX") for line in r.summary_lines())
    json.dumps(r.to_dict())


def test_from_onnx_and_foreign_onnx_needs_data(ckpt: Path, calib_npz: Path, tmp_path: Path) -> None:
    fp32 = build(BuildOptions(output=tmp_path / "fp32.onnx", weights=ckpt)).output
    r = build(BuildOptions(output=tmp_path / "q.onnx", onnx=fp32, precision="int8", calib_data=str(calib_npz)))
    assert OnnxRuntimeModel(r.output).precision == "int8"
    with pytest.raises(UserError, match="already quantized"):
        build(BuildOptions(output=tmp_path / "qq.onnx", onnx=r.output, precision="int8", calib_data=str(calib_npz)))
    with pytest.raises(UserError, match="needs calibration data"):
        build(BuildOptions(output=tmp_path / "x.onnx", onnx=fp32, precision="int8"))


def test_one_calibration_cache_serves_both_placements(ckpt: Path, calib_npz: Path, tmp_path: Path) -> None:
    cache = tmp_path / "calib.json"
    first = build(
        BuildOptions(
            output=tmp_path / "ort.onnx",
            weights=ckpt,
            precision="int8",
            calib_data=str(calib_npz),
            int8=Int8Options(cache_path=cache),
        )
    )
    assert first.calib_cache_written == cache and first.int8.source == "calibration"
    ops = {n.op_type for n in onnx.load(str(first.output)).graph.node}
    assert "Relu" not in ops  # onnxruntime placement: Relus folded into uint8 Qs
    second = build(
        BuildOptions(
            output=tmp_path / "trt.onnx",
            weights=ckpt,
            precision="int8",
            int8=Int8Options(cache_path=cache, placement="tensorrt"),
        )
    )
    assert second.int8.source == "cache" and second.int8.placement == "tensorrt"
    assert "Relu" in {n.op_type for n in onnx.load(str(second.output)).graph.node}
    assert "Q/DQ placement: tensorrt" in "\n".join(second.summary_lines())


def test_placement_errors(ckpt: Path, calib_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="only applies to --precision int8"):
        build(BuildOptions(output=tmp_path / "a.onnx", weights=ckpt, int8=Int8Options(placement="tensorrt")))
    with pytest.raises(UserError, match="does not parse in TensorRT"):
        build(
            BuildOptions(
                output=tmp_path / "a.engine",
                weights=ckpt,
                precision="int8",
                backend="tensorrt",
                calib_data=str(calib_npz),
                int8=Int8Options(placement="onnxruntime"),
            )
        )
    assert not list(tmp_path.iterdir())


def test_mixed_precision_through_build(ckpt: Path, calib_npz: Path, tmp_path: Path) -> None:
    opts = BuildOptions(
        output=tmp_path / "m.onnx",
        weights=ckpt,
        precision="int8",
        calib_data=str(calib_npz),
        int8=Int8Options(max_accuracy_drop=100.0),
        eval_data=str(calib_npz),
        eval_samples=16,
    )
    r = build(opts)
    assert r.int8.mixed is not None and r.int8.mixed.samples == 16 and r.int8.mixed.keep_float == []
    assert any("mixed precision on 16 eval images" in n for n in r.notes)


def test_plugin_rewrite_runs_on_onnxruntime(ckpt: Path, tmp_path: Path) -> None:
    r = build(BuildOptions(output=tmp_path / "p.onnx", weights=ckpt, residual_fusion="plugin"))
    assert r.residual_fusion == {"requested": "plugin", "chosen": "plugin"}
    ops = {n.op_type for n in onnx.load(str(r.output)).graph.node}
    assert "ResidualAddRelu" in ops
    native = build(BuildOptions(output=tmp_path / "n.onnx", weights=ckpt))
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(OnnxRuntimeModel(r.output).predict(x), OnnxRuntimeModel(native.output).predict(x))


def test_plugin_with_onnxruntime_int8_says_there_is_nothing_to_fuse(
    ckpt: Path, calib_npz: Path, tmp_path: Path
) -> None:
    opts = BuildOptions(
        output=tmp_path / "p.onnx", weights=ckpt, precision="int8", calib_data=str(calib_npz), residual_fusion="plugin"
    )
    r = build(opts)
    assert any("found no residual Add+ReLU" in w and "folds each ReLU" in w for w in r.warnings)


def test_auto_residual_fusion_without_tensorrt_falls_back_to_native(ckpt: Path, tmp_path: Path) -> None:
    r = build(BuildOptions(output=tmp_path / "a.onnx", weights=ckpt, residual_fusion="auto"))
    assert r.residual_fusion["chosen"] == "native" and "reason" in r.residual_fusion
    if _trt_available():
        from resnet_deploy.backends.tensorrt import tensorrt_status

        if not tensorrt_status()["can_run"]:  # builds engines, cannot time them: says why, keeps native
            e = build(
                BuildOptions(output=tmp_path / "a.engine", weights=ckpt, backend="tensorrt", residual_fusion="auto")
            )
            assert e.residual_fusion["chosen"] == "native"
            assert e.residual_fusion["reason"].startswith("auto: cannot time engines here")
            assert json.loads(e.engine.sidecar_path.read_text())["extra"]["residual_fusion"] == "native"


@pytest.mark.skipif(not _trt_available(), reason="no TensorRT / TensorRT-RTX installed")
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_engine(ckpt: Path, calib_npz: Path, tmp_path: Path, precision: str) -> None:
    opts = BuildOptions(
        output=tmp_path / "m.engine",
        weights=ckpt,
        precision=precision,
        backend="tensorrt",
        engine=EngineBuildOptions(max_batch=8),
        emit_onnx=tmp_path / "m.onnx",
    )
    if precision == "int8":
        opts.calib_data, opts.calib_samples = str(calib_npz), 16
    r = build(opts)
    assert r.output.is_file() and r.engine.sidecar_path.is_file() and r.emitted_onnx.is_file()
    side = json.loads(r.engine.sidecar_path.read_text())
    assert side["precision"] == precision and side["input"]["max_shape"][0] == 8
    assert side["extra"]["residual_fusion"] == "native"
    if precision == "int8":
        assert side["extra"]["qdq_placement"] == "tensorrt"
        assert side["calibration"]["cache_sha256"] == r.int8.cache.sha256()


@pytest.mark.skipif(not _trt_available(), reason="no TensorRT / TensorRT-RTX installed")
def test_auto_residual_fusion_keeps_the_timed_winner(ckpt: Path, tmp_path: Path) -> None:
    """What surrounds the GPU timing of --residual-fusion auto: two real engines (TensorRT-RTX builds them without
    a GPU), a timing record as time_engines returns it on a GPU, and the winner moved into place with its sidecar."""
    from resnet_deploy.backends.tensorrt import sidecar as sc
    from resnet_deploy.backends.tensorrt.autotune import keep_timed_engine
    from resnet_deploy.backends.tensorrt.plugin import EngineTiming, residual_fusion_choice

    work = tmp_path / "work"
    work.mkdir()
    reports = {}
    # TensorRT-RTX refuses plugin engines (issue #13 item 7): a second native engine stands in for the plugin one.
    for name, max_batch in (("native", 8), ("plugin", 16)):
        opts = BuildOptions(
            output=work / f"{name}.engine",
            weights=ckpt,
            backend="tensorrt",
            engine=EngineBuildOptions(max_batch=max_batch),
        )
        reports[name] = build(opts).engine
    plugin_bytes = reports["plugin"].engine_path.read_bytes()
    shapes = {"input": (1, 1, 28, 28)}
    choice = residual_fusion_choice(
        EngineTiming(str(reports["native"].engine_path), 0.50, 0.51, 0.49, 100, shapes),
        EngineTiming(str(reports["plugin"].engine_path), 0.40, 0.41, 0.39, 120, shapes),
    )
    out = tmp_path / "m.engine"
    moved, note = keep_timed_engine(reports, choice, out)
    assert moved.engine_path == out and out.read_bytes() == plugin_bytes
    _, meta, _ = sc.verify_engine_file(out, None, None)  # the sidecar moved with it and still matches
    assert meta["engine"]["file"] == "m.engine"
    assert meta["extra"]["residual_fusion"] == "plugin"
    assert meta["extra"]["residual_fusion_native_median_ms"] == 0.5
    assert meta["extra"]["residual_fusion_plugin_median_ms"] == 0.4
    assert "kept plugin" in note
    assert not reports["plugin"].engine_path.exists() and reports["native"].engine_path.exists()


def test_auto_backend_without_gpu_picks_onnxruntime(ckpt: Path, tmp_path: Path) -> None:
    from resnet_deploy.backends.tensorrt import tensorrt_status

    if tensorrt_status()["can_run"]:
        pytest.skip("a TensorRT GPU runtime is usable here: auto picks TensorRT")
    r = build(BuildOptions(output=tmp_path / "m.onnx", weights=ckpt, backend="auto"))
    assert any(n.startswith("auto: ONNX Runtime") for n in r.notes)
    from resnet_deploy.build.options import openvino_available

    if not openvino_available():
        assert r.backend == "onnxruntime"
        return
    # with OpenVINO installed both runtimes were timed on the graph; which one won depends on the machine, so this
    # checks that note, metadata and what load() picks all agree, whichever it was
    import resnet_deploy
    from resnet_deploy.info import RUNTIME_KEY
    from resnet_deploy.onnx_io import load_onnx, metadata

    assert r.backend in ("onnxruntime", "openvino")
    names = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
    (note,) = [n for n in r.notes if "measured faster on this machine" in n]
    assert note.startswith(f"auto: {names[r.backend]}, measured faster") and "recorded in the graph" in note
    if r.backend == "openvino":
        assert "load, infer, eval and bench run it on OpenVINO" in note
    auto = load_onnx(tmp_path / "m.onnx")
    assert metadata(auto)[RUNTIME_KEY] == r.backend
    loaded = resnet_deploy.load(tmp_path / "m.onnx")
    assert loaded.backend == r.backend and getattr(loaded, "warnings", []) == []
    assert resnet_deploy.load(tmp_path / "m.onnx", runtime="onnxruntime").backend == "onnxruntime"
    # the recorded choice is all that differs from a plain build, which records none
    plain = build(BuildOptions(output=tmp_path / "plain.onnx", weights=ckpt))
    assert plain.backend == "onnxruntime" and RUNTIME_KEY not in metadata(load_onnx(tmp_path / "plain.onnx"))
    onnx.helper.set_model_props(auto, {k: v for k, v in metadata(auto).items() if k != RUNTIME_KEY})
    assert auto.SerializeToString() == (tmp_path / "plain.onnx").read_bytes()
    with pytest.raises(UserError, match="needs --backend openvino"):
        build(BuildOptions(output=tmp_path / "m.xml", weights=ckpt, backend="onnxruntime"))


def test_default_model_is_the_bundled_checkpoint(tmp_path: Path) -> None:
    from resnet_deploy.models.bundled import bundled_checkpoints

    if "fmnist_resnet20" not in bundled_checkpoints():
        with pytest.raises(UserError, match="bundled checkpoint fmnist_resnet20 is not installed"):
            build(BuildOptions(output=tmp_path / "m.onnx"))
        return
    r = build(BuildOptions(output=tmp_path / "m.onnx", precision="int8", calib_samples=64))
    assert r.info is not None and r.info.name == "fmnist_resnet20"
    assert r.calibration_data == "fashion-mnist:train" and r.int8.samples == 64
