"""ResNet definitions, the architecture registry and weight loading.

The names below are imported on first use, so that ``resnet_deploy.models.bundled`` (which needs no PyTorch) can be
imported on its own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import ARCHITECTURES, ArchSpec, build_model, get_arch
    from .resnet import BasicBlock, Bottleneck, CifarResNet, NormalizedModel, ResNet

_LAZY = {
    "ARCHITECTURES": "registry",
    "ArchSpec": "registry",
    "build_model": "registry",
    "get_arch": "registry",
    "BasicBlock": "resnet",
    "Bottleneck": "resnet",
    "CifarResNet": "resnet",
    "NormalizedModel": "resnet",
    "ResNet": "resnet",
}

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
