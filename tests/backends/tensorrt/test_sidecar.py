"""The engine sidecar and the checks before an engine is deserialized: hashes, TensorRT flavour/version, GPU, schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.backends.tensorrt import sidecar as sc
from resnet_deploy.backends.tensorrt.compat import GpuInfo, TrtInfo
from resnet_deploy.backends.tensorrt.engine_inspector import (
    format_engine_summary,
    inspect_engine,
)
from resnet_deploy.errors import UserError
from resnet_deploy.info import from_sidecar

needs_trt = pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")
RTX = TrtInfo("tensorrt_rtx", "1.7.1.116", "tensorrt_rtx_bindings")


@needs_trt
def test_a_fresh_engine_verifies(built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any) -> None:
    path = copy_engine(built, tmp_path)
    data, meta, warnings = sc.verify_engine_file(path, compat.info(), compat.gpu())
    assert data == built[1] and meta["engine"]["file"] == "tiny.engine" and warnings == []
    assert from_sidecar(meta) is None  # a foreign graph carries no ModelInfo


@needs_trt
@pytest.mark.parametrize("offset", [0, 100, -1])
def test_a_flipped_byte_is_refused(
    built: tuple[Path, bytes, bytes], tmp_path: Path, offset: int, copy_engine: Any
) -> None:
    path = copy_engine(built, tmp_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its sidecar"):
        sc.verify_engine_file(path, compat.info(), compat.gpu())
    info = inspect_engine(path)
    assert info["integrity"] == "mismatch"
    assert "WARNING" in format_engine_summary(info)


@needs_trt
def test_truncated_and_missing_files(built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any) -> None:
    path = copy_engine(built, tmp_path)
    path.write_bytes(built[1][:1000])
    with pytest.raises(UserError, match="does not match its sidecar"):
        sc.verify_engine_file(path, compat.info(), None)
    path.write_bytes(b"")
    with pytest.raises(UserError, match="not a TensorRT engine"):
        sc.verify_engine_file(path, compat.info(), None)
    path.write_bytes(built[1])
    sc.sidecar_path(path).unlink()
    with pytest.raises(UserError, match="has no sidecar"):
        sc.verify_engine_file(path, compat.info(), None)
    with pytest.raises(UserError, match="not found"):
        sc.verify_engine_file(tmp_path / "nope.engine", compat.info(), None)


@needs_trt
def test_sidecar_from_another_flavour_or_version_is_refused(
    built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any
) -> None:
    running = compat.info()
    other = "tensorrt" if running.flavour == "tensorrt_rtx" else "tensorrt_rtx"
    path = copy_engine(built, tmp_path, lambda m: m["tensorrt"].update(flavour=other))
    with pytest.raises(UserError, match="rebuild the engine here"):
        sc.verify_engine_file(path, running, None)
    path = copy_engine(built, tmp_path, lambda m: m["tensorrt"].update(version="0.9.0.1"))
    with pytest.raises(UserError, match=r"built with .* 0\.9\.0\.1"):
        sc.verify_engine_file(path, running, None)


def test_version_rules() -> None:
    def meta(version: str, compatible: bool) -> dict[str, Any]:
        return {
            "tensorrt": {"flavour": "tensorrt", "version": version},
            "build_options": {"version_compatible": compatible},
        }

    running = TrtInfo("tensorrt", "10.13.0.35", "tensorrt")
    sc.check_tensorrt(meta("10.13.0.35", False), running, "e")
    sc.check_tensorrt(meta("10.3.0.30", True), running, "e")  # version-compatible: later 10.x runs it
    with pytest.raises(UserError, match="--version-compatible"):
        sc.check_tensorrt(meta("10.3.0.30", False), running, "e")
    with pytest.raises(UserError, match="same or a later"):
        sc.check_tensorrt(meta("10.14.1.0", True), running, "e")  # never backwards
    with pytest.raises(UserError, match="same or a later"):
        sc.check_tensorrt(meta("9.3.0.1", True), running, "e")  # never across majors
    with pytest.raises(UserError, match="TensorRT-RTX"):
        sc.check_tensorrt(meta("10.13.0.35", False), RTX, "e")


def test_gpu_rules() -> None:
    def meta(cc: str, level: str = "none") -> dict[str, Any]:
        return {"gpu": {"name": "NVIDIA A100", "compute_capability": cc}, "build_options": {"hardware_compat": level}}

    a100 = GpuInfo("NVIDIA A100", (8, 0), None, "torch")
    h100 = GpuInfo("NVIDIA H100", (9, 0), None, "torch")
    a30 = GpuInfo("NVIDIA A30", (8, 0), None, "torch")
    assert sc.check_gpu(meta("8.0"), a100, "e") == []
    assert "may not be the fastest" in sc.check_gpu(meta("8.0"), a30, "e")[0]
    with pytest.raises(UserError, match=r"compute capability 8\.0.*H100 \(9\.0\).*--hardware-compat"):
        sc.check_gpu(meta("8.0"), h100, "e")
    assert "Ampere+" in sc.check_gpu(meta("8.0", "ampere_plus"), h100, "e")[0]
    with pytest.raises(UserError, match="rebuild the engine on this GPU"):
        sc.check_gpu(meta("8.0", "same_compute_capability"), h100, "e")
    assert sc.check_gpu({"gpu": None, "build_options": {}}, h100, "e") == []  # built without a GPU (RTX)


@needs_trt
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("engine"), r"\$\.engine is missing"),
        (lambda m: m["engine"].update(sha256="XYZ"), r"\$\.engine\.sha256"),
        (lambda m: m.update(precision="int4"), r"\$\.precision must be one of"),
        (lambda m: m["input"].update(max_shape="big"), r"\$\.input\.max_shape must be a list"),
        (lambda m: m["input"].update(max_shape=[True, 3, 8, 8]), r"max_shape\[0\]"),
        (lambda m: m.update(format="other/1"), r"\$\.format"),
        (lambda m: m.update(surprise=1), "unknown key 'surprise'"),
        (lambda m: m["build_options"].update(nested={"a": 1}), "must be a scalar"),
        (lambda m: m["preprocessing"].update(mean=[float("nan")]), "not a JSON number"),  # NaN is no JSON
        (lambda m: m["model"].update(top1=10**4000), "out of range"),  # OverflowError in math.isfinite before
        (lambda m: m["layers"]["items"][0].pop("type"), r"items\[0\]\.type is missing"),
    ],
)
def test_invalid_sidecars_are_refused(
    built: tuple[Path, bytes, bytes], tmp_path: Path, edit: Any, message: str, copy_engine: Any
) -> None:
    path = copy_engine(built, tmp_path, edit)
    with pytest.raises(UserError, match=message):
        sc.verify_engine_file(path, compat.info(), None)


@needs_trt
def test_sidecar_that_is_not_json(built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any) -> None:
    path = copy_engine(built, tmp_path)
    side = sc.sidecar_path(path)
    for junk in (b"{not json", b"\xff\xfe\x00", b"[1, 2, 3]", b"null"):
        side.write_bytes(junk)
        with pytest.raises(UserError, match="sidecar"):
            sc.read(side)


@needs_trt
@pytest.mark.parametrize(
    ("junk", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # RecursionError before (issue #14 item 10)
        (b'{"format": ' + b"9" * 5000 + b"}", "not valid JSON"),  # int beyond the digit limit: ValueError before
        (b'{"a": NaN}', "not a JSON number"),
        (b'{"a": Infinity}', "not a JSON number"),
    ],
)
def test_hostile_sidecar_json_is_one_line(
    built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any, junk: bytes, message: str
) -> None:
    path = copy_engine(built, tmp_path)
    sc.sidecar_path(path).write_bytes(junk)
    with pytest.raises(UserError, match=message) as err:
        sc.verify_engine_file(path, compat.info(), None)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


@needs_trt
def test_huge_integers_in_numeric_fields_are_refused_not_overflowed(
    built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any
) -> None:
    for field in ("top1",):
        path = copy_engine(built, tmp_path, lambda m, f=field: m["model"].update({f: 10**4000}))
        with pytest.raises(UserError, match=r"\$\.model\.top1 is out of range"):
            sc.verify_engine_file(path, compat.info(), None)
    path = copy_engine(built, tmp_path, lambda m: m["preprocessing"].update(mean=[10**300, 1]))
    with pytest.raises(UserError, match="out of range"):
        sc.verify_engine_file(path, compat.info(), None)


def test_foreign_engines_are_read_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "trtexec.engine"
    path.write_bytes(b"plan bytes")
    data, warnings = sc.read_foreign_engine(path)
    assert data == b"plan bytes" and len(warnings) == 1 and "nothing could be verified" in warnings[0]
    path.write_bytes(b"")
    with pytest.raises(UserError, match="not a TensorRT engine"):
        sc.read_foreign_engine(path)
    with pytest.raises(UserError, match="not found"):
        sc.read_foreign_engine(tmp_path / "nope.engine")
