"""One TensorRT logger for the whole process, and captures of what it says while a build or a load runs.

TensorRT keeps the first logger it is given for the rest of the process: a new ``ILogger`` per builder or runtime
is ignored once a model is loaded, and the errors of later builds go to the first one (NVIDIA/TensorRT#1475). So,
as Polygraphy's ``backend/trt/util.py`` (``get_trt_logger``) does, there is exactly one, created on first use;
callers open a :func:`capture` to collect its messages for as long as they need them.

``ILogger.log`` is ``noexcept`` on the C++ side: TensorRT's ``pyCore.cpp`` catches whatever the Python override
raises and prints "[ERROR] Exception caught in log()", so the override here never raises (a KeyboardInterrupt
raised inside it would be swallowed and the build would go on; :mod:`.builder` handles Ctrl-C itself).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import compat

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["Capture", "capture", "logger"]

# TensorRT-RTX logs this at INTERNAL_ERROR on every build without a GPU; it is harmless (seen, shared/notes).
_HARMLESS = ("Thread context has not been set",)


class Capture:
    """The messages logged while this capture was open: (severity name, text)."""

    def __init__(self, on_message: Callable[[str, str], None] | None = None) -> None:
        self.messages: list[tuple[str, str]] = []
        self._on_message = on_message

    def record(self, severity: str, msg: str) -> None:
        self.messages.append((severity, msg))
        if self._on_message is not None:
            self._on_message(severity, msg)

    def errors(self) -> list[str]:
        return [m for s, m in self.messages if s in ("ERROR", "INTERNAL_ERROR") and not any(h in m for h in _HARMLESS)]

    def warnings(self) -> list[str]:
        return [m for s, m in self.messages if s == "WARNING"]

    def mark(self) -> int:
        return len(self.messages)

    def since(self, mark: int, severities: tuple[str, ...] = ("WARNING", "ERROR", "INTERNAL_ERROR")) -> list[str]:
        return [m for s, m in self.messages[mark:] if s in severities]


_lock = threading.Lock()
_captures: list[Capture] = []
_logger: Any = None
_logger_module: Any = None


def _dispatch(severity: Any, msg: str) -> None:
    try:
        name = str(getattr(severity, "name", severity)).rsplit(".", 1)[-1]
        with _lock:
            targets = list(_captures)
        for target in targets:
            target.record(name, str(msg))
    except BaseException:  # noqa: B036 - must never raise into TensorRT (see the module docstring)
        pass


def logger() -> trt.ILogger:
    """The process-wide ``trt.ILogger`` (made on first use, for the TensorRT module that is loaded)."""
    global _logger, _logger_module
    module = compat.module()
    with _lock:
        if _logger is None or _logger_module is not module:
            base: Any = module.ILogger

            class _ProcessLogger(base):  # type: ignore[misc]
                def __init__(self) -> None:
                    base.__init__(self)

                def log(self, severity: Any, msg: str) -> None:
                    _dispatch(severity, msg)

            _logger, _logger_module = _ProcessLogger(), module
        made: trt.ILogger = _logger
    return made


@contextlib.contextmanager
def capture(on_message: Callable[[str, str], None] | None = None) -> Iterator[Capture]:
    """Collect what the process logger receives inside the block (also from TensorRT's own threads)."""
    cap = Capture(on_message)
    with _lock:
        _captures.append(cap)
    try:
        yield cap
    finally:
        with _lock:
            _captures.remove(cap)
