"""TensorRT engines: build (works without a GPU through TensorRT-RTX), sidecar, inspection, GPU runtime.

Importing this package imports no TensorRT; :mod:`.compat` does on first use. Only :mod:`.runtime` needs a GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .builder import EngineBuildOptions, EngineBuildReport, build_engine
    from .engine_inspector import format_engine_summary, inspect_engine
    from .runtime import TensorRTModel

__all__ = [
    "EngineBuildOptions",
    "EngineBuildReport",
    "TensorRTModel",
    "build_engine",
    "format_engine_summary",
    "inspect_engine",
    "tensorrt_status",
]

_LAZY = {
    "EngineBuildOptions": "builder",
    "EngineBuildReport": "builder",
    "build_engine": "builder",
    "inspect_engine": "engine_inspector",
    "format_engine_summary": "engine_inspector",
    "TensorRTModel": "runtime",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


def tensorrt_status() -> dict[str, Any]:
    """What this machine can do with TensorRT: {"installed", "flavour", "version", "can_build", "can_run", "reason"}.

    The CLI's ``--backend auto`` picks TensorRT when ``can_run`` is true (an engine nobody here can run is no
    use to a user who asked for a runnable model), else ONNX Runtime, and prints ``reason``.
    """
    from . import compat

    found = compat.available()
    can_run, reason = compat.gpu_runtime_status()
    return {
        "installed": found is not None,
        "flavour": found.flavour if found else None,
        "version": found.version if found else None,
        "can_build": found is not None,
        "can_run": can_run,
        "reason": reason,
    }
