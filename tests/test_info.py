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
