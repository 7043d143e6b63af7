"""Calibration cache: written after calibrating, reused to skip it, rejected when stale, foreign or malformed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.precision.ptq import Int8Options, quantize_int8


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.random.default_rng(0).random((24, 1, 28, 28), dtype=np.float32)


@pytest.fixture(scope="module")
def cached(resnet20_fp32: onnx.ModelProto, calib: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cache") / "calib.json"
    r = quantize_int8(resnet20_fp32, calib, Int8Options(method="entropy", cache_path=path), {"spec": "random"})
    assert r.source == "calibration" and r.cache_to_write == path
    assert not path.exists()  # the caller writes it, after its own output
    r.cache.save(path)
    return path


def test_cache_content(cached: Path, calib: np.ndarray) -> None:
    doc = json.loads(cached.read_text())
    assert doc["format"] == "resnet-deploy-calibration-cache" and doc["version"] == 2
    assert doc["method"] == "entropy" and doc["params"]["num_bins"] == 2048
    assert doc["data"]["spec"] == "random" and doc["data"]["samples"] == len(calib) and len(doc["data"]["sha256"]) == 64
    assert set(doc["amax"]) == set(doc["graph"]["tensors"])
    assert all(v > 0 for v in doc["amax"].values())


def test_reuse_skips_calibration_and_gives_the_same_graph(
    resnet20_fp32: onnx.ModelProto, calib: np.ndarray, cached: Path
) -> None:
    fresh = quantize_int8(resnet20_fp32, calib, Int8Options(method="entropy"))
    reused = quantize_int8(resnet20_fp32, None, Int8Options(cache_path=cached))
    assert reused.source == "cache" and reused.cache_to_write is None and reused.method == "entropy"
    assert reused.model.graph.SerializeToString() == fresh.model.graph.SerializeToString()


def test_stale_cache_other_weights(resnet20_fp32_other_weights: onnx.ModelProto, cached: Path) -> None:
    with pytest.raises(UserError, match="stale or foreign.*another graph"):
        quantize_int8(resnet20_fp32_other_weights, None, Int8Options(cache_path=cached))


def test_foreign_cache_other_graph(resnet18_fp32: onnx.ModelProto, cached: Path) -> None:
    with pytest.raises(UserError, match="stale or foreign"):
        quantize_int8(resnet18_fp32, None, Int8Options(cache_path=cached))


def test_cache_with_a_missing_tensor(resnet20_fp32: onnx.ModelProto, cached: Path, tmp_path: Path) -> None:
    doc = json.loads(cached.read_text())
    doc["amax"].pop(next(iter(doc["amax"])))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="no range for tensor"):
        quantize_int8(resnet20_fp32, None, Int8Options(cache_path=bad))


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a resnet-deploy calibration cache"),
        ('{"format": "resnet-deploy-calibration-cache", "version": 99}', "version 99"),
        ('{"format": "resnet-deploy-calibration-cache", "version": 2, "graph": {}}', "no graph fingerprint"),
        ("\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_cache(resnet20_fp32: onnx.ModelProto, tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError, match=message):
        quantize_int8(resnet20_fp32, None, Int8Options(cache_path=bad))


@pytest.mark.parametrize(
    "value,message",
    [
        (-1, "invalid calibration range -1"),
        (0, "is 0"),  # used to become scale 1.0 silently
        (1e300, "float32 cannot carry"),  # accepted before: the model then scored 8.8 %
        (1e-300, "float32 cannot carry"),
        ("1.0", "invalid range '1.0'"),
    ],
)
def test_invalid_range_in_cache(
    resnet20_fp32: onnx.ModelProto, cached: Path, tmp_path: Path, value: object, message: str
) -> None:
    doc = json.loads(cached.read_text())
    doc["amax"][next(iter(doc["amax"]))] = value
    bad = tmp_path / "bad_range.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=f"calibration cache .*bad_range.json: .*{message}"):
        quantize_int8(resnet20_fp32, None, Int8Options(cache_path=bad))


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d["data"].update(samples="512"), "data.samples must be a count of images, got '512'"),
        (lambda d: d["data"].update(samples=[512]), "data.samples must be a count"),
        (lambda d: d["data"].update(samples=-3), "data.samples must be a count"),
        (lambda d: d.update(params=json.loads("[" * 50 + "]" * 50)), "nested deeper than 8 levels"),
    ],
)
def test_malformed_fields_are_one_line(
    resnet20_fp32: onnx.ModelProto, cached: Path, tmp_path: Path, edit: Any, message: str
) -> None:
    doc = json.loads(cached.read_text())
    edit(doc)
    bad = tmp_path / "bad_field.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=message):
        quantize_int8(resnet20_fp32, None, Int8Options(cache_path=bad))


def test_deep_nesting_and_huge_integers_are_one_line(resnet20_fp32: onnx.ModelProto, tmp_path: Path) -> None:
    # json.loads raised RecursionError and ValueError ("Exceeds the limit (4300 digits)") through the CLI
    for text, message in (("[" * 100_000 + "]" * 100_000, "nested deeper"), ("1" * 5000, "integer of 5000 digits")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(UserError, match=message):
            quantize_int8(resnet20_fp32, None, Int8Options(cache_path=bad))


def test_explicit_method_must_match_the_cache(resnet20_fp32: onnx.ModelProto, cached: Path) -> None:
    with pytest.raises(UserError, match="made with method 'entropy', not 'minmax'"):
        quantize_int8(resnet20_fp32, None, Int8Options(method="minmax", cache_path=cached))


def test_no_data_and_no_cache(resnet20_fp32: onnx.ModelProto, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs calibration data"):
        quantize_int8(resnet20_fp32, None, Int8Options(cache_path=tmp_path / "absent.json"))


def test_zero_samples_and_wrong_shape(resnet20_fp32: onnx.ModelProto) -> None:
    with pytest.raises(UserError, match="zero samples"):
        quantize_int8(resnet20_fp32, np.zeros((0, 1, 28, 28), np.float32))
    with pytest.raises(UserError, match=r"shape \(3, 32, 32\).*takes \(1, 28, 28\)"):
        quantize_int8(resnet20_fp32, np.zeros((4, 3, 32, 32), np.float32))


def test_cache_from_other_data_is_rejected_when_data_is_given(
    resnet20_fp32: onnx.ModelProto, calib: np.ndarray, cached: Path
) -> None:
    quantize_int8(resnet20_fp32, calib, Int8Options(cache_path=cached))  # same data: fine
    with pytest.raises(UserError, match="other calibration data"):
        quantize_int8(resnet20_fp32, calib[:10], Int8Options(cache_path=cached))
