"""What ``resnet-deploy models`` lists: every architecture with its parameter count, every bundled checkpoint with
its measured top-1. Torch-free (checkpoint metadata is read without loading tensors)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UserError
from ..info import ModelInfo
from .bundled import bundled_checkpoints, read_safetensors_metadata
from .registry import ARCHITECTURES


@dataclass
class ArchitectureEntry:
    name: str
    family: str
    block: str
    input_size: int
    num_classes: int
    parameters: int
    description: str


@dataclass
class CheckpointEntry:
    name: str
    path: str
    arch: str | None = None
    dataset: str | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    input_size: int | None = None
    top1: float | None = None
    error: str | None = None  # set when the file's metadata cannot be read


def list_architectures() -> list[ArchitectureEntry]:
    """Every registered architecture, with its parameter count at its default class count."""
    return [
        ArchitectureEntry(
            spec.name,
            spec.family,
            spec.block,
            spec.default_input_size,
            spec.default_num_classes,
            spec.parameter_count(),
            spec.description,
        )
        for spec in ARCHITECTURES.values()
    ]


def list_checkpoints() -> list[CheckpointEntry]:
    """The checkpoints bundled with the package, described from their metadata (tensors are not read)."""
    out = []
    for name, path in bundled_checkpoints().items():
        entry = CheckpointEntry(name=name, path=str(path))
        try:
            info = ModelInfo.from_metadata(read_safetensors_metadata(path), path.name)
        except UserError as exc:
            entry.error = str(exc)
        except Exception as exc:  # safetensors' own error types for a damaged file
            entry.error = f"unreadable ({type(exc).__name__})"
        else:
            entry.arch, entry.dataset, entry.top1 = info.arch, info.dataset, info.top1
            entry.num_classes, entry.in_channels, entry.input_size = info.num_classes, info.in_channels, info.input_size
        out.append(entry)
    return out


def models_catalog() -> dict[str, Any]:
    """What ``resnet-deploy models --json`` prints: ``{"architectures": [...], "checkpoints": [...]}``."""
    return {
        "architectures": [asdict(a) for a in list_architectures()],
        "checkpoints": [asdict(c) for c in list_checkpoints()],
    }
