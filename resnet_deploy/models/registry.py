"""Architecture registry: name -> constructor, with the facts the rest of the pipeline needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from .resnet import BasicBlock, Bottleneck, CifarResNet, ResNet


@dataclass(frozen=True)
class ArchSpec:
    """What the CLI and exporter need to know about an architecture."""

    name: str
    family: str  # "imagenet" | "cifar" | "small"
    block: str  # "basic" | "bottleneck"
    default_input_size: int
    description: str
    factory: Callable[[int, int], nn.Module]

    @property
    def default_num_classes(self) -> int:
        """The class count the family is usually trained with (1000 for ImageNet, 10 for the small ones)."""
        return 1000 if self.family == "imagenet" else 10


def _imagenet(block: type[BasicBlock | Bottleneck], layers: list[int]) -> Callable[[int, int], nn.Module]:
    return lambda num_classes, in_channels: ResNet(block, layers, num_classes=num_classes, in_channels=in_channels)


def _cifar(n: int) -> Callable[[int, int], nn.Module]:
    return lambda num_classes, in_channels: CifarResNet(n, num_classes=num_classes, in_channels=in_channels)


def _small(block: type[BasicBlock | Bottleneck], layers: list[int]) -> Callable[[int, int], nn.Module]:
    return lambda num_classes, in_channels: ResNet(
        block, layers, num_classes=num_classes, in_channels=in_channels, stem_width=16, small_input=True, stem_stride=2
    )


ARCHITECTURES: dict[str, ArchSpec] = {}


def _register(spec: ArchSpec) -> None:
    ARCHITECTURES[spec.name] = spec


for _name, _block, _layers in [
    ("resnet18", BasicBlock, [2, 2, 2, 2]),
    ("resnet34", BasicBlock, [3, 4, 6, 3]),
    ("resnet50", Bottleneck, [3, 4, 6, 3]),
    ("resnet101", Bottleneck, [3, 4, 23, 3]),
    ("resnet152", Bottleneck, [3, 8, 36, 3]),
]:
    _register(
        ArchSpec(
            _name,
            "imagenet",
            "basic" if _block is BasicBlock else "bottleneck",
            224,
            f"ImageNet {_name} (torchvision layout, v1.5)",
            _imagenet(_block, _layers),
        )
    )

for _n in (3, 5, 7, 9, 18):
    _depth = 6 * _n + 2
    _register(
        ArchSpec(f"resnet{_depth}", "cifar", "basic", 32, f"CIFAR ResNet-{_depth} (He et al. 2016, §4.2)", _cifar(_n))
    )

_register(
    ArchSpec(
        "resnet50_small",
        "small",
        "bottleneck",
        28,
        "ResNet-50 Bottleneck stages [3, 4, 6, 3] at 1/4 width, 3x3 stride-2 stem, no max-pool (28x28 inputs)",
        _small(Bottleneck, [3, 4, 6, 3]),
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
    return get_arch(arch).factory(num_classes, in_channels)
