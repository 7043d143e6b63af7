"""What the CLI tests share: a checker for one-line failures, bad input files, a Fashion-MNIST-like checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from resnet_deploy.api import export_model
from resnet_deploy.cli import main
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.models.weights import save_checkpoint

LABELS = ["tee", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


@pytest.fixture(scope="module")
def fmnist_like(
    tmp_path_factory: pytest.TempPathFactory, randomize_bn: Callable[..., torch.nn.Module]
) -> tuple[Path, Path]:
    """A resnet-deploy checkpoint in the bundled layout (resnet20, 1x28x28, labels, in-graph normalisation)
    and its ONNX export."""
    d = tmp_path_factory.mktemp("fmnist_like")
    torch.manual_seed(0)
    net = randomize_bn(build_model("resnet20", 10, 1), seed=9)
    info = ModelInfo(
        arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353],
        dataset="fashion-mnist", labels=LABELS, name="toy", top1=12.5,
    )  # fmt: skip
    ckpt = save_checkpoint(d / "toy.safetensors", net, info)
    onnx_path = export_model(None, ckpt, d / "toy.onnx").path
    return ckpt, onnx_path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {
        "corrupt.pth": b"\x80\x04not a pickle" * 8,
        "corrupt.safetensors": b"\xff" * 100,
        "text.onnx": b"hello, I am not a model\n",
        "empty.onnx": b"",
        "notes.txt": b"some notes\n",
        "a_file": b"x",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    torch.save(build_model("resnet20", 10).state_dict(), d / "r20.pth")
    np.save(d / "uint8.npy", np.zeros((1, 3, 64, 64), np.uint8))
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(d / "2d.npy", np.zeros((64, 64), np.float32))
    np.save(d / "wrong.npy", np.zeros((1, 3, 32, 32), np.float32))
    np.save(d / "nan.npy", np.full((1, 3, 64, 64), np.nan, np.float32))
    return {name: d / name for name in [*files, "r20.pth", "uint8.npy", "objects.npy", "2d.npy", "wrong.npy",
                                        "nan.npy"]}  # fmt: skip


def _fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], match: str, folder: Path | None = None) -> str:
    """Run the CLI expecting a user error: exit 2, exactly one line on stderr, no file written to ``folder``."""
    before = sorted(folder.iterdir()) if folder is not None else None
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, f"exit {rc} for {argv}: {err}"
    assert len(lines) == 1, f"expected one line on stderr for {argv}, got:\n{err}"
    assert lines[0].startswith(f"resnet-deploy {argv[0]}: error: ")
    assert match in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    if folder is not None:
        assert sorted(folder.iterdir()) == before, "a failed command left a file behind"
    return lines[0]


def _resolve(arg: str, files: dict[str, Path], tmp_path: Path) -> str:
    """``{name}`` -> the path of that bad file (or of a missing one in ``tmp_path``); other arguments as they are."""
    if arg.startswith("{") and arg.endswith("}"):
        return str(files.get(arg[1:-1], tmp_path / arg[1:-1]))
    return arg


@pytest.fixture(scope="session")
def fails_cleanly() -> Any:
    """``fails_cleanly(capsys, argv, match, folder=None) -> stderr``: exit 2, one line, no traceback, no file."""
    return _fails_cleanly


@pytest.fixture(scope="session")
def resolve() -> Any:
    """``resolve(arg, files, tmp_path) -> str``: ``{name}`` placeholders to the paths of ``bad_files``."""
    return _resolve
