"""Files in and out: outputs never replace anything but a regular file, inputs must be regular files, no output is
an input or another output, and untrusted JSON is bounded. Real FIFOs, device nodes, symlinks and hard links."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from resnet_deploy._io import (
    MAX_JSON_DEPTH,
    atomic_path,
    atomic_write_bytes,
    check_input_file,
    check_no_collisions,
    check_writable,
    parse_json,
    read_json,
)
from resnet_deploy.errors import UserError


def _device(path: Path) -> Path | None:
    """A character device node like /dev/null at ``path`` (root only), or None."""
    if os.geteuid() != 0:
        return None
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


def _special_outputs(tmp_path: Path) -> list[tuple[Path, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    found = [(fifo, "FIFO"), (tmp_path, "directory")]
    device = _device(tmp_path / "null")
    if device is not None:
        link = tmp_path / "link_to_null"
        link.symlink_to(device.name)
        found += [(device, "character device"), (link, "character device")]
    return found


def _identity(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_ino, st.st_rdev


def test_special_files_are_never_replaced(tmp_path: Path) -> None:
    # `-o /dev/null` as root used to turn the device into a regular file: os.replace renames over anything.
    for path, kind in _special_outputs(tmp_path):
        before = _identity(path)
        with pytest.raises(UserError, match=f"cannot write {path}.*{kind}"):
            check_writable(path)
        with pytest.raises(UserError, match=kind):
            atomic_write_bytes(path, b"logits")
        assert _identity(path) == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_special_file_that_appears_during_the_write_is_left_alone(tmp_path: Path) -> None:
    dest = tmp_path / "out.onnx"
    with pytest.raises(UserError, match="now a FIFO"):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"model")
            os.mkfifo(dest)  # e.g. made by someone else while a long build ran
    assert stat.S_ISFIFO(os.lstat(dest).st_mode) and not list(tmp_path.glob(".*.tmp"))


def test_a_symlink_is_written_through_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target.name)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"
    atomic_write_bytes(tmp_path / "plain.json", b"x")  # absent and regular files are written as before
    atomic_write_bytes(tmp_path / "plain.json", b"y")
    assert (tmp_path / "plain.json").read_bytes() == b"y"


def test_inputs_must_be_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(UserError, match="input .*fifo is a FIFO"):
        check_input_file(fifo)
    with pytest.raises(UserError, match="input /dev/null is a character device, not a regular file"):
        check_input_file("/dev/null")  # it exists: "not found" would be a lie
    with pytest.raises(UserError, match="is a directory"):
        check_input_file(tmp_path)
    with pytest.raises(UserError, match="model .*missing.onnx not found"):
        check_input_file(tmp_path / "missing.onnx", "model")
    (tmp_path / "x.npy").write_bytes(b"x")
    assert check_input_file(tmp_path / "x.npy") == tmp_path / "x.npy"


def test_collisions_through_symlinks_hard_links_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    (tmp_path / "link.onnx").symlink_to("m.onnx")
    os.link(model, tmp_path / "hard.onnx")
    monkeypatch.chdir(tmp_path)
    for out in ("m.onnx", tmp_path / "link.onnx", "hard.onnx", "./sub/../m.onnx"):
        with pytest.raises(UserError, match=r"-o .* is the same file as the input --onnx .*m.onnx"):
            check_no_collisions({"-o": out}, {"--onnx": model})
    with pytest.raises(UserError, match="--json r.json and --markdown r.json name the same file"):
        check_no_collisions({"--json": "r.json", "--markdown": "r.json", "--plot": None})
    # outputs that do not exist yet are compared too; inputs may be the same file as each other
    with pytest.raises(UserError, match="the same file"):
        check_no_collisions([("-o", "new.engine"), ("--emit-onnx", tmp_path / "new.engine")])
    check_no_collisions({"-o": "out.onnx"}, [("--calib-data", "d.npz"), ("--eval-data", "d.npz")])


def test_untrusted_json_is_bounded() -> None:
    assert parse_json('{"a": [1, 2.5, "x", null]}', "doc") == {"a": [1, 2.5, "x", None]}
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(nested, "doc") == parse_json(nested, "doc")
    cases = [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),  # RecursionError before
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        ("1" * 5000, "integer of 5000 digits"),  # ValueError: "Exceeds the limit (4300 digits)" before
        ('{"n": ' + "9" * 100 + "}", "integer of 100 digits"),
        ('{"x": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ("[1e999]", "out of range"),
        (b"\xff\xfe", "not UTF-8"),
        ("{", "is not valid JSON"),
    ]
    for text, message in cases:
        with pytest.raises(UserError, match=f"^cache c.json.*{message}"):
            parse_json(text, "cache c.json")


def test_read_json_refuses_special_and_oversized_files(tmp_path: Path) -> None:
    fifo = tmp_path / "cache.json"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="calibration cache .*cache.json is a FIFO"):
        read_json(fifo, "calibration cache")
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(UserError, match="too large to be one"):
        read_json(big, "calibration cache", max_bytes=100)
    assert len(read_json(big, "calibration cache")) == 1001
