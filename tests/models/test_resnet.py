"""Architectures: exact parameter counts, torchvision's state_dict layout, and forward shapes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
from torch import nn

from resnet_deploy.api import parameter_count
from resnet_deploy.errors import UserError
from resnet_deploy.models import ARCHITECTURES, build_model, get_arch

# torchvision.models.resnet*(num_classes=1000) parameter counts (the figures).
IMAGENET_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
# He et al. 2016 §4.2 (10 classes, option-A shortcuts); the paper rounds these to 0.27M/0.46M/0.66M/0.85M/1.7M.
CIFAR_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
}
PAPER_MILLIONS = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7}
SMALL_PARAMS = {"resnet50_small": 1_484_186}  # 10 classes
STAGES = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@contextmanager
def on_meta() -> Iterator[None]:
    """Build networks on the meta device (no memory). Random init is skipped: it does not change parameter
    shapes or names, and on meta it costs seconds for nothing."""
    with mock.patch("torch.nn.init.kaiming_normal_"), torch.device("meta"):
        yield


def meta_model(arch: str, num_classes: int, in_channels: int = 3) -> nn.Module:
    with on_meta():
        return build_model(arch, num_classes, in_channels)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_every_architecture_has_an_expected_count() -> None:
    assert set(ARCHITECTURES) == set(IMAGENET_PARAMS) | set(CIFAR_PARAMS) | set(SMALL_PARAMS)


@pytest.mark.parametrize("arch", list(IMAGENET_PARAMS))
def test_imagenet_parameter_counts(arch: str) -> None:
    assert n_params(meta_model(arch, 1000)) == IMAGENET_PARAMS[arch]


@pytest.mark.parametrize("arch", list(CIFAR_PARAMS))
def test_cifar_parameter_counts(arch: str) -> None:
    count = n_params(meta_model(arch, 10))
    assert count == CIFAR_PARAMS[arch]
    assert count / 1e6 == pytest.approx(PAPER_MILLIONS[arch], abs=0.01 if count < 1e6 else 0.05)


def test_small_parameter_count() -> None:
    assert n_params(meta_model("resnet50_small", 10, 3)) == SMALL_PARAMS["resnet50_small"]


def test_num_classes_and_in_channels_are_parameters() -> None:
    # fc: 512 -> 10 instead of 1000; conv1: 1 input channel instead of 3 (64 * 7 * 7 weights each)
    assert n_params(meta_model("resnet18", 10, 1)) == 11_689_512 - 512 * 990 - 990 - 2 * 64 * 49
    net = meta_model("resnet50", 7, 4)
    assert net.conv1.weight.shape == (64, 4, 7, 7) and net.fc.weight.shape == (7, 2048)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize(("num_classes", "in_channels"), [(None, 3), (7, 1), (1000, 4)])
def test_analytic_count_matches_the_modules(arch: str, num_classes: int | None, in_channels: int) -> None:
    # resnet-deploy models prints parameter_count() without building networks; it must equal the real thing
    nc = num_classes or get_arch(arch).default_num_classes
    assert parameter_count(arch, num_classes, in_channels) == n_params(meta_model(arch, nc, in_channels))


def torchvision_keys(arch: str) -> dict[str, tuple[int, ...]]:
    """The state_dict keys and shapes torchvision's resnet.py produces, written out from its structure."""
    block, layers = STAGES[arch]
    expansion = 4 if block == "bottleneck" else 1
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}
    keys.update({f"bn1.{p}": () if p == "num_batches_tracked" else (64,) for p in BN})
    inplanes = 64
    for stage, blocks in enumerate(layers, start=1):
        planes = 64 * 2 ** (stage - 1)
        for i in range(blocks):
            pre = f"layer{stage}.{i}"
            if block == "basic":
                convs = [(planes, inplanes, 3, 3), (planes, planes, 3, 3)]
            else:
                convs = [(planes, inplanes, 1, 1), (planes, planes, 3, 3), (planes * 4, planes, 1, 1)]
            for j, shape in enumerate(convs, start=1):
                keys[f"{pre}.conv{j}.weight"] = shape
                keys.update({f"{pre}.bn{j}.{p}": () if p == "num_batches_tracked" else (shape[0],) for p in BN})
            if i == 0 and (stage > 1 or inplanes != planes * expansion):
                keys[f"{pre}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                keys.update(
                    {f"{pre}.downsample.1.{p}": () if p == "num_batches_tracked" else (planes * expansion,) for p in BN}
                )
            inplanes = planes * expansion
    keys["fc.weight"] = (1000, 512 * expansion)
    keys["fc.bias"] = (1000,)
    return keys


@pytest.mark.parametrize("arch", list(STAGES))
def test_state_dict_matches_torchvision(arch: str) -> None:
    net = meta_model(arch, 1000)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    expected = torchvision_keys(arch)
    assert sorted(got) == sorted(expected)
    assert got == expected
    assert list(got) == list(expected)  # same order too: torchvision registers modules in this order


def test_bottleneck_is_v15() -> None:
    """v1.5: the stride-2 of a downsampling Bottleneck sits on the 3x3 conv, not the first 1x1."""
    net = meta_model("resnet50", 1000)
    first = net.layer2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    assert first.downsample[0].stride == (2, 2)


def test_cifar_layout() -> None:
    net = meta_model("resnet20", 10)
    keys = list(net.state_dict())
    assert keys[0] == "conv1.weight" and keys[-2:] == ["fc.weight", "fc.bias"]
    assert net.conv1.weight.shape == (16, 3, 3, 3) and net.fc.weight.shape == (10, 64)
    convs = [k for k in keys if k.endswith("weight") and "conv" in k]
    assert len(convs) == 19  # 6n + 1 convolutions (+ fc = 20 weighted layers), n = 3
    assert not any("shortcut" in k or "downsample" in k for k in keys)  # option A: parameter-free


@pytest.mark.parametrize(
    ("arch", "num_classes", "in_channels", "size"),
    [("resnet18", 1000, 3, 64), ("resnet20", 10, 3, 32), ("resnet50_small", 10, 1, 28)],
)
def test_forward_shape(arch: str, num_classes: int, in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    net = build_model(arch, num_classes, in_channels).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


def test_cifar_option_a_shortcut_pads_channels() -> None:
    from resnet_deploy.models.resnet import ShortcutA

    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4, 4)
    y = ShortcutA(16)(x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()


def test_build_model_errors() -> None:
    with pytest.raises(UserError, match="unknown architecture 'resnet99'.*resnet18"):
        build_model("resnet99")
    with pytest.raises(UserError, match="num_classes"):
        build_model("resnet18", 0)
    with pytest.raises(UserError, match="in_channels"):
        build_model("resnet18", 10, 0)
