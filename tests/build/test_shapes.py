"""Shape flags with another H x W (issue 16): a checkpoint re-exported at a fixed size, or with dynamic H and W
for a range (ONNX Runtime takes any size, a TensorRT engine gets the range as its profile, INT8 calibrates at the
opt size); a foreign ONNX only through dynamic H/W axes; the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import resnet_deploy
from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.build import BuildOptions, build
from resnet_deploy.build.shapes import SpatialProfile, check_for_export, spatial_profile
from resnet_deploy.errors import UserError
from resnet_deploy.models.registry import get_arch

RANGE = {"min": "input:1x1x16x16", "opt": "input:4x1x32x32", "max": "input:8x1x64x64"}


def _input_dims(path: Path) -> list[int | str]:
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def _foreign(tmp_path: Path, dynamic_hw: bool) -> Path:
    """A resnet20 graph as torch.onnx writes it, without resnet-deploy metadata: a graph users bring."""
    from resnet_deploy.export import torch_to_onnx
    from resnet_deploy.models.weights import load_model

    net, info = load_model(None, "fmnist_resnet20")
    path = tmp_path / ("dynamic.onnx" if dynamic_hw else "fixed.onnx")
    onnx.save(torch_to_onnx(net, info, dynamic_hw=dynamic_hw), str(path))
    return path


# ------------------------------------------------------------------------------------------ the profile itself


def test_missing_profile_points_are_filled_as_trtexec_fills_them() -> None:
    def hw(shapes: dict[str, str]) -> tuple[tuple[int, int], ...]:
        profile = spatial_profile(BuildOptions(shapes=shapes))
        assert profile is not None
        return profile.as_tuple()

    assert spatial_profile(BuildOptions()) is None
    assert hw({"max": "x:8x1x64x64"}) == ((64, 64),) * 3  # max alone: min and opt from it
    assert hw({"opt": "x:8x1x32x32", "max": "x:8x1x64x64"}) == ((32, 32), (32, 32), (64, 64))  # min from opt
    assert hw({"min": "x:1x1x16x16", "max": "x:8x1x64x64"}) == ((16, 16), (64, 64), (64, 64))  # opt from max
    assert hw({"min": "x:1x1x16x16", "opt": "x:8x1x32x32"}) == ((16, 16), (32, 32), (32, 32))  # max from opt
    with pytest.raises(UserError, match="H must satisfy min <= opt <= max; got 64/32/32"):
        hw({"min": "x:1x1x64x64", "opt": "x:8x1x32x32"})
    with pytest.raises(UserError, match="C cannot vary"):
        hw({"min": "x:1x1x16x16", "max": "x:8x3x64x64"})


def test_export_refuses_what_the_architecture_cannot_take() -> None:
    resnet20, resnet18 = get_arch("resnet20"), get_arch("resnet18")
    assert (resnet20.min_input_size, resnet18.min_input_size, get_arch("resnet50_small").min_input_size) == (4, 32, 16)
    check_for_export(SpatialProfile((4, 4), (32, 32), (64, 48), 1), 1, 4, "resnet20")  # the minimum itself is fine
    with pytest.raises(UserError, match="down to 3, but resnet20 takes at least 4x4"):
        check_for_export(SpatialProfile((3, 8), (32, 32), (64, 64), 1), 1, 4, "resnet20")
    with pytest.raises(UserError, match="C = 3, but resnet20 takes 1 input channel"):
        check_for_export(SpatialProfile((32, 32), (32, 32), (32, 32), 3), 1, 4, "resnet20")
    with pytest.raises(UserError, match="32x48 is not square"):
        check_for_export(SpatialProfile((32, 32), (32, 48), (64, 64), 1), 1, 4, "resnet20")


# ------------------------------------------------------------------------------------------ builds


def test_fixed_other_size_reexports_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "m32.onnx"
    r = build(BuildOptions(output=out, shapes=dict.fromkeys(("min", "opt", "max"), "input:1x1x32x32")))
    assert "exported at 32x32" in r.notes
    assert _input_dims(out) == ["batch", 1, 32, 32]
    model = resnet_deploy.load(out)
    assert model.input_shape == (None, 1, 32, 32) and model.info is not None and model.info.input_size == 32
    assert model.predict(np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 10)
    with pytest.raises(UserError, match=r"takes \(N, 1, 32, 32\)"):
        model.predict(np.zeros((1, 1, 28, 28), np.float32))


def test_range_exports_dynamic_h_w_that_onnxruntime_runs_at_any_size(tmp_path: Path) -> None:
    out = tmp_path / "dyn.onnx"
    r = build(BuildOptions(output=out, shapes=RANGE))
    assert any("dynamic H and W (min 16x16, opt 32x32, max 64x64)" in n for n in r.notes)
    assert _input_dims(out) == ["batch", 1, "height", "width"]
    model = resnet_deploy.load(out)
    assert model.input_shape == (None, 1, None, None) and model.describe_shape() == "(N, 1, H, W)"
    assert model.info is not None and model.info.input_size == 32  # what images are resized to
    x = np.random.default_rng(0).random((3, 1, 48, 48), dtype=np.float32)
    small, large = model.predict(x[:, :, :20, :20]), model.predict(x)
    assert small.shape == large.shape == (3, 10) and not np.allclose(small, large)
    from resnet_deploy.inspection import format_summary, inspect_model

    text = format_summary(inspect_model(out))
    assert "input 1x32x32 (the opt size images are resized to; the graph's H and W are dynamic)" in text
    # eval and infer resize images to the recorded (opt) size
    from PIL import Image

    from resnet_deploy.evaluate import evaluate_model
    from resnet_deploy.infer import load_images

    report = evaluate_model(out, "fashion-mnist:test", limit=64, progress=False)
    assert report.count == 64 and report.top1 > 50  # a 28x28-trained net still reads 32x32 Fashion-MNIST
    Image.fromarray(np.full((40, 30), 128, np.uint8)).save(tmp_path / "x.png")
    assert load_images([tmp_path / "x.png"], model).shape == (1, 1, 32, 32)
    # the same images through the fixed-size 32x32 export: one network, whatever the axes say
    fixed = tmp_path / "m32.onnx"
    build(BuildOptions(output=fixed, shapes=dict.fromkeys(("min", "opt", "max"), "input:1x1x32x32")))
    np.testing.assert_allclose(
        model.predict(x[:, :, :32, :32]), resnet_deploy.load(fixed).predict(x[:, :, :32, :32]), rtol=1e-4, atol=1e-4
    )


def test_int8_calibrates_at_the_opt_size(tmp_path: Path) -> None:
    from resnet_deploy.build import stages
    from resnet_deploy.build.result import BuildResult

    options = BuildOptions(output=tmp_path / "q.onnx", precision="int8", calib_samples=16, shapes=RANGE)
    source = stages.load_or_export(options, lambda stage, detail: None)
    result = BuildResult(Path(options.output), "onnxruntime", "int8", source.info, source.description)
    data, _ = stages.calibration_data(options, source.model, source.info, result, lambda stage, detail: None)
    assert data.sample_shape == (1, 32, 32)
    assert next(iter(data.batches(4))).shape == (4, 1, 32, 32)  # Fashion-MNIST's 28x28 resized to the opt size
    assert "calibration images are resized to the opt H x W 32x32" in result.notes

    r = build(options)
    assert "calibration images are resized to the opt H x W 32x32" in r.notes
    model = resnet_deploy.load(options.output)
    assert model.input_shape == (None, 1, None, None)
    for size in (16, 64):
        assert model.predict(np.zeros((2, 1, size, size), np.float32)).shape == (2, 10)


def test_openvino_runs_a_dynamic_h_w_build(tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from resnet_deploy.backends.openvino import OpenVinoModel

    out = tmp_path / "dyn.xml"
    build(BuildOptions(output=out, backend="openvino", shapes=RANGE))
    model = OpenVinoModel(out)
    assert model.input_shape == (None, 1, None, None)
    for size in (20, 48):
        assert model.predict(np.zeros((2, 1, size, size), np.float32)).shape == (2, 10)


def test_onnxruntime_refuses_shape_flags_that_change_nothing(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--max-shapes only applies to the TensorRT backend"):
        build(BuildOptions(output=tmp_path / "m.onnx", shapes={"max": "input:8x1x28x28"}))
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------------------------------ foreign ONNX


def test_foreign_onnx_takes_another_size_only_through_dynamic_axes(tmp_path: Path) -> None:
    fixed = _foreign(tmp_path, dynamic_hw=False)
    with pytest.raises(UserError, match="the graph's C x H x W is fixed at 1x28x28"):
        build(BuildOptions(output=tmp_path / "a.onnx", onnx=fixed, shapes={"max": "input:8x1x32x32"}))
    with pytest.raises(UserError, match="the model takes C = 1 input channel"):
        build(BuildOptions(output=tmp_path / "a.onnx", onnx=fixed, shapes={"max": "input:8x3x28x28"}))
    dynamic = _foreign(tmp_path, dynamic_hw=True)
    with pytest.raises(UserError, match="the model takes C = 1 input channel"):
        build(BuildOptions(output=tmp_path / "a.onnx", onnx=dynamic, shapes={"max": "input:8x3x32x32"}))
    assert not (tmp_path / "a.onnx").exists()
    out = tmp_path / "b.onnx"
    r = build(
        BuildOptions(
            output=out, onnx=dynamic, precision="int8", calib_data="fashion-mnist:train", calib_samples=8, shapes=RANGE
        )  # fmt: skip
    )
    assert "calibration images are resized to the opt H x W 32x32" in r.notes
    assert _input_dims(out)[2:] == ["height", "width"]
    r = build(
        BuildOptions(
            output=out,
            onnx=dynamic,
            precision="int8",
            calib_data="synthetic",
            calib_samples=4,
            shapes={"opt": "input:1x1x24x24", "max": "input:8x1x64x64"},
        )  # fmt: skip
    )
    assert "calibration images are at the opt H x W 24x24" in r.notes
    with pytest.raises(UserError, match="32x40 is not square"):
        build(BuildOptions(output=tmp_path / "c.onnx", onnx=dynamic, shapes={"opt": "input:1x1x32x40"}))


def test_a_dynamic_graph_of_ours_built_again_follows_the_new_opt_size(tmp_path: Path) -> None:
    first = tmp_path / "dyn.onnx"
    build(BuildOptions(output=first, shapes=RANGE))
    again = tmp_path / "again.onnx"
    r = build(BuildOptions(output=again, onnx=first, shapes={"opt": "input:1x1x48x48", "max": "input:8x1x96x96"}))
    assert "images are resized to the new opt size 48x48" in r.notes
    model = resnet_deploy.load(again)
    assert model.info is not None and model.info.input_size == 48 and model.input_shape == (None, 1, None, None)


@pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")
def test_tensorrt_engine_gets_the_h_w_range_as_its_profile(tmp_path: Path) -> None:
    out = tmp_path / "dyn.engine"
    r = build(BuildOptions(output=out, shapes=RANGE))
    assert r.engine is not None
    assert r.engine.inputs[0]["shape"] == [-1, 1, -1, -1]  # the parsed network's input: H and W dynamic
    meta = json.loads((tmp_path / "dyn.engine.json").read_text())
    assert meta["input"]["shape"] == [-1, 1, -1, -1]
    assert (meta["input"]["min_shape"], meta["input"]["opt_shape"], meta["input"]["max_shape"]) == (
        [1, 1, 16, 16],
        [4, 1, 32, 32],
        [8, 1, 64, 64],
    )
    assert meta["preprocessing"]["input_size"] == 32
    assert "H x W 16x16/32x32/64x64" in str(r.engine)
    from resnet_deploy.inspection import format_summary, inspect_model

    assert "(N, 1, H, W)  profile min (1, 1, 16, 16) opt (4, 1, 32, 32) max (8, 1, 64, 64)" in format_summary(
        inspect_model(out)
    )

    dynamic = _foreign(tmp_path, dynamic_hw=True)
    with pytest.raises(UserError, match="has dynamic H and W: give their range with --min/--opt/--max-shapes"):
        build(BuildOptions(output=tmp_path / "f.engine", onnx=dynamic))
    r = build(BuildOptions(output=tmp_path / "f.engine", onnx=dynamic, shapes={"max": "input:8x1x40x40"}))
    meta = json.loads((tmp_path / "f.engine.json").read_text())
    assert meta["input"]["max_shape"] == [8, 1, 40, 40] and meta["input"]["min_shape"] == [1, 1, 40, 40]
    assert meta["preprocessing"]["input_size"] == 40  # no metadata: the profile's opt size
