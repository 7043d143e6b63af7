"""Every hostile input of issue #14, as real files the tests make, run through the real command line.

The promise: bad input gets one clear line on stderr, exit 2, no traceback, nothing written or destroyed.
:func:`make_corpus` writes the inputs into one folder; :func:`cli` runs ``python -m resnet_deploy`` in a subprocess
there, as a user would, and :func:`refused` checks the promise: exit 2, exactly one line on stderr (no traceback,
no colour codes, no Python warnings), nothing on stdout, and every file in the folder untouched (compared by inode,
size, time and content; FIFOs and devices by ``lstat`` only, never opened). Each test names its item of the issue.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

SECRET = np.array([1234.5, 6789.25, 42.125, 7.0], np.float32)  # would show up as logits if the file were read
SECRET_TEXT = ("1234.5", "6789.25", "42.125")


def cli(folder: Path, *args: object, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    """Run ``resnet-deploy ARGS`` in ``folder`` as a user would, in a new process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "resnet_deploy", *map(str, args)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run(folder: Path, *args: object, capfd: Any = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``resnet-deploy ARGS`` in ``folder``: in a subprocess, or, given pytest's
    ``capfd`` (which captures the file descriptors, so C libraries' output too), in this process through
    :func:`resnet_deploy.cli.main`, which saves the interpreter's start-up for the long tables of cases."""
    if capfd is None:
        proc = cli(folder, *args, env=env)
        return proc.returncode, proc.stdout, proc.stderr
    from resnet_deploy.cli import main

    assert env is None, "environment variables are read at import: run those cases in a subprocess"
    capfd.readouterr()
    with contextlib.chdir(folder):
        code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, tuple[object, ...]]:
    """What every entry of ``folder`` is: type, inode, size, mtime, device number, and the content's hash for
    regular files; special files are never opened."""
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted(folder.rglob("*")):
        st = os.lstat(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        out[str(path.relative_to(folder))] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns,
                                              st.st_rdev, digest, link)  # fmt: skip
    return out


def refused(folder: Path, *args: object, match: str, capfd: Any = None, env: dict[str, str] | None = None) -> str:
    """Run the CLI (see :func:`run`) expecting the promise of a refusal; returns the one stderr line."""
    before = snapshot(folder)
    code, out, err = run(folder, *args, capfd=capfd, env=env)
    lines = err.splitlines()
    what = f"resnet-deploy {' '.join(map(str, args))}"
    assert code == 2, f"{what}: exit {code}\n{err[-3000:]}"
    assert len(lines) == 1, f"{what}: expected one line on stderr, got:\n{err[-3000:]}"
    assert lines[0].startswith(f"resnet-deploy {args[0]}: error: "), lines[0]
    assert re.search(match, lines[0]), f"{match!r} not in {lines[0]!r}"
    assert "\x1b" not in err and "Traceback" not in err and "Warning" not in err
    assert out == "", out[-2000:]
    assert snapshot(folder) == before, f"{what} changed files in {folder}"
    return lines[0]


# ------------------------------------------------------------------------------------------------------ models


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any] | None = None) -> Any:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _io(name: str, shape: list[Any]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def tiny_cnn(seed: int = 0) -> Any:
    """Two 3x3 convs, global pooling, a classifier: N x 1 x 8 x 8 -> N x 10 (small enough to build in seconds)."""
    rng = np.random.default_rng(seed)

    def w(name: str, *shape: int) -> Any:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    inits = [w("w1", 4, 1, 3, 3), w("b1", 4), w("w2", 8, 4, 3, 3), w("b2", 8), w("fc_w", 10, 8), w("fc_b", 10)]
    return _model(nodes, [_io("input", ["N", 1, 8, 8])], [_io("logits", ["N", 10])], inits)


def _spread_predictions(model: Any, x: np.ndarray) -> Any:
    """Centre and amplify the classifier so the argmax depends on the input (random weights predict one class)."""
    import onnxruntime as ort

    logits = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    inits = {t.name: t for t in model.graph.initializer}
    fc_w, fc_b = (numpy_helper.to_array(inits[n]) for n in ("fc_w", "fc_b"))
    inits["fc_w"].CopyFrom(numpy_helper.from_array(fc_w * 100, "fc_w"))
    inits["fc_b"].CopyFrom(numpy_helper.from_array((fc_b - logits[0].mean(axis=0)) * 100, "fc_b"))
    return model


def _external(name: str, dims: list[int], location: str = "secret.bin") -> Any:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims, data_location=TensorProto.EXTERNAL)
    entry = t.external_data.add()
    entry.key, entry.value = "location", location
    return t


