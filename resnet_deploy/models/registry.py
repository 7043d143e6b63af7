"""Architecture registry: name -> stage layout and constructor, with the facts the rest of the pipeline needs.

Torch-free: the constructors import :mod:`.resnet` (and so PyTorch) only when a network is built, and parameter
counts are computed from the layouts, so listing architectures costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from torch import nn

FAMILIES = ("imagenet", "cifar", "small")


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its family, block type and stage layout (blocks per stage)."""

    name: str
    family: str  # "imagenet" | "cifar" | "small"
    block: str  # "basic" | "bottleneck"
    layers: tuple[int, ...]
    default_input_size: int
    description: str

    @property
    def default_num_classes(self) -> int:
        """The class count the family is usually trained with (1000 for ImageNet, 10 for the small ones)."""
        return 1000 if self.family == "imagenet" else 10

    @property
    def min_input_size(self) -> int:
        """The smallest H or W the network takes: its total stride (the last stage then sees one position). The
        stride-2 stages (3 ImageNet-style, 2 CIFAR) times the stem's (7x7/2 conv + max-pool: 4; small: 2)."""
        if self.family == "cifar":
            return 4
        return (4 if self.family == "imagenet" else 2) * 8

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        """An untrained network of this architecture (imports PyTorch)."""
        from .resnet import BasicBlock, Bottleneck, CifarResNet, ResNet

        if self.family == "cifar":
            return CifarResNet(self.layers[0], num_classes=num_classes, in_channels=in_channels)
        block = BasicBlock if self.block == "basic" else Bottleneck
        if self.family == "small":
            return ResNet(
                block,
                list(self.layers),
                num_classes=num_classes,
                in_channels=in_channels,
                stem_width=16,
                small_input=True,
                stem_stride=2,
            )
        return ResNet(block, list(self.layers), num_classes=num_classes, in_channels=in_channels)

    def parameter_count(self, num_classes: int | None = None, in_channels: int = 3) -> int:
        """Trainable parameters (BatchNorm affine included, running statistics not), from the layout alone."""
        num_classes = num_classes or self.default_num_classes
        if self.family == "cifar":
            return _count_cifar(self.layers[0], num_classes, in_channels)
        return _count_imagenet(self.block, self.layers, num_classes, in_channels, small=self.family == "small")


def _count_imagenet(block: str, layers: tuple[int, ...], num_classes: int, in_channels: int, small: bool) -> int:
    width = 16 if small else 64
    expansion = 4 if block == "bottleneck" else 1
    total = in_channels * width * (9 if small else 49) + 2 * width  # stem conv + bn
    inplanes = width
    for stage, blocks in enumerate(layers):
        planes = width * 2**stage
        for i in range(blocks):
            if block == "basic":
                total += inplanes * planes * 9 + planes * planes * 9 + 4 * planes
            else:
                total += inplanes * planes + planes * planes * 9 + planes * planes * expansion
                total += 2 * (2 * planes + planes * expansion)
            if i == 0 and (stage > 0 or inplanes != planes * expansion):
                total += inplanes * planes * expansion + 2 * planes * expansion  # downsample conv + bn
            inplanes = planes * expansion
    return total + inplanes * num_classes + num_classes


def _count_cifar(n: int, num_classes: int, in_channels: int) -> int:
    total = in_channels * 16 * 9 + 2 * 16
    inplanes = 16
    for planes in (16, 32, 64):
        for _ in range(n):
            total += inplanes * planes * 9 + planes * planes * 9 + 4 * planes  # option-A shortcuts: no weights
            inplanes = planes
    return total + 64 * num_classes + num_classes


ARCHITECTURES: dict[str, ArchSpec] = {}


def _register(spec: ArchSpec) -> None:
    ARCHITECTURES[spec.name] = spec


for _name, _block, _layers in [
    ("resnet18", "basic", (2, 2, 2, 2)),
    ("resnet34", "basic", (3, 4, 6, 3)),
    ("resnet50", "bottleneck", (3, 4, 6, 3)),
    ("resnet101", "bottleneck", (3, 4, 23, 3)),
    ("resnet152", "bottleneck", (3, 8, 36, 3)),
]:
    _register(ArchSpec(_name, "imagenet", _block, _layers, 224, f"ImageNet {_name} (torchvision layout, v1.5)"))

for _n in (3, 5, 7, 9, 18):
    _depth = 6 * _n + 2
    _register(ArchSpec(f"resnet{_depth}", "cifar", "basic", (_n,), 32, f"CIFAR ResNet-{_depth} (He et al. 2016, §4.2)"))

_register(
    ArchSpec(
        "resnet50_small",
        "small",
        "bottleneck",
        (3, 4, 6, 3),
        28,
        "ResNet-50 Bottleneck stages [3, 4, 6, 3] at 1/4 width, 3x3 stride-2 stem, no max-pool (28x28 inputs)",
    )
)


def get_arch(name: str) -> ArchSpec:
    """Look up an architecture by name, with a one-line error listing the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UserError(f"unknown architecture '{name}' (known: {', '.join(ARCHITECTURES)})") from None


def build_model(arch: str, num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """Construct an untrained network of the named architecture."""
    if num_classes < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise UserError(f"in_channels must be >= 1, got {in_channels}")
    return get_arch(arch).build(num_classes, in_channels)


def parameter_count(arch: str, num_classes: int | None = None, in_channels: int = 3) -> int:
    """Trainable parameters of ``arch`` (default class count of its family when ``num_classes`` is None)."""
    return get_arch(arch).parameter_count(num_classes, in_channels)
