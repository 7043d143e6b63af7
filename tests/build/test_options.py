"""Everything ``build`` checks before any work: contradictions, backends, output paths, which flag was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions
from resnet_deploy.build.options import (
    ENGINE_FLAGS,
    INT8_FLAGS,
    BuildOptions,
    changed,
    check_outputs,
    resolve_backend,
    validate,
)
from resnet_deploy.errors import UserError
from resnet_deploy.precision.ptq import Int8Options


def test_changed_names_the_flags_the_user_gave() -> None:
    assert changed(EngineBuildOptions(), ENGINE_FLAGS) == []
    assert changed(EngineBuildOptions(max_batch=8, workspace_mb=64), ENGINE_FLAGS) == ["--max-batch", "--workspace"]
    assert changed(Int8Options(method="mse"), INT8_FLAGS) == ["--calib-method"]


@pytest.mark.parametrize(
    "options,match",
    [
        (BuildOptions(precision="fp64"), "unknown precision"),
        (BuildOptions(backend="openvino2"), "unknown backend"),
        (BuildOptions(io_dtype="fp16"), "only applies to --precision fp16"),
        (BuildOptions(onnx="m.onnx", arch="resnet18"), "either --onnx or --arch"),
        (BuildOptions(int8=Int8Options(method="entropy")), "--calib-method only applies to --precision int8"),
        (BuildOptions(precision="int8", eval_data="x.npz"), "only applies with --max-accuracy-drop"),
        (BuildOptions(precision="int8", calib_samples=0), "at least 1"),
    ],
)
def test_contradictions_are_one_line(options: BuildOptions, match: str) -> None:
    with pytest.raises(UserError, match=match):
        validate(options)


def test_the_output_suffix_selects_the_backend() -> None:
    for name in ("m.engine", "m.PLAN", "m.trt"):
        backend, why = resolve_backend(BuildOptions(output=name))
        assert backend == "tensorrt" and why is not None and name in why
    assert resolve_backend(BuildOptions(output="m.onnx")) == ("onnxruntime", None)
    backend, why = resolve_backend(BuildOptions(output="m.xml"))  # OpenVINO IR names its runtime too
    assert backend == "openvino" and why is not None and "m.xml" in why
    assert resolve_backend(BuildOptions(output="m.onnx", backend="tensorrt")) == ("tensorrt", None)  # then refused


def test_outputs_are_checked_against_the_backend(tmp_path: Path) -> None:
    assert resolve_backend(BuildOptions(backend="tensorrt")) == ("tensorrt", None)
    with pytest.raises(UserError, match="--backend onnxruntime is ONNX Runtime"):
        check_outputs(BuildOptions(output=tmp_path / "m.plan", backend="onnxruntime"), "onnxruntime")
    with pytest.raises(UserError, match="names an ONNX file, but --backend tensorrt writes an engine"):
        check_outputs(BuildOptions(output=tmp_path / "m.onnx", backend="tensorrt"), "tensorrt")
    with pytest.raises(UserError, match="looks like a TensorRT engine"):
        check_outputs(BuildOptions(output=tmp_path / "m.engine"), "onnxruntime")
    with pytest.raises(UserError, match="writes an engine"):
        check_outputs(BuildOptions(output=tmp_path / "m.onnx"), "tensorrt")
    with pytest.raises(UserError, match="--max-batch only applies to the TensorRT backend"):
        check_outputs(BuildOptions(output=tmp_path / "m.onnx", engine=EngineBuildOptions(max_batch=8)), "onnxruntime")
    with pytest.raises(UserError, match="--max-batch only applies to the TensorRT backend"):
        check_outputs(BuildOptions(output=tmp_path / "m.xml", engine=EngineBuildOptions(max_batch=8)), "openvino")
    with pytest.raises(UserError, match="-o .* and --emit-onnx .* name the same file"):
        check_outputs(BuildOptions(output=tmp_path / "m.engine", emit_onnx=tmp_path / "m.engine"), "tensorrt")
    assert check_outputs(BuildOptions(output=tmp_path / "m.onnx"), "onnxruntime") == tmp_path / "m.onnx"
    assert not list(tmp_path.iterdir())