def secret_if_model() -> Any:
    """Logits = an initializer inside an If's then-branch whose bytes live in ``secret.bin`` (issue #14, item 1)."""
    then = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "then", [], [_io("t", [1, 4])],
                             initializer=[_external("s", [1, 4])])  # fmt: skip
    zeros = numpy_helper.from_array(np.zeros((1, 4), np.float32))
    other = helper.make_graph([helper.make_node("Constant", [], ["e"], value=zeros)], "else", [], [_io("e", [1, 4])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["logits"], then_branch=then, else_branch=other)
    return _model([node], [_io("input", [1, 1, 2, 2])], [_io("logits", [1, 4])], [cond])


def secret_constant_model() -> Any:
    node = helper.make_node("Constant", [], ["logits"], value=_external("v", [1, 4]))
    return _model([node], [_io("input", [1, 1, 2, 2])], [_io("logits", [1, 4])])


def secret_sparse_model() -> Any:
    sparse = helper.make_sparse_tensor(_external("s", [4]), numpy_helper.from_array(np.arange(4, dtype=np.int64)), [4])
    sparse.values.name = "s"
    graph = helper.make_graph([helper.make_node("Reshape", ["s", "shape"], ["logits"])], "g",
                              [_io("input", [1, 1, 2, 2])], [_io("logits", [1, 4])],
                              initializer=[numpy_helper.from_array(np.array([1, 4], np.int64), "shape")],
                              sparse_initializer=[sparse])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def conv_bn_model(var: float, scale: float = 1.0) -> Any:
    """Conv -> BatchNormalization (variance ``var``, scale ``scale`` in every channel) -> pooling -> classifier."""
    rng = np.random.default_rng(3)
    arr = {"w": rng.standard_normal((4, 1, 3, 3)), "scale": np.full(4, scale), "beta": np.zeros(4),
           "mean": np.zeros(4), "var": np.full(4, var), "fc_w": rng.standard_normal((10, 4)),
           "fc_b": np.zeros(10)}  # fmt: skip
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in arr.items()]
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["bn"], name="bn"),
        helper.make_node("GlobalAveragePool", ["bn"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    return _model(nodes, [_io("input", ["N", 1, 8, 8])], [_io("logits", ["N", 10])], inits)


def cycle_model() -> Any:
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2"),
             helper.make_node("Identity", ["a"], ["logits"], name="n3")]  # fmt: skip
    return _model(nodes, [_io("input", ["N", 1, 8, 8])], [_io("logits", ["N", 10])])


def reshape_model() -> Any:
    """Runs for 2x2 images, fails inside ONNX Runtime for 3x3 ones (9 values do not reshape to (-1, 4))."""
    shape = numpy_helper.from_array(np.array([-1, 4], np.int64), "shape")
    node = helper.make_node("Reshape", ["input", "shape"], ["logits"])
    return _model([node], [_io("input", ["N", 1, "H", "W"])], [_io("logits", ["N", 4])], [shape])


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"echo pwned > {self.marker}",))


def _evil_checkpoint(path: Path, marker: Path) -> None:
    import torch

    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is live: plain unpickling runs it
    assert marker.exists()
    marker.unlink()
    torch.save({"conv1.weight": _Payload(marker)}, path)


