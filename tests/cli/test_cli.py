"""`resnet-deploy models / export / infer / inspect` end to end, and one clean line for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import pytest
import torch

from resnet_deploy.api import export_model, parameter_count
from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.cli import main
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import ARCHITECTURES, build_model
from resnet_deploy.models.weights import save_checkpoint

if TYPE_CHECKING:
    from conftest import ExportedModel

LABELS = ["tee", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], match: str, folder: Path | None = None) -> str:
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


# ------------------------------------------------------------------------------------------------ models


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    archs = {a["name"]: a for a in data["architectures"]}
    assert set(archs) == set(ARCHITECTURES)
    assert archs["resnet18"]["parameters"] == 11_689_512 and archs["resnet18"]["num_classes"] == 1000
    assert archs["resnet152"]["parameters"] == 60_192_808 and archs["resnet152"]["block"] == "bottleneck"
    assert archs["resnet20"]["parameters"] == 269_722 and archs["resnet20"]["input_size"] == 32
    assert all(a["parameters"] == parameter_count(a["name"], a["num_classes"]) for a in archs.values())
    assert isinstance(data["checkpoints"], list)
    for c in data["checkpoints"]:  # bundled ones (trained while this was written) must describe themselves
        assert c["error"] is None and c["arch"] in ARCHITECTURES and c["dataset"]


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet50_small" in out and "25,557,032" in out and "11,689,512" in out
    assert ("Bundled checkpoints" in out) != ("No bundled checkpoints" in out)


# ------------------------------------------------------------------------------------------------ export


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


# ------------------------------------------------------------------------------------------------ infer


def test_infer_npy_onnx(resnet18_onnx: ExportedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    resnet18_onnx: ExportedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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


# ------------------------------------------------------------------------------------------------ inspect


def test_inspect_onnx(resnet18_onnx: ExportedModel, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(resnet18_onnx.onnx_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "onnx" and d["checker"] == "ok" and d["precision"] == "fp32"
    assert d["op_counts"]["Conv"] == 20 and d["batchnorm_nodes"] == 0 and d["qdq_nodes"] == 0
    assert d["plugin_nodes"] == {} and d["opset"] == {"ai.onnx": 17}
    assert d["inputs"] == [{"name": "input", "shape": ["batch", 3, 64, 64], "dtype": "float"}]
    assert d["outputs"] == [{"name": "logits", "shape": ["batch", 1000], "dtype": "float"}]
    # folding replaces each BN's gamma/beta (2 per channel) by one Conv bias value: 4,800 BN channels in resnet18
    assert d["parameters"] == 11_689_512 - 4_800
    assert d["initializer_bytes"] == 4 * d["parameters"]
    assert d["model_info"]["arch"] == "resnet18" and d["model_info"]["input_size"] == 64
    assert main(["inspect", str(resnet18_onnx.onnx_path)]) == 0
    text = capsys.readouterr().out
    assert "Conv 20" in text and "batchnorm   0" in text and "input       input float (batch, 3, 64, 64)" in text


def test_inspect_reports_qdq_and_plugins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
        helper.make_node("ResidualAddRelu", ["dq", "dq"], ["y"], domain="resnet_deploy"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("resnet_deploy", 1)]
    )
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "q.onnx"))
    assert main(["inspect", str(tmp_path / "q.onnx"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["precision"] == "int8" and d["qdq_nodes"] == 2
    assert d["plugin_nodes"] == {"resnet_deploy::ResidualAddRelu": 1} and d["model_info"] is None


# ------------------------------------------------------------------------------------------------ bad input


def resolve(arg: str, files: dict[str, Path], tmp_path: Path) -> str:
    """``{name}`` -> the path of that bad file (or of a missing one in ``tmp_path``); other arguments as they are."""
    if arg.startswith("{") and arg.endswith("}"):
        return str(files.get(arg[1:-1], tmp_path / arg[1:-1]))
    return arg


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
    argv: list[str], match: str, bad_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [resolve(a, bad_files, tmp_path) for a in argv]
    fails_cleanly(capsys, ["export", *args, "-o", str(tmp_path / "out.onnx")], match, tmp_path)


@pytest.mark.parametrize(
    ("dest", "match"),
    [("missing_folder/out.onnx", "does not exist"), ("a_file/out.onnx", "cannot write"), (".", "is a directory")],
)
def test_export_unwritable_output(
    dest: str, match: str, bad_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Tests run as root, which may write into read-only folders; a path under a regular file is unwritable for all.
    folder = bad_files["a_file"].parent
    fails_cleanly(capsys, ["export", "--arch", "resnet20", "-o", str(folder / dest)], match, folder)


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
    resnet18_onnx: ExportedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_path = str(resnet18_onnx.onnx_path) if model == "MODEL" else resolve("{" + model + "}", bad_files, tmp_path)
    args = [resolve(a, bad_files, tmp_path) for a in extra]
    logits = tmp_path / "logits.npy"
    fails_cleanly(capsys, ["infer", model_path, *args, "--save-logits", str(logits)], match, tmp_path)


def test_infer_unwritable_logits(
    resnet18_onnx: ExportedModel, bad_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    x = bad_files["wrong.npy"]
    dest = bad_files["a_file"] / "logits.npy"
    fails_cleanly(capsys, ["infer", str(resnet18_onnx.onnx_path), "--input", str(x), "--save-logits", str(dest)],
                  "cannot write", bad_files["a_file"].parent)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("text.onnx", "is not an ONNX model or TensorRT engine"),
        ("notes.txt", "is not an ONNX model or TensorRT engine"),
        ("r20.pth", "is not an ONNX model or TensorRT engine"),
        ("empty.onnx", "is not an ONNX model or TensorRT engine"),
        ("missing.onnx", "not found"),
    ],
)
def test_inspect_bad_input(
    name: str, match: str, bad_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bad_files.get(name, tmp_path / name)
    fails_cleanly(capsys, ["inspect", str(path)], match)


def test_inspect_engine_without_sidecar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.engine").write_bytes(b"\x00" * 64)
    fails_cleanly(capsys, ["inspect", str(tmp_path / "m.engine")], "m.engine")


def test_real_process_one_line_on_stderr(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: exit 2, one line, no traceback, no file."""
    out = tmp_path / "x.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "resnet_deploy", "export", "--arch", "resnet99", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("resnet-deploy export: error: unknown architecture 'resnet99'")
    assert not out.exists()


def test_help_is_fast_and_lists_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "resnet_deploy", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for cmd in ("models", "export", "infer", "inspect", "build", "eval", "bench"):
        assert cmd in proc.stdout


def test_onnxruntime_backend_agrees_with_cli(resnet18_onnx: ExportedModel, tmp_path: Path) -> None:
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


def test_inspect_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real engine built here by TensorRT(-RTX), described from its sidecar (no GPU needed to inspect)."""
    from onnx import TensorProto, helper, numpy_helper

    from resnet_deploy.backends.tensorrt import compat

    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine

    w = numpy_helper.from_array(np.random.default_rng(1).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
            helper.make_node("Flatten", ["g"], ["logits"], name="flatten"),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = build_engine(model, tmp_path / "tiny.engine", EngineBuildOptions(min_batch=1, max_batch=2))
    assert main(["inspect", str(report.engine_path)]) == 0
    text = capsys.readouterr().out
    assert "engine" in text and "tiny.engine" in text and "precision" in text
    assert main(["inspect", str(report.engine_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "engine" and d["integrity"] == "ok"
