"""`resnet-deploy infer` on arrays, checkpoints and images, and one clean line for every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.cli import main

LABELS = ["tee", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def test_infer_npy_onnx(resnet18_onnx: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float64)  # float64: cast for the model
    np.save(tmp_path / "x.npy", x)
    logits_path = tmp_path / "logits.npy"
    argv = ["infer", str(resnet18_onnx.onnx_path), "--input", str(tmp_path / "x.npy"), "--top-k", "3", "--json"]
    assert main([*argv, "--save-logits", str(logits_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    logits = np.load(logits_path, allow_pickle=False)
    with torch.inference_mode():
        expected = resnet18_onnx.model(torch.from_numpy(x.astype(np.float32))).numpy()
    assert logits.shape == (3, 1000) and logits.dtype == np.float32
    assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()
    assert data["backend"] == "onnxruntime" and len(data["results"]) == 3
    for row, res in enumerate(data["results"]):
        top = res["top"]
        assert [t["index"] for t in top] == list(np.argsort(-logits[row], kind="stable")[:3])
        assert top[0]["prob"] >= top[1]["prob"] >= top[2]["prob"] and top[0]["label"] == f"class {top[0]['index']}"
        assert top[0]["logit"] == pytest.approx(float(logits[row, top[0]["index"]]), rel=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logits.npy", "x.npy"]


def test_infer_checkpoint_with_arch(
    resnet18_onnx: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], fails_cleanly: Any
) -> None:
    x = np.random.default_rng(1).standard_normal((3, 64, 64)).astype(np.float32)  # one image, no batch axis
    np.save(tmp_path / "x.npy", x)
    # a torchvision-format .pth needs --arch, and --input-size unless the input is 224x224
    argv = ["infer", str(resnet18_onnx.weights_path), "--arch", "resnet18", "--input", str(tmp_path / "x.npy")]
    fails_cleanly(capsys, argv, "the model takes (N, 3, 224, 224)")
    argv += ["--input-size", "64"]
    assert main([*argv, "--save-logits", str(tmp_path / "l.npy"), "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "pytorch" in out and "x.npy[0]: class " in out
    with torch.inference_mode():
        expected = resnet18_onnx.model(torch.from_numpy(x[None])).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "l.npy"), expected, rtol=1e-5, atol=1e-5)


def test_infer_images_with_labels(
    fmnist_like: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    paths = []
    for i, size in enumerate([(28, 28), (40, 31)]):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(p)  # RGB -> grayscale
        paths.append(str(p))
    ckpt, onnx_path = fmnist_like
    results = {}
    for model in (str(ckpt), str(onnx_path)):
        assert main(["infer", model, *paths, "--json", "--top-k", "10"]) == 0
        results[model] = json.loads(capsys.readouterr().out)["results"]
    a, b = results.values()
    for ra, rb in zip(a, b, strict=True):
        assert [t["index"] for t in ra["top"]] == [t["index"] for t in rb["top"]]
        assert [t["label"] for t in ra["top"]] == [LABELS[t["index"]] for t in ra["top"]]
        assert sum(t["prob"] for t in ra["top"]) == pytest.approx(1.0, abs=1e-5)
    assert main(["infer", str(onnx_path), paths[0], "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "img0.png: " in out and "(onnxruntime, fp32)" in out
    assert any(f"{label} (" in out for label in LABELS)
    # images given after an option count too (argparse alone would reject them)
    assert main(["infer", str(onnx_path), paths[0], "--top-k", "2", paths[1]]) == 0
    out = capsys.readouterr().out
    assert "img0.png: " in out and "img1.png: " in out
    with pytest.raises(SystemExit) as exc:
        main(["infer", str(onnx_path), paths[0], "--top-k", "2", "--no-such-flag"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("model", "extra", "match"),
    [
        ("text.onnx", ["--input", "{wrong.npy}"], "is not an ONNX model"),
        ("empty.onnx", ["--input", "{wrong.npy}"], "is not an ONNX model"),
        ("notes.txt", ["--input", "{wrong.npy}"], "is not a model"),
        ("corrupt.pth", ["--arch", "resnet18", "--input", "{wrong.npy}"], "corrupt"),
        ("missing.onnx", ["--input", "{wrong.npy}"], "not found"),
        ("MODEL", ["--input", "{uint8.npy}"], "holds uint8 values"),
        ("MODEL", ["--input", "{objects.npy}"], "is not a .npy array"),
        ("MODEL", ["--input", "{2d.npy}"], "expected (N, C, H, W) or (C, H, W)"),
        ("MODEL", ["--input", "{wrong.npy}"], "input has shape (1, 3, 32, 32); the model takes (N, 3, 64, 64)"),
        ("MODEL", ["--input", "{nan.npy}"], "NaN"),
        ("MODEL", ["--input", "{corrupt.pth}"], "is not a .npy array"),
        ("MODEL", ["{notes.txt}"], "not an image"),
        ("MODEL", [], "nothing to classify"),
        ("MODEL", ["{notes.txt}", "--input", "{wrong.npy}"], "not both"),
        ("MODEL", ["--input", "{wrong.npy}", "--top-k", "0"], "--top-k"),
        ("MODEL", ["--input", "{wrong.npy}", "--arch", "resnet18"], "--arch applies to PyTorch checkpoints"),
        ("MODEL", ["--input", "{wrong.npy}", "--input-size", "32"], "--input-size applies to PyTorch checkpoints"),
    ],
)
def test_infer_bad_input(
    model: str,
    extra: list[str],
    match: str,
    bad_files: dict[str, Path],
    resnet18_onnx: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fails_cleanly: Any,
    resolve: Any,
) -> None:
    model_path = str(resnet18_onnx.onnx_path) if model == "MODEL" else resolve("{" + model + "}", bad_files, tmp_path)
    args = [resolve(a, bad_files, tmp_path) for a in extra]
    logits = tmp_path / "logits.npy"
    fails_cleanly(capsys, ["infer", model_path, *args, "--save-logits", str(logits)], match, tmp_path)


def test_infer_unwritable_logits(
    resnet18_onnx: Any, bad_files: dict[str, Path], capsys: pytest.CaptureFixture[str], fails_cleanly: Any
) -> None:
    x = bad_files["wrong.npy"]
    dest = bad_files["a_file"] / "logits.npy"
    fails_cleanly(capsys, ["infer", str(resnet18_onnx.onnx_path), "--input", str(x), "--save-logits", str(dest)],
                  "cannot write", bad_files["a_file"].parent)  # fmt: skip


def test_onnxruntime_backend_agrees_with_cli(resnet18_onnx: Any, tmp_path: Path) -> None:
    """The Python API path (api.infer) gives the logits the backend gives directly."""
    from resnet_deploy.api import infer

    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    preds = infer(resnet18_onnx.onnx_path, npy=tmp_path / "x.npy", top_k=5)
    direct = OnnxRuntimeModel(resnet18_onnx.onnx_path).predict(x)
    np.testing.assert_array_equal(preds.logits, direct)
    assert preds.indices.shape == (2, 5)


def test_bundled_checkpoint_on_real_fashion_mnist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bundled checkpoint by name, on real test images: as PNG files and as a preprocessed .npy."""
    from PIL import Image

    from resnet_deploy.data.idx import FASHION_MNIST_DIR, load_fashion_mnist
    from resnet_deploy.models.bundled import bundled_checkpoints

    if "fmnist_resnet20" not in bundled_checkpoints():
        pytest.skip("bundled checkpoint fmnist_resnet20 not present")
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    x, y = load_fashion_mnist("test")
    x, y = x[:16], y[:16]
    np.save(tmp_path / "x.npy", x)
    pngs = []
    for i in range(len(x)):  # the dataset's pixels are uint8 / 255, so the PNGs hold exactly the same values
        pngs.append(str(tmp_path / f"{i}.png"))
        Image.fromarray((x[i, 0] * 255).round().astype(np.uint8)).save(pngs[-1])
    assert main(["infer", "fmnist_resnet20", "--input", str(tmp_path / "x.npy"), "--json", "--top-k", "1",
                 "--save-logits", str(tmp_path / "a.npy")]) == 0  # fmt: skip
    from_npy = json.loads(capsys.readouterr().out)["results"]
    assert main(["infer", "fmnist_resnet20", *pngs, "--top-k", "1", "--save-logits", str(tmp_path / "b.npy")]) == 0
    capsys.readouterr()
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"), rtol=1e-5, atol=1e-5)
    predicted = np.array([r["top"][0]["index"] for r in from_npy])
    assert (predicted == y).sum() >= 12, f"{(predicted == y).sum()}/16 correct (checkpoint reports 92.6 % top-1)"
    assert from_npy[0]["top"][0]["label"] == "Ankle boot" or predicted[0] != 9