def _idx(path: Path, magic: bytes, dims: list[int], data: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(magic + struct.pack(">" + "I" * len(dims), *dims) + data)


def _palette_png(path: Path) -> None:
    """A palette PNG with byte transparency: Pillow's convert() warns (UserWarning) when it reads one."""
    from PIL import Image

    img = Image.new("P", (28, 28), 3)
    img.putpalette([i % 256 for i in range(768)])
    img.save(path, transparency=bytes([0, 255, 128] + [255] * 253))


def _checkpoints(d: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from resnet_deploy.info import ModelInfo
    from resnet_deploy.models import build_model
    from resnet_deploy.models.weights import randomize_batchnorm, read_checkpoint, save_checkpoint

    torch.manual_seed(0)
    info = ModelInfo(arch="resnet20", num_classes=10, in_channels=1, input_size=28, mean=[0.286], std=[0.353],
                     dataset="fashion-mnist", labels=[f"c{i}" for i in range(10)], name="toy")  # fmt: skip
    save_checkpoint(d / "ckpt.safetensors", randomize_batchnorm(build_model("resnet20", 10, 1), 0), info)
    state, meta = read_checkpoint(d / "ckpt.safetensors")

    def variant(name: str, edit_state: Any = None, **edit_meta: str) -> None:
        st = {k: v.clone() for k, v in state.items()}
        if edit_state is not None:
            edit_state(st)
        save_file(st, str(d / name), metadata={**meta, **edit_meta})

    def nan(st: dict[str, Any]) -> None:
        st["conv1.weight"][0, 0, 0, 0] = float("nan")

    def negvar(st: dict[str, Any]) -> None:
        st["bn1.running_var"] *= -1

    def int8(st: dict[str, Any]) -> None:
        for k, v in st.items():
            if v.is_floating_point():
                st[k] = v.to(torch.int8)

    variant("nan.safetensors", nan)
    variant("negvar.safetensors", negvar)
    variant("int8.safetensors", int8)
    variant("deep.safetensors", mean="[" * 100_000 + "]" * 100_000)
    variant("bigint.safetensors", num_classes="1" * 5000)
    variant("classes.safetensors", num_classes=str(10**12))
    variant("size.safetensors", input_size="99999999")
    variant("negsize.safetensors", input_size="-5")


def make_corpus(d: Path) -> Path:
    """Write every hostile input into ``d`` (and the good files they are variants of); returns ``d``."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    tiny = _spread_predictions(tiny_cnn(), x)
    onnx.save(tiny, d / "tiny.onnx")
    import onnxruntime as ort

    y = ort.InferenceSession(str(d / "tiny.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.savez(d / "d.npz", x=x, y=y.argmax(1).astype(np.int64))
    np.save(d / "x.npy", x[:2])
    np.save(d / "x22.npy", np.zeros((1, 1, 2, 2), np.float32))
    np.save(d / "x33.npy", np.zeros((1, 1, 3, 3), np.float32))
    np.save(d / "huge64.npy", np.full((2, 1, 8, 8), 1e300))  # finite float64, infinite as float32
    np.save(d / "huge28.npy", np.full((1, 1, 28, 28), 1e300))
    np.savez(d / "d28.npz", x=rng.random((16, 1, 28, 28), dtype=np.float32), y=np.arange(16) % 10)

    SECRET.tofile(d / "secret.bin")
    onnx.save(secret_if_model(), d / "secret_if.onnx")
    onnx.save(secret_constant_model(), d / "secret_const.onnx")
    onnx.save(secret_sparse_model(), d / "secret_sparse.onnx")

    nan = onnx.load(d / "tiny.onnx")
    nan.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full((4, 1, 3, 3), np.nan, np.float32), "w1"))
    onnx.save(nan, d / "nan.onnx")
    onnx.save(conv_bn_model(-1.0), d / "negvar.onnx")
    onnx.save(conv_bn_model(1.0, scale=3e38), d / "overflow.onnx")  # folded weights beyond float32: infinite
    onnx.save(cycle_model(), d / "cycle.onnx")
    onnx.save(reshape_model(), d / "reshape.onnx")
    mismatch = onnx.load(d / "tiny.onnx")
    mismatch.graph.initializer[1].raw_data = mismatch.graph.initializer[1].raw_data[:-4]
    onnx.save(mismatch, d / "raw_mismatch.onnx")
    huge = onnx.load(d / "tiny.onnx")
    del huge.graph.initializer[1].dims[:]
    huge.graph.initializer[1].dims.extend([100_000, 100_000, 100])  # 4 TB declared over 16 bytes
    onnx.save(huge, d / "huge_dims.onnx")
    deep = onnx.load(d / "tiny.onnx")
    helper.set_model_props(deep, {"resnet_deploy.arch": "resnet20", "resnet_deploy.mean": "[" * 100_000 + "]" * 100_000,
                                  "resnet_deploy.std": "[1]"})  # fmt: skip
    onnx.save(deep, d / "deepmeta.onnx")

    _checkpoints(d)
    _evil_checkpoint(d / "evil.pth", d / "pwned")
    _palette_png(d / "palette.png")
    (d / "idx").mkdir()
    _idx(d / "idx" / "t10k-images-idx3-ubyte.gz", bytes([0, 0, 8, 255]), [2] * 255, b"\0" * 64)
    _idx(d / "idx" / "t10k-labels-idx1-ubyte.gz", bytes([0, 0, 8, 1]), [2], b"\0\1")

    os.mkfifo(d / "fifo")
    if os.geteuid() == 0:  # a device node like /dev/null, ours to lose
        os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        (d / "link_to_null").symlink_to("null")
    (d / "link_to_tiny.onnx").symlink_to("tiny.onnx")
    os.link(d / "x.npy", d / "hard_x.npy")
    return d


def calibration_caches(d: Path) -> None:
    """``good.json`` (a real cache of tiny.onnx, made by the CLI) and variants of it with hostile ranges/fields."""
    from resnet_deploy.cli import main

    with contextlib.chdir(d):
        code = main(["build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-data", "d.npz", "--calib-cache",
                     "good.json", "-o", "q.onnx"])  # fmt: skip
    assert code == 0
    (d / "q.onnx").unlink()
    doc = json.loads((d / "good.json").read_text())

    def variant(name: str, amax: float | None = None, samples: object = None) -> None:
        edited = json.loads(json.dumps(doc))
        if amax is not None:
            edited["amax"] = {k: amax for k in edited["amax"]}
        if samples is not None:
            edited["data"]["samples"] = samples
        (d / name).write_text(json.dumps(edited))

    variant("cache_1e300.json", 1e300)
    variant("cache_1e-300.json", 1e-300)
    variant("cache_zero.json", 0.0)
    variant("crushed.json", 1e-4)
    variant("cache_samples.json", samples="512")
    text = (d / "good.json").read_text()
    for name, value in (("cache_deep.json", "[" * 100_000 + "]" * 100_000), ("cache_bigint.json", "1" * 5000)):
        (d / name).write_text(text.replace('"params": {', '"params": {"x": ' + value + ", ", 1))


# ------------------------------------------------------------------------------------------------------- tests
# Each item of the issue has cases run in a subprocess (the promise is about the process) and, for the long tables,
# cases run in this process through cli.main with the file descriptors captured (same checks, no interpreter start).

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def made_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = make_corpus(tmp_path_factory.mktemp("hostile"))
    calibration_caches(d)
    return d


def clone(src: Path, dest: Path) -> Path:
    """A copy of the corpus that a command which breaks its promise may destroy without spoiling the next test:
    small files copied, checkpoints hard-linked (every writer replaces files by rename, so the originals stay; ONNX
    Runtime refuses hard-linked external data, so secret.bin must be a copy), hard links kept as hard links,
    symlinks, FIFOs and device nodes made anew, never opened."""
    dest.mkdir()
    seen: dict[int, Path] = {}
    for path in sorted(src.rglob("*")):
        target, st = dest / path.relative_to(src), os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            target.symlink_to(os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            target.mkdir()
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(target)
        elif stat.S_ISCHR(st.st_mode):
            os.mknod(target, 0o666 | stat.S_IFCHR, st.st_rdev)
        elif st.st_ino in seen:
            os.link(seen[st.st_ino], target)
        elif st.st_size < 1024**2:
            shutil.copy2(path, target)
        else:
            os.link(path, target)
        seen.setdefault(st.st_ino, target)
    return dest


@pytest.fixture
def corpus(made_once: Path, tmp_path: Path) -> Path:
    """The hostile inputs, fresh for each test."""
    return clone(made_once, tmp_path / "corpus")


def test_the_secret_model_is_a_real_attack(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime itself reads secret.bin from the current folder and returns its bytes as logits: what the
    refusals below stop."""
    import onnxruntime as ort

    monkeypatch.chdir(corpus)
    session = ort.InferenceSession((corpus / "secret_if.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"input": np.zeros((1, 1, 2, 2), np.float32)})[0], [SECRET])


# 1. external data anywhere: refused before onnx, onnxsim, ONNX Runtime or TensorRT open the named file
@pytest.mark.parametrize("model", ["secret_if.onnx", "secret_const.onnx", "secret_sparse.onnx"])
def test_external_data_is_refused_and_the_secret_never_shows(corpus: Path, model: str) -> None:
    for command in (["infer", model, "--input", "x22.npy", "--json"], ["build", "--onnx", model, "-o", "out.onnx"]):
        line = refused(corpus, *command, match="keeps weights in external files")
        assert not any(s in line for s in SECRET_TEXT)


@pytest.mark.parametrize(
    "command",
    [
        ["build", "--onnx", "secret_if.onnx", "--backend", "tensorrt", "-o", "out.engine"],
        ["build", "--onnx", "secret_if.onnx", "--precision", "int8", "--calib-data", "d.npz", "-o", "out.onnx"],
        ["eval", "secret_if.onnx", "--data", "d.npz"],
        ["inspect", "secret_if.onnx"],
        ["bench", "secret_if.onnx", "--duration", "0.01"],
    ],
)
def test_external_data_is_refused_by_every_command(corpus: Path, command: list[str], capfd: Any) -> None:
    refused(corpus, *command, match="keeps weights in external files", capfd=capfd)


# 2. outputs that are not regular files are refused and stay what they were
SPECIAL = ["fifo", *(["null", "link_to_null"] if ROOT else [])]


@pytest.mark.parametrize("target", SPECIAL)
def test_special_files_are_never_replaced(corpus: Path, target: str) -> None:
    refused(corpus, "infer", "tiny.onnx", "--input", "x.npy", "--save-logits", target,
            match=f"cannot write {target}.*(FIFO|character device).*, not a regular file")  # fmt: skip


@pytest.mark.parametrize("target", SPECIAL)
@pytest.mark.parametrize(
    "command",
    [
        ["eval", "tiny.onnx", "--data", "d.npz", "-o", "{t}"],
        ["build", "--onnx", "tiny.onnx", "-o", "{t}"],
        ["build", "--onnx", "tiny.onnx", "--backend", "tensorrt", "-o", "{t}"],
        ["export", "--weights", "ckpt.safetensors", "-o", "{t}"],
        ["bench", "tiny.onnx", "--duration", "0.01", "--json", "{t}"],
    ],
)
def test_no_command_replaces_a_special_file(corpus: Path, target: str, command: list[str], capfd: Any) -> None:
    argv = [a.format(t=target) for a in command]
    refused(corpus, *argv, match=r"cannot write .*(FIFO|character device)", capfd=capfd)


def test_a_directory_is_refused_as_output(corpus: Path, capfd: Any) -> None:
    refused(
        corpus, "infer", "tiny.onnx", "--input", "x.npy", "--save-logits", "idx", match="is a directory", capfd=capfd
    )


# 3. collisions among inputs and outputs, through symlinks and hard links, before any work
def test_an_output_through_a_symlink_to_the_input_is_refused(corpus: Path) -> None:
    refused(corpus, "build", "--onnx", "tiny.onnx", "-o", "link_to_tiny.onnx",
            match="-o link_to_tiny.onnx is the same file as the input --onnx tiny.onnx")  # fmt: skip


@pytest.mark.parametrize(
    "command,match",
    [
        (["eval", "tiny.onnx", "--data", "d.npz", "-o", "tiny.onnx"], "-o tiny.onnx is the same file as the input"),
        (["eval", "tiny.onnx", "--data", "d.npz", "-o", "d.npz"], "the input --data d.npz"),
        (["eval", "tiny.onnx", "--data", "d.npz", "--reference", "nan.onnx", "-o", "nan.onnx"], "input --reference"),
        (["infer", "tiny.onnx", "--input", "x.npy", "--save-logits", "tiny.onnx"], "the input MODEL tiny.onnx"),
        (["infer", "tiny.onnx", "--input", "x.npy", "--save-logits", "link_to_tiny.onnx"], "the input MODEL"),
        (["infer", "tiny.onnx", "--input", "x.npy", "--save-logits", "x.npy"], "the input --input x.npy"),
        (["infer", "tiny.onnx", "--input", "x.npy", "--save-logits", "hard_x.npy"], "the input --input x.npy"),
        (["infer", "ckpt.safetensors", "palette.png", "--save-logits", "palette.png"], "the input IMAGE"),
        (["build", "--onnx", "tiny.onnx", "-o", "tiny.onnx"], "-o tiny.onnx is the same file as the input --onnx"),
        (["build", "--onnx", "tiny.onnx", "-o", "m.onnx", "--emit-onnx", "tiny.onnx"], "--emit-onnx tiny.onnx"),
        (["build", "--onnx", "tiny.onnx", "--backend", "tensorrt", "-o", "m.engine", "--emit-onnx", "m.engine.json"],
         "the engine's sidecar m.engine.json and --emit-onnx m.engine.json name the same file"),
        (["build", "--onnx", "tiny.onnx", "--backend", "tensorrt", "-o", "m.engine", "--emit-onnx", "m.engine"],
         "-o m.engine and --emit-onnx m.engine name the same file"),
        (["build", "--onnx", "tiny.onnx", "--backend", "tensorrt", "-o", "m.engine", "--timing-cache", "m.engine.json"],
         "--timing-cache m.engine.json"),
        (["build", "--onnx", "tiny.onnx", "--backend", "tensorrt", "-o", "m.engine", "--timing-cache", "tiny.onnx"],
         "--timing-cache tiny.onnx is the same file as the input --onnx"),
        (["build", "--onnx", "tiny.onnx", "--backend", "tensorrt", "--precision", "int8", "--calib-data", "d.npz",
          "-o", "m.engine", "--calib-cache", "m.engine.json"], "--calib-cache m.engine.json"),
        (["build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-data", "d.npz", "-o", "m.onnx",
          "--calib-cache", "m.onnx"], "-o m.onnx and --calib-cache m.onnx name the same file"),
        (["build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-data", "d.npz", "-o", "m.onnx",
          "--calib-cache", "d.npz"], "--calib-cache d.npz is the same file as the input --calib-data"),
        (["export", "--weights", "ckpt.safetensors", "-o", "ckpt.safetensors"], "the input --weights"),
        (["bench", "tiny.onnx", "--json", "tiny.onnx"], "--json tiny.onnx is the same file as the input MODEL"),
        (["bench", "tiny.onnx", "--json", "r.json", "--markdown", "r.json"], "--json r.json and --markdown r.json"),
    ],
)  # fmt: skip
def test_collisions_are_refused_before_any_work(corpus: Path, command: list[str], match: str, capfd: Any) -> None:
    refused(corpus, *command, match=match, capfd=capfd)


# 7. NaN/Inf weights, negative variances, int8 tensors, folded overflow, non-finite logits
def test_a_model_that_answers_nan_is_refused_not_printed(corpus: Path) -> None:
    refused(corpus, "infer", "nan.onnx", "--input", "x.npy", "--json", match="NaN or infinite logits for 2 of 2")


@pytest.mark.parametrize(
    "command,match",
    [
        (["export", "--weights", "nan.safetensors", "-o", "o.onnx"], "'conv1.weight' holds NaN or infinite"),
        (["build", "--weights", "nan.safetensors", "-o", "o.onnx"], "'conv1.weight' holds NaN or infinite"),
        (["export", "--weights", "negvar.safetensors", "-o", "o.onnx"], "'bn1.running_var' is negative"),
        (["export", "--weights", "int8.safetensors", "-o", "o.onnx"], "'conv1.weight' is int8, not floating point"),
        (["eval", "int8.safetensors", "--data", "d28.npz"], "is int8, not floating"),
        (["infer", "nan.safetensors", "--input", "huge28.npy"], "holds NaN or infinite"),
        (["build", "--onnx", "nan.onnx", "-o", "o.onnx"], "weight 'w1' holds NaN or infinite values"),
        (["build", "--onnx", "negvar.onnx", "-o", "o.onnx"], "BatchNormalization 'bn' has variance \\+ epsilon -1"),
        (["build", "--onnx", "overflow.onnx", "-o", "o.onnx"], "folding BatchNormalization 'bn' .* NaN or infinite"),
        (["eval", "nan.onnx", "--data", "d.npz"], "NaN or infinite logits .* no accuracy reported"),
        (["infer", "tiny.onnx", "--input", "huge64.npy", "--json"], "beyond the range of the model's input type"),
        (["infer", "ckpt.safetensors", "--input", "huge28.npy"], "beyond the range of the model's input type"),
    ],
)  # fmt: skip
def test_non_finite_weights_and_results_are_refused(corpus: Path, command: list[str], match: str, capfd: Any) -> None:
    refused(corpus, *command, match=match, capfd=capfd)


def test_infer_json_is_valid_json(corpus: Path) -> None:
    proc = cli(corpus, "infer", "tiny.onnx", "--input", "x.npy", "--json")
    assert proc.returncode == 0 and proc.stderr == ""

    def no_nan(name: str) -> None:
        raise AssertionError(f"{name} in --json output")

    assert len(json.loads(proc.stdout, parse_constant=no_nan)["results"]) == 2


# 8. calibration-cache ranges float32 scales cannot carry
@pytest.mark.parametrize(
    "cache,match",
    [
        ("cache_1e300.json", "range 1e\\+300 of tensor .* float32 cannot carry"),
        ("cache_1e-300.json", "range 1e-300 of tensor .* float32 cannot carry"),
        ("cache_zero.json", "range of tensor .* is 0"),
    ],
)
@pytest.mark.parametrize("placement", ["onnxruntime", "tensorrt"])
def test_unrepresentable_calibration_ranges_are_refused(
    corpus: Path, cache: str, match: str, placement: str, capfd: Any
) -> None:
    refused(corpus, "build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-cache", cache,
            "--qdq-placement", placement, "-o", "q.onnx", match=f"calibration cache {cache}: .*{match}",
            capfd=capfd)  # fmt: skip


# 9. a budget that cannot be met: exit 2, nothing written (no graph with Q/DQ that claims every layer is float)
def test_an_unreachable_accuracy_budget_is_refused_and_nothing_written(corpus: Path) -> None:
    line = refused(corpus, "build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-cache", "crushed.json",
                   "--qdq-placement", "tensorrt", "--max-accuracy-drop", "0", "--eval-data", "d.npz", "-o", "q.onnx",
                   match="--max-accuracy-drop 0 cannot be met with any layer in int8")  # fmt: skip
    assert "FP32 scores 100.00 %" in line and "nothing written" in line


# 10/11. nested JSON, huge integers, wrong types, numbers out of range: one line each
def test_deeply_nested_checkpoint_metadata(corpus: Path) -> None:
    refused(corpus, "export", "--weights", "deep.safetensors", "-o", "o.onnx", match="'mean': JSON nested deeper")


@pytest.mark.parametrize(
    "command,match",
    [
        (["export", "--weights", "bigint.safetensors", "-o", "o.onnx"], "'num_classes': JSON holds an integer of 5000"),
        (["export", "--weights", "classes.safetensors", "-o", "o.onnx"], "num_classes 1000000000000 is out of range"),
        (["export", "--weights", "size.safetensors", "-o", "o.onnx"], "input_size 99999999 is out of range"),
        (["export", "--weights", "negsize.safetensors", "-o", "o.onnx"], "input_size -5 is out of range"),
        (["infer", "classes.safetensors", "--input", "huge28.npy"], "num_classes 1000000000000 is out of range"),
        (["export", "--arch", "resnet18", "--num-classes", "1000000000000", "-o", "o.onnx"], "out of range"),
        (["infer", "deepmeta.onnx", "--input", "x.npy"], "deepmeta.onnx \\(ONNX metadata\\): .* nested deeper"),
        (["build", "--onnx", "deepmeta.onnx", "-o", "o.onnx"], "nested deeper"),
        (["build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-cache", "cache_deep.json", "-o", "q.onnx"],
         "calibration cache cache_deep.json: JSON nested deeper than 8 levels"),
        (["build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-cache", "cache_bigint.json", "-o", "q.onnx"],
         "JSON holds an integer of 5000 digits"),
        (["build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-cache", "cache_samples.json", "-o", "q.onnx"],
         "data.samples must be a count of images, got '512'"),
        (["build", "--onnx", "tiny.onnx", "--precision", "int8", "--calib-cache", "fifo", "-o", "q.onnx"],
         "calibration cache fifo is a FIFO"),
    ],
)  # fmt: skip
def test_malformed_metadata_and_caches_are_one_line(corpus: Path, command: list[str], match: str, capfd: Any) -> None:
    refused(corpus, *command, match=match, capfd=capfd)


def test_inspect_reports_unreadable_metadata_in_one_line(corpus: Path) -> None:
    proc = cli(corpus, "inspect", "deepmeta.onnx")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    assert "model info  unreadable: " in proc.stdout and "nested deeper" in proc.stdout


# 12. initializers whose data disagrees with their dims
def test_inspect_of_inconsistent_initializers(corpus: Path, capfd: Any) -> None:
    refused(corpus, "inspect", "raw_mismatch.onnx",
            match="initializer 'b1' declares dims \\[4\\] \\(16 bytes of float\\) but holds 12 bytes")  # fmt: skip
    refused(corpus, "inspect", "huge_dims.onnx",
            match="'b1' declares dims \\[100000, 100000, 100\\] \\(4,000,000,000,000 bytes", capfd=capfd)  # fmt: skip


# 15. resource bounds: a batch no machine holds is refused before any allocation; infer splits its input
def test_bench_refuses_a_batch_this_machine_cannot_hold(corpus: Path) -> None:
    refused(corpus, "bench", "tiny.onnx", "--batch", "1,1000000000", "--duration", "0.01",
            match="batch 1000000000 needs about .* GB of memory .* use a smaller --batch")  # fmt: skip


def test_infer_splits_a_large_input_into_batches(corpus: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(5).random((20_000, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "many.npy", x)
    proc = cli(tmp_path, "infer", corpus / "tiny.onnx", "--input", "many.npy", "--batch-size", "3000",
               "--save-logits", "l.npy", "--top-k", "1")  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    expected = ort.InferenceSession(str(corpus / "tiny.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )[0]
    np.testing.assert_allclose(np.load(tmp_path / "l.npy"), expected, rtol=1e-5, atol=1e-5)
    assert proc.stdout.count("many.npy[") == 20_000
    refused(tmp_path, "infer", corpus / "tiny.onnx", "--input", "many.npy", "--batch-size", "0",
            match="--batch-size must be at least 1")  # fmt: skip


# 16. messages: what was blocked, no colour logs, no warnings, nothing cut off, no kilobyte lines, no lies
def test_the_malicious_pickle_says_what_was_blocked(corpus: Path) -> None:
    line = refused(corpus, "export", "--arch", "resnet20", "--weights", "evil.pth", "-o", "o.onnx",
                   match=r"asks to import and call (posix|nt)\.system while loading.*blocked")  # fmt: skip
    assert "weights_only" not in line and not (corpus / "pwned").exists()


def test_onnx_runtime_failures_are_one_uncoloured_line(corpus: Path) -> None:
    refused(corpus, "infer", "reshape.onnx", "--input", "x33.npy", match="ONNX Runtime failed to run the model: .*")


def test_library_warnings_never_reach_stderr(corpus: Path) -> None:
    proc = cli(corpus, "infer", "ckpt.safetensors", "palette.png", "--top-k", "1")  # Pillow's UserWarning
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    assert "palette.png: c" in proc.stdout


def test_the_checker_message_is_not_cut_off(corpus: Path, capfd: Any) -> None:
    match = "input 'b' of node: name: n1 OpType: Relu is not output of any previous nodes"
    refused(corpus, "build", "--onnx", "cycle.onnx", "-o", "o.onnx", match=match, capfd=capfd)


def test_an_error_about_a_huge_header_stays_a_short_line(corpus: Path) -> None:
    line = refused(corpus, "eval", "tiny.onnx", "--data", "fashion-mnist:test", match="IDX",
                   env={"RESNET_DEPLOY_FASHION_MNIST": str(corpus / "idx")})  # fmt: skip
    assert len(line) <= 450, len(line)


def test_an_input_that_exists_is_not_called_missing(corpus: Path) -> None:
    refused(corpus, "infer", "tiny.onnx", "--input", "/dev/null",
            match="input /dev/null is a character device, not a regular file")  # fmt: skip


@pytest.mark.parametrize(
    "command,match",
    [
        (["infer", "tiny.onnx", "--input", "fifo"], "input fifo is a FIFO"),
        (["infer", "ckpt.safetensors", "fifo"], "image fifo is a FIFO"),
        (["infer", "fifo", "--input", "x.npy"], "model fifo is not a file"),
        (["inspect", "/dev/null"], "/dev/null is not a file"),
    ],
)
def test_inputs_that_exist_but_are_not_files(corpus: Path, command: list[str], match: str, capfd: Any) -> None:
    assert "not found" not in refused(corpus, *command, match=match, capfd=capfd)
