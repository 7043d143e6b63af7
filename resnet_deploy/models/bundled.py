"""The checkpoints shipped inside the package, found and described without importing PyTorch."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

BUNDLED_DIR = Path(__file__).parent / "checkpoints"


def bundled_checkpoints() -> dict[str, Path]:
    """Names and paths of the checkpoints shipped inside the package."""
    return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.safetensors"))}


def is_bundled_name(spec: object) -> bool:
    return isinstance(spec, str) and spec in bundled_checkpoints()


def resolve_weights(spec: str | Path) -> Path:
    """Turn a bundled checkpoint name or a file path into an existing path."""
    bundled = bundled_checkpoints()
    if isinstance(spec, str) and spec in bundled:
        return bundled[spec]
    path = Path(spec)
    if not path.exists():
        names = ", ".join(bundled) or "none"
        raise UserError(f"weights '{spec}' not found (not a file, nor a bundled checkpoint: {names})")
    if not path.is_file():
        raise UserError(f"weights '{spec}' is not a file")
    return path


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (its tensors are not read; no PyTorch needed)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata() or {})
