"""ResNet definitions, the architecture registry and weight loading."""

from .registry import ARCHITECTURES, ArchSpec, build_model, get_arch
from .resnet import BasicBlock, Bottleneck, CifarResNet, NormalizedModel, ResNet

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "NormalizedModel",
    "ResNet",
    "build_model",
    "get_arch",
]
