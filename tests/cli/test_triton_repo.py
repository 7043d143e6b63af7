"""`resnet-deploy triton-repo`: a repository in Triton's layout, and one clean line for every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from resnet_deploy.cli import main

LABELS = ["tee", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]  # fmnist_like's

pytest.importorskip("tritonclient.grpc", reason="tritonclient (with grpc) is not installed; setup.sh installs it")


def test_triton_repo_writes_the_repository(
    fmnist_like: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, onnx_path = fmnist_like
    repo = tmp_path / "repo"
    argv = ["triton-repo", str(onnx_path), "-o", str(repo), "--image-input", "--max-batch", "8", "--json"]
    assert main([*argv, "--instances", "2", "--queue-delay-us", "100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in data["models"]] == ["toy", "toy_preprocess", "toy_image"]
    assert data["models"][0] == {
        "name": "toy", "platform": "onnxruntime_onnx", "max_batch_size": 8, "preferred_batch_sizes": [8],
        "source": str(onnx_path), "files": ["1/model.onnx", "config.pbtxt", "configs/cpu.pbtxt", "labels.txt"],
    }  # fmt: skip
    assert data["queue_delay_us"] == 100 and data["instances"] == 2
    text = (repo / "toy" / "config.pbtxt").read_text()
    assert "count: 2 kind: KIND_GPU" in text and "max_queue_delay_microseconds: 100" in text
    assert (repo / "toy" / "labels.txt").read_text().split() == LABELS
    assert main(["triton-repo", str(onnx_path), "-o", str(tmp_path / "plain"), "--no-warmup"]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "max_batch_size 32, preferred [8, 32]" in out and "--model-config-name=cpu" in out
    assert "model_warmup" not in (tmp_path / "plain" / "toy" / "config.pbtxt").read_text()


def test_triton_repo_fails_cleanly(
    fmnist_like: tuple[Path, Path],
    bad_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fails_cleanly: Any,
) -> None:
    ckpt, onnx_path = fmnist_like
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    out = str(tmp_path / "repo")
    for argv, expected in [
        (["triton-repo", str(onnx_path), "-o", str(tmp_path / "taken")], "already exists"),
        (["triton-repo", str(tmp_path / "missing.onnx"), "-o", out], "not found"),
        (["triton-repo", str(ckpt), "-o", out], "is not a model Triton serves"),
        (["triton-repo", str(bad_files["text.onnx"]), "-o", out], "is not an ONNX model"),
        (["triton-repo", str(onnx_path), "-o", out, "--instances", "0"], "--instances must be in [1, 64]"),
        (["triton-repo", str(onnx_path), str(onnx_path), "-o", out], "would share a folder name"),
    ]:
        fails_cleanly(capsys, argv, expected, folder=tmp_path)


def test_triton_repo_refuses_an_engine_built_by_tensorrt_rtx(
    fmnist_like: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], fails_cleanly: Any
) -> None:
    """A real engine from `resnet-deploy build --backend tensorrt` on this machine (TensorRT-RTX, no GPU needed)."""
    from resnet_deploy.backends.tensorrt import compat

    found = compat.available()
    if found is None or found.flavour != "tensorrt_rtx":
        pytest.skip("needs TensorRT-RTX's builder (setup.sh installs it)")
    _, onnx_path = fmnist_like
    engine = tmp_path / "toy.engine"
    assert main(["build", "--onnx", str(onnx_path), "--backend", "tensorrt", "-o", str(engine)]) == 0
    capsys.readouterr()
    line = fails_cleanly(capsys, ["triton-repo", str(engine), "-o", str(tmp_path / "repo")], "built by TensorRT-RTX")
    assert "tensorrt_plan backend runs only engines of full TensorRT" in line
    shutil.rmtree(tmp_path / "repo", ignore_errors=True)
