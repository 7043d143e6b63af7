"""ModelInfo and its stored forms: every conversion round-trips, foreign metadata survives, bad metadata is one line."""

from __future__ import annotations

import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.info import (
    METADATA_PREFIX,
    ModelInfo,
    describe_or_shape,
    from_input_shape,
    from_onnx_props,
    from_sidecar,
    to_onnx_props,
    to_sidecar,
)

FULL = ModelInfo(
    arch="resnet20",
    num_classes=10,
    in_channels=1,
    input_size=28,
    mean=[0.286],
    std=[0.353],
    dataset="fashion-mnist",
    labels=[f"c{i}" for i in range(10)],
    name="fmnist_resnet20",
    top1=92.59,
)


@pytest.mark.parametrize("info", [FULL, ModelInfo(arch="resnet50")])
def test_metadata_round_trips(info: ModelInfo) -> None:
    assert ModelInfo.from_metadata(info.to_metadata()) == info
    assert from_onnx_props(to_onnx_props(info)) == info
    shape = [-1, info.in_channels, info.input_size, info.input_size]
    back = from_sidecar(to_sidecar(info, shape))
    assert back is not None and (back.arch, back.num_classes, back.mean, back.labels) == (
        info.arch,
        info.num_classes,
        info.mean,
        info.labels,
    )


def test_foreign_onnx_metadata_is_kept_and_ours_replaced() -> None:
    props = to_onnx_props(FULL, {"author": "someone", METADATA_PREFIX + "arch": "resnet18"})
    assert props["author"] == "someone" and props[METADATA_PREFIX + "arch"] == "resnet20"
    assert from_onnx_props({"author": "someone"}) is None


def test_sidecar_of_a_foreign_graph_describes_its_input_only() -> None:
    sections = to_sidecar(None, [-1, 3, 224, 224])
    assert sections["model"]["arch"] is None and sections["preprocessing"]["normalization"] == "caller"
    assert from_sidecar(sections) is None


def test_input_shape_fallback() -> None:
    assert from_input_shape([None, 3, 224, 224]) == ModelInfo(arch="unknown", in_channels=3, input_size=224)
    assert from_input_shape([None, 3, None, None]) is None and from_input_shape([None, 3, 224, 112]) is None
    assert describe_or_shape(FULL, [None, 3, 8, 8]) is FULL


@pytest.mark.parametrize(
    "meta,match",
    [
        ({}, "no 'arch'"),
        ({"arch": "resnet20", "num_classes": "ten"}, "malformed"),
        ({"arch": "resnet20", "mean": "[0.5]"}, "mean and std"),
    ],
)
def test_bad_metadata_is_one_line(meta: dict[str, str], match: str) -> None:
    with pytest.raises(UserError, match=match):
        ModelInfo.from_metadata(meta)


@pytest.mark.parametrize(
    "meta,match",
    [
        ({"arch": "resnet20", "num_classes": str(10**12)}, "num_classes 1000000000000 is out of range \\(1..100000\\)"),
        ({"arch": "resnet20", "input_size": "99999999"}, "input_size 99999999 is out of range"),
        ({"arch": "resnet20", "input_size": "-5"}, "input_size -5 is out of range"),
        ({"arch": "resnet20", "in_channels": "0"}, "in_channels 0 is out of range"),
        ({"arch": "resnet20", "num_classes": "10.5"}, "num_classes must be an integer, got 10.5"),
        ({"arch": "resnet20", "num_classes": "true"}, "num_classes must be an integer"),
        ({"arch": "resnet20", "num_classes": "1" * 5000}, "'num_classes': JSON holds an integer of 5000 digits"),
        ({"arch": "resnet20", "mean": "[" * 100_000 + "]" * 100_000, "std": "[1]"}, "'mean': JSON nested deeper"),
        ({"arch": "resnet20", "mean": "[[0.5]]", "std": "[1]"}, "nested deeper than 2|must hold numbers"),
        ({"arch": "resnet20", "mean": '"0.5"', "std": "[1]"}, "mean must be a list"),
        ({"arch": "resnet20", "in_channels": "1", "mean": "[0.5]", "std": "[0]"}, "std finite and positive"),
        ({"arch": "resnet20", "in_channels": "1", "mean": "[0.5]", "std": "[NaN]"}, "NaN is not a JSON number"),
        ({"arch": "resnet20", "in_channels": "3", "mean": "[1, 2]", "std": "[1, 2]"}, "2 mean values for 3 input"),
        ({"arch": "resnet20", "top1": "250"}, "top1 250.0 is not a percentage"),
        ({"arch": "resnet20", "labels": "{}"}, "labels must be a list"),
    ],
)
def test_numeric_metadata_is_validated_against_sane_ranges(meta: dict[str, str], match: str) -> None:
    # before: 10^12 classes or a 99999999-pixel input became a giant allocation (RuntimeError), deep nesting a
    # RecursionError, and 5000 digits a ValueError about sys.set_int_max_str_digits
    with pytest.raises(UserError, match=match):
        ModelInfo.from_metadata(meta, "ckpt.safetensors")


def test_sidecar_model_sections_are_validated_too() -> None:
    sections = to_sidecar(FULL, [-1, 1, 28, 28])
    sections["model"]["num_classes"] = 10**12
    with pytest.raises(UserError, match="engine sidecar: num_classes 1000000000000 is out of range"):
        from_sidecar(sections)


def test_recorded_runtime_is_one_we_know_or_ignored_with_a_warning() -> None:
    from resnet_deploy.info import RUNTIME_KEY, recorded_runtime

    assert RUNTIME_KEY == METADATA_PREFIX + "runtime"
    assert recorded_runtime({}) == (None, None)
    assert recorded_runtime({RUNTIME_KEY: "openvino"}) == ("openvino", None)
    assert recorded_runtime({RUNTIME_KEY: "onnxruntime"}) == ("onnxruntime", None)
    for value in ("tvm", "OpenVINO", "", "x" * 10_000):
        runtime, warning = recorded_runtime({RUNTIME_KEY: value}, "m.onnx")
        assert runtime is None and warning is not None
        assert warning.startswith("m.onnx: resnet_deploy.runtime ") and warning.endswith("ignored")
        assert len(warning) < 200 and "\n" not in warning  # an edited value is quoted, shortened, on one line