def test_infer_progress_lines_and_silence_when_piped(
    resnet18_onnx: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16: infer reports its stages (load, then each batch) with --progress lines, for CI logs; by default,
    on no terminal, stderr stays empty."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((5, 3, 64, 64)).astype(np.float32))
    argv = ["infer", str(resnet18_onnx.onnx_path), "--input", str(tmp_path / "x.npy"), "--batch-size", "2"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv, "--progress", "lines"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("resnet-deploy infer: [load] loading ")
    assert err[1].startswith("resnet-deploy infer: [infer] 2 of 5 inputs")
    assert err[-1].startswith("resnet-deploy infer: done in ")


def test_infer_names_the_runtime_it_ran_on(
    fmnist_like: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A graph ``build --backend auto`` gave to OpenVINO runs there, and says so; without OpenVINO (made unimportable
    in a fresh interpreter, as on a machine without the extra) it runs on ONNX Runtime with one warning line."""
    import subprocess
    import sys

    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from resnet_deploy.info import RUNTIME_KEY
    from resnet_deploy.onnx_io import load_onnx, save_onnx, set_metadata

    _, onnx_path = fmnist_like
    path = save_onnx(set_metadata(load_onnx(onnx_path), {RUNTIME_KEY: "openvino"}), tmp_path / "auto.onnx")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    argv = ["infer", str(path), "--input", str(tmp_path / "x.npy"), "--top-k", "1"]

    def run(block_openvino: bool) -> subprocess.CompletedProcess[str]:
        block = "sys.modules['openvino'] = None; " if block_openvino else ""
        code = f"import sys; {block}from resnet_deploy.cli import main; sys.exit(main({argv!r}))"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert main([*argv, "--runtime", "onnxruntime"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{path} (onnxruntime, fp32)"
    with_ov, without = run(False), run(True)
    assert with_ov.returncode == 0 and with_ov.stderr == "", with_ov.stderr
    assert with_ov.stdout.splitlines()[0] == f"{path} (openvino, fp32)"
    assert without.returncode == 0, without.stderr
    assert without.stdout.splitlines()[0] == f"{path} (onnxruntime, fp32)"
    (line,) = without.stderr.splitlines()
    assert line.startswith("WARNING: ") and "OpenVINO is not installed" in line and "resnet-deploy[openvino]" in line
