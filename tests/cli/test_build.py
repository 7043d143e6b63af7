"""`resnet-deploy build` end to end, and its bad inputs: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_deploy.cli import main
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import build_model
from resnet_deploy.models.weights import save_checkpoint

INFO = ModelInfo(
    arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353], dataset="fashion-mnist"
)


def checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, build_model("resnet20", 10, 1), INFO)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint(tmp_path_factory.mktemp("ckpt") / "r20.safetensors", 0)


@pytest.fixture(scope="module")
def calib_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "calib.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (24, 28, 28), dtype=np.uint8), y=rng.integers(0, 10, 24))
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["build", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("resnet-deploy build: error: ")
    assert pattern in lines[0], lines[0]


def test_int8_with_cache_then_reuse(
    ckpt: Path, calib_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "m.onnx", tmp_path / "calib.json"
    args = ["--weights", str(ckpt), "--precision", "int8", "--calib-data", str(calib_npz), "--calib-method", "minmax"]
    code, stdout, _ = run([*args, "--calib-cache", str(cache), "-o", str(out)], capsys)
    assert code == 0 and out.is_file() and cache.is_file()
    assert "calibration: minmax" in stdout and "24 images of" in stdout
    assert json.loads(cache.read_text())["data"]["samples"] == 24
    first = out.read_bytes()
    out2 = tmp_path / "m2.onnx"
    code, stdout, _ = run(
        ["--weights", str(ckpt), "--precision", "int8", "--calib-cache", str(cache), "-o", str(out2)], capsys
    )
    assert code == 0 and "reused from cache" in stdout
    import onnx

    assert onnx.load(str(out2)).graph == onnx.load_from_string(first).graph


def test_json_output_and_emit_onnx(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, emit = tmp_path / "m.onnx", tmp_path / "copy.onnx"
    code, stdout, _ = run(
        ["--weights", str(ckpt), "--precision", "fp16", "-o", str(out), "--emit-onnx", str(emit), "--json"], capsys
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["precision"] == "fp16" and doc["backend"] == "onnxruntime"
    assert [p["name"] for p in doc["passes"]] == ["onnxsim", "fold_batchnorm", "fp16"]
    assert emit.read_bytes() == out.read_bytes()


def test_synthetic_calibration_warns_loudly(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    args = ["--weights", str(ckpt), "--precision", "int8", "--calib-data", "synthetic", "--calib-samples", "8"]
    code, stdout, err = run([*args, "-o", str(out)], capsys)
    assert code == 0 and out.is_file()
    assert "MEANINGLESS" in err and "MEANINGLESS" in stdout


def test_shape_mismatched_calibration_data(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz = tmp_path / "rgb.npz"
    np.savez(npz, x=np.zeros((4, 3, 32, 32), np.uint8), y=np.zeros(4, np.int64))
    out, cache = tmp_path / "m.onnx", tmp_path / "c.json"
    args = ["--weights", str(ckpt), "--precision", "int8", "--calib-data", str(npz), "--calib-cache", str(cache)]
    code, _, err = run([*args, "-o", str(out)], capsys)
    assert_one_line_error(code, err, "shape")
    assert sorted(tmp_path.iterdir()) == [npz]


@pytest.mark.parametrize("samples", ["0", "-3"])
def test_zero_calibration_samples(
    ckpt: Path, calib_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], samples: str
) -> None:
    out = tmp_path / "m.onnx"
    args = ["--weights", str(ckpt), "--precision", "int8", "--calib-data", str(calib_npz), "--calib-samples", samples]
    code, _, err = run([*args, "-o", str(out)], capsys)
    assert_one_line_error(code, err, "--calib-samples must be at least 1")
    assert list(tmp_path.iterdir()) == []


def test_empty_calibration_file(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz = tmp_path / "empty.npz"
    np.savez(npz, x=np.zeros((0, 28, 28), np.uint8), y=np.zeros(0, np.int64))
    out = tmp_path / "m.onnx"
    code, _, err = run(
        ["--weights", str(ckpt), "--precision", "int8", "--calib-data", str(npz), "-o", str(out)], capsys
    )
    assert_one_line_error(code, err, "no samples")
    assert not out.exists()


def test_stale_cache(ckpt: Path, calib_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = checkpoint(tmp_path / "other.safetensors", 1)
    cache = tmp_path / "c.json"
    code, _, _ = run(
        [
            "--weights",
            str(other),
            "--precision",
            "int8",
            "--calib-data",
            str(calib_npz),
            "--calib-cache",
            str(cache),
            "-o",
            str(tmp_path / "a.onnx"),
        ],
        capsys,
    )
    assert code == 0
    before = cache.read_bytes()
    out = tmp_path / "m.onnx"
    code, _, err = run(
        ["--weights", str(ckpt), "--precision", "int8", "--calib-cache", str(cache), "-o", str(out)], capsys
    )
    assert_one_line_error(code, err, "stale or foreign")
    assert not out.exists() and cache.read_bytes() == before


def test_malformed_cache(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "c.json"
    cache.write_text('{"format": "something-else"}')
    out = tmp_path / "m.onnx"
    code, _, err = run(
        ["--weights", str(ckpt), "--precision", "int8", "--calib-cache", str(cache), "-o", str(out)], capsys
    )
    assert_one_line_error(code, err, "not a resnet-deploy calibration cache")
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--precision", "int8"], "needs calibration data"),
        (["--precision", "fp32", "--calib-method", "entropy"], "only applies to --precision int8"),
        (["--precision", "int8", "--calib-data", "synthetic", "--max-accuracy-drop", "1"], "needs --eval-data SPEC"),
        (["--precision", "fp32", "--io-dtype", "fp16"], "only applies to --precision fp16"),
        (["--precision", "fp32", "--max-batch", "8"], "only applies to the TensorRT backend"),
        (["--precision", "fp32", "--onnx", "x.onnx"], "either --onnx or --arch/--weights"),
    ],
)
def test_bad_options(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "m.onnx"
    code, _, err = run(["--weights", str(ckpt), *extra, "-o", str(out)], capsys)
    assert_one_line_error(code, err, message)
    assert list(tmp_path.iterdir()) == []


def test_output_checked_before_the_work(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--weights", str(ckpt), "-o", str(tmp_path / "missing" / "m.onnx")], capsys)
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run(["--weights", str(ckpt), "--backend", "tensorrt", "-o", str(tmp_path / "m.onnx")], capsys)
    assert_one_line_error(code, err, "writes an engine")
    # -o m.engine alone selects TensorRT; against an explicit --backend it is one line naming both
    argv = ["--weights", str(ckpt), "--backend", "onnxruntime", "-o", str(tmp_path / "m.engine")]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, "looks like a TensorRT engine, but --backend onnxruntime is ONNX Runtime")


def test_engine_suffix_selects_tensorrt(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-o m.plan` with no --backend builds an engine (TensorRT-RTX builds without a GPU), as trtexec users expect."""
    from resnet_deploy.backends.tensorrt import compat

    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    out = tmp_path / "m.plan"
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"c{i}\n" for i in range(10)))
    code, stdout, err = run(["--weights", str(ckpt), "-o", str(out), "--labels", str(labels), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["backend"] == "tensorrt" and any("-o m.plan names an engine" in n for n in doc["notes"])
    assert out.is_file()
    sidecar = json.loads((tmp_path / "m.plan.json").read_text())
    assert sidecar["model"]["labels"] == [f"c{i}" for i in range(10)]  # --labels travels in the sidecar


def test_labels_are_stored_and_shown_by_infer(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnx

    names = [f"class-{i}" for i in range(10)]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(names) + "\n")
    out = tmp_path / "m.onnx"
    code, _, err = run(["--weights", str(ckpt), "--labels", str(labels), "-o", str(out)], capsys)
    assert code == 0, err
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["resnet_deploy.labels"]) == names
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).uniform(size=(2, 1, 28, 28)).astype(np.float32))
    assert main(["infer", str(out), "--input", str(x), "--top-k", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"][0]["top"][0]["label"] in names
    # at run time, --labels names the classes of any model (here: overriding the stored names)
    other = tmp_path / "other.txt"
    other.write_text("".join(f"other-{i}\n" for i in range(10)))
    assert main(["infer", str(out), "--input", str(x), "--top-k", "1", "--labels", str(other)]) == 0
    assert "other-" in capsys.readouterr().out
    # a count that is not the model's: one line, nothing written
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    code, _, err = run(["--weights", str(ckpt), "--labels", str(short), "-o", str(tmp_path / "n.onnx")], capsys)
    assert_one_line_error(code, err, "names 2 classes")
    assert not (tmp_path / "n.onnx").exists()
    assert main(["infer", str(out), "--input", str(x), "--labels", str(short)]) == 2
    assert "names 2 classes" in capsys.readouterr().err
    # a graph without our metadata has nowhere to keep them
    foreign = onnx.load(str(out))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    code, _, err = run(
        ["--onnx", str(tmp_path / "foreign.onnx"), "--labels", str(labels), "-o", str(tmp_path / "f.onnx")], capsys
    )
    assert_one_line_error(code, err, "infer --labels")


def test_batch_flags_on_a_static_batch_onnx_are_refused(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A graph exported at batch 1 builds an engine of batch 1 only: --max-batch 8 is one line, nothing written,
    before any work (the engine would not have the profile the sidecar recorded)."""
    import onnx

    dynamic = tmp_path / "dynamic.onnx"
    code, _, err = run(["--weights", str(ckpt), "-o", str(dynamic)], capsys)
    assert code == 0, err
    static = onnx.load(str(dynamic))
    static.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(static, str(tmp_path / "static.onnx"))
    out = tmp_path / "m.engine"
    for flags in (["--max-batch", "8"], ["--opt-batch", "4"], ["--min-batch", "2", "--max-batch", "2"]):
        code, _, err = run(["--onnx", str(tmp_path / "static.onnx"), *flags, "-o", str(out)], capsys)
        assert_one_line_error(code, err, "the ONNX input has a fixed batch of 1")
        assert flags[-2] in err and not out.exists()


def test_trtexec_style_shapes(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--shapes / --min/--opt/--max-shapes NAME:NxCxHxW set the batch profile; another C, an H x W below what the
    architecture takes, another input name, a contradicting batch flag or ONNX Runtime without another H x W are one
    line each, nothing written."""
    out = tmp_path / "m.engine"
    bad = [
        (["--max-shapes", "input:8x3x28x28"], "the model takes C = 1 input channel(s), not 3"),
        (["--max-shapes", "input:8x3x32x32"], "resnet20 takes 1 input channel(s)"),
        (["--max-shapes", "input:8x1x2x2"], "resnet20 takes at least 4x4"),
        (["--min-shapes", "input:1x1x64x64", "--max-shapes", "input:8x1x32x32"], "min <= opt <= max"),
        (["--shapes", "input:8x1x32x24"], "not square"),
        (["--max-shapes", "images:8x1x28x28"], "the model's input is 'input'"),
        (["--max-shapes", "input:8x1x28"], "4 positive dimensions"),
        (["--max-shapes", "input:8x1x28x28,other:1x1x1x1"], "INPUT_NAME:NxCxHxW"),
        (["--shapes", "input:8x1x28x28", "--max-shapes", "input:8x1x28x28"], "not both"),
        (["--max-shapes", "input:8x1x28x28", "--max-batch", "4"], "--max-batch 4 contradicts --max-shapes"),
        (["--min-shapes", "input:8x1x28x28", "--max-shapes", "input:4x1x28x28"], "--min-batch 8"),
    ]
    for flags, match in bad:
        code, _, err = run(["--weights", str(ckpt), *flags, "-o", str(out)], capsys)
        assert_one_line_error(code, err, match)
        assert not out.exists()
    code, _, err = run(
        ["--weights", str(ckpt), "--max-shapes", "input:8x1x28x28", "-o", str(tmp_path / "m.onnx")], capsys
    )
    assert_one_line_error(code, err, "--max-shapes only applies to the TensorRT backend")
    # another H x W is for ONNX Runtime too: the checkpoint is exported with dynamic H and W
    argv = ["--weights", str(ckpt), "--min-shapes", "input:1x1x16x16", "--max-shapes", "input:8x1x64x64"]
    code, stdout, err = run([*argv, "-o", str(tmp_path / "dyn.onnx")], capsys)
    assert code == 0, err
    assert "dynamic H and W (min 16x16, opt 64x64, max 64x64)" in " ".join(stdout.split())

    from resnet_deploy.backends.tensorrt import compat

    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    argv = ["--weights", str(ckpt), "--min-shapes", "input:2x1x28x28", "--opt-shapes", "input:4x1x28x28"]
    code, _, err = run([*argv, "--max-shapes", "'input':8x1x28x28", "-o", str(out)], capsys)
    assert code == 0, err
    sidecar = json.loads((tmp_path / "m.engine.json").read_text())["input"]
    assert (sidecar["min_shape"], sidecar["opt_shape"], sidecar["max_shape"]) == (
        [2, 1, 28, 28],
        [4, 1, 28, 28],
        [8, 1, 28, 28],
    )


def test_backend_openvino_writes_ir_and_refuses_engine_names(
    ckpt: Path, calib_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    code, _, err = run(["--weights", str(ckpt), "--backend", "openvino", "-o", str(tmp_path / "m.engine")], capsys)
    assert_one_line_error(code, err, "the OpenVINO backend writes .onnx")
    code, _, err = run(
        ["--weights", str(ckpt), "--backend", "openvino", "--workspace", "64", "-o", str(tmp_path / "m.onnx")], capsys
    )
    assert_one_line_error(code, err, "only applies to the TensorRT backend")
    assert list(tmp_path.iterdir()) == []
    xml = tmp_path / "m.xml"
    args = ["--weights", str(ckpt), "--backend", "openvino", "--precision", "int8", "--calib-data", str(calib_npz)]
    code, out, err = run([*args, "-o", str(xml)], capsys)
    assert code == 0, err
    assert "OpenVINO IR" in out and sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]
    assert "Q/DQ placement: openvino" in out
    size = (xml.stat().st_size + (tmp_path / "m.bin").stat().st_size) / 1e6
    assert f"m.xml ({size:.2f} MB, int8, openvino)" in out  # the IR's size is the .xml and its .bin


def test_json_keeps_numbers_as_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16: ``build --json`` gives the model's numbers as JSON numbers and lists, not as strings."""
    code, out, _ = run(
        ["--precision", "int8", "--calib-samples", "32", "-o", str(tmp_path / "m.onnx"), "--json"], capsys
    )
    assert code == 0
    d = json.loads(out)
    model = d["model"]
    assert model["num_classes"] == 10 and model["in_channels"] == 1 and model["input_size"] == 28
    assert model["mean"] == [0.286] and isinstance(model["top1"], float) and len(model["labels"]) == 10

    def strings(o: object) -> list[str]:
        if isinstance(o, dict):
            return [s for v in o.values() for s in strings(v)]
        if isinstance(o, list):
            return [s for v in o for s in strings(v)]
        return [o] if isinstance(o, str) else []

    for s in strings(d):  # no number anywhere is written as a string
        with pytest.raises(ValueError):
            float(s.strip("[]").split(",")[0])
    assert isinstance(d["int8"]["samples"], int) and isinstance(d["output_bytes"], int)
