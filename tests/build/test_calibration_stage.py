"""The calibration stage of ``build``: data streamed from every kind of spec, the progress line, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_deploy.build import BuildOptions, build
from resnet_deploy.build.stages import progress_line
from resnet_deploy.cli import main
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.models.weights import save_checkpoint
from resnet_deploy.precision.calibration import CalibrationData
from resnet_deploy.precision.ptq import Int8Options

INFO = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "r20.safetensors", build_model("resnet20", 10, 1), INFO)


def test_progress_line() -> None:
    line = progress_line(256, 512, 6.2, width=10)
    assert line.startswith("━━━━━      256/512 images  41.3 images/s  6 s left")
    assert progress_line(0, 512, 0.0).endswith("0/512 images  0.0 images/s  0 s left")
    assert "min left" in progress_line(10, 5000, 10.0)
    assert progress_line(512, 512, 3.0, width=4).startswith("━━━━ 512/512")


def test_npy_is_calibration_data(ckpt: Path, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "calib.npy", pixels)
    np.savez(tmp_path / "calib.npz", x=pixels, y=np.zeros(40, np.int64))
    a = build(
        BuildOptions(output=tmp_path / "a.onnx", weights=ckpt, precision="int8", calib_data=str(tmp_path / "calib.npy"))
    )
    b = build(
        BuildOptions(output=tmp_path / "b.onnx", weights=ckpt, precision="int8", calib_data=str(tmp_path / "calib.npz"))
    )
    assert a.int8.samples == 40 and a.int8.batch_size == 32
    # the same images, so the same data hash and the same graph
    assert a.int8.cache.data["sha256"] == b.int8.cache.data["sha256"]
    assert a.output.read_bytes() == b.output.read_bytes()
    expected = CalibrationData.from_array(pixels[:, None].astype(np.float32) / np.float32(255)).fingerprint()
    assert a.int8.cache.data["sha256"] == expected


def test_synthetic_stream_is_the_old_one_shot_draw(ckpt: Path, tmp_path: Path) -> None:
    r = build(
        BuildOptions(
            output=tmp_path / "s.onnx", weights=ckpt, precision="int8", calib_data="synthetic", calib_samples=70
        )
    )
    whole = np.random.default_rng(0).random((70, 1, 28, 28), dtype=np.float32)
    assert r.int8.cache.data["sha256"] == CalibrationData.from_array(whole).fingerprint()


def test_cli_reports_batch_timing_and_agreement(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "calib.npy", np.random.default_rng(1).integers(0, 256, (20, 28, 28), dtype=np.uint8))
    out = tmp_path / "m.onnx"
    args = ["build", "--weights", str(ckpt), "--precision", "int8", "--calib-data", str(tmp_path / "calib.npy")]
    assert main([*args, "--calib-batch", "8", "--calib-check", "12", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "note: calibrated 20 images in " in text and ", 8 per run (ONNX Runtime " in text
    assert "note: INT8 top-1 agrees with FP32 on " in text and " of 12 calibration images (" in text
    assert main([*args, "--calib-check", "0", "--json", "-o", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["int8"]["agreement"] is None and doc["int8"]["batch_size"] == 20
    assert set(doc["int8"]["timing"]) >= {"run", "count", "data", "all"}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--calib-batch", "0"], "--calib-batch must be at least 1"),
        (["--calib-check", "-1"], "--calib-check must be at least 0"),
    ],
)
def test_bad_calibration_flags(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    rc = main(
        [
            "build",
            "--weights",
            str(ckpt),
            "--precision",
            "int8",
            "--calib-data",
            "synthetic",
            *flags,
            "-o",
            str(tmp_path / "m.onnx"),
        ]
    )
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_calibration_flags_need_int8(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--weights", str(ckpt), "--calib-batch", "4", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--calib-batch only applies to --precision int8" in capsys.readouterr().err


def _identity_graph() -> object:
    import onnx
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1, 28, 28]) for n in ("input", "logits")]
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g", [io[0]], [io[1]])
    return helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def test_accuracy_search_defaults_to_the_bundled_test_set() -> None:
    """Issue 16: ``--max-accuracy-drop`` alone uses the bundled checkpoint's test set; other models must name one."""
    from resnet_deploy.build.stages import evaluation_data
    from resnet_deploy.data import open_dataset
    from resnet_deploy.errors import UserError

    bundled = ModelInfo(
        arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353],
        dataset="fashion-mnist", name="fmnist_resnet20",
    )  # fmt: skip
    options = BuildOptions(output="m.onnx", precision="int8", eval_samples=50, int8=Int8Options(max_accuracy_drop=0.5))
    x, y = evaluation_data(options, _identity_graph(), bundled)  # type: ignore[arg-type]
    want_x, want_y = open_dataset("fashion-mnist:test", bundled).take(50)
    assert x.shape == (50, 1, 28, 28) and np.array_equal(x, want_x) and np.array_equal(y, want_y)
    with pytest.raises(UserError, match="needs --eval-data SPEC for this model"):
        evaluation_data(options, _identity_graph(), INFO)  # type: ignore[arg-type]
