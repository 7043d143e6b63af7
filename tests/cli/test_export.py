"""`resnet-deploy export` end to end, and one clean line for every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from resnet_deploy.cli import main

LABELS = ["tee", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def test_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r20.onnx"
    assert main(["export", "--arch", "resnet20", "--num-classes", "7", "--in-channels", "1", "--input-size", "28",
                 "-o", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "Exported resnet20" in text and "19 BatchNormalization folded" in text and str(out) in text
    model = onnx.load(str(out))
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 28, 28]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim][1:] == [7]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r20.onnx"]  # no temporary file left


def test_export_checkpoint_without_arch_json(
    fmnist_like: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, _ = fmnist_like
    assert main(["export", "--weights", str(ckpt), "-o", str(tmp_path / "m.onnx"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["arch"] == "resnet20" and data["info"]["labels"] == LABELS
    assert data["passes"][1] == {"name": "fold_batchnorm", "changes": {"batchnorm_folded": 19}, "notes": []}
    assert (tmp_path / "m.onnx").stat().st_size == data["size_bytes"]


def test_export_interrupted_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the file is being written: the half-written temporary file is removed."""
    real = Path.write_bytes

    def half_then_interrupt(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", half_then_interrupt)
    assert main(["export", "--arch", "resnet20", "-o", str(tmp_path / "a.onnx")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--arch", "resnet99"], "unknown architecture 'resnet99'"),
        (["--arch", "resnet18", "--weights", "{no_such.pth}"], "not found"),
        (["--arch", "resnet18", "--weights", "{corrupt.pth}"], "corrupt, or not a plain state dict"),
        (["--arch", "resnet18", "--weights", "{corrupt.safetensors}"], "corrupt or not a safetensors file"),
        (["--arch", "resnet18", "--weights", "{notes.txt}"], "unsupported weights format"),
        (["--arch", "resnet18", "--weights", "{r20.pth}"], "do not fit resnet18"),
        (["--weights", "{r20.pth}"], "--arch is required"),
        (["--arch", "resnet18", "--num-classes", "0"], "num_classes must be >= 1"),
        (["--arch", "resnet18", "--opset", "11"], "opset 11"),
    ],
)
def test_export_bad_input(
    argv: list[str],
    match: str,
    bad_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fails_cleanly: Any,
    resolve: Any,
) -> None:
    args = [resolve(a, bad_files, tmp_path) for a in argv]
    fails_cleanly(capsys, ["export", *args, "-o", str(tmp_path / "out.onnx")], match, tmp_path)


@pytest.mark.parametrize(
    ("dest", "match"),
    [("missing_folder/out.onnx", "does not exist"), ("a_file/out.onnx", "cannot write"), (".", "is a directory")],
)
def test_export_unwritable_output(
    dest: str, match: str, bad_files: dict[str, Path], capsys: pytest.CaptureFixture[str], fails_cleanly: Any
) -> None:
    # Tests run as root, which may write into read-only folders; a path under a regular file is unwritable for all.
    folder = bad_files["a_file"].parent
    fails_cleanly(capsys, ["export", "--arch", "resnet20", "-o", str(folder / dest)], match, folder)
