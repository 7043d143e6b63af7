"""``resnet_deploy.load(path)``: one call that returns a ready :class:`InferenceModel` for an engine or ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backends.base import InferenceModel
from .errors import UserError

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def load(path: str | Path, **opts: Any) -> InferenceModel:
    """Load ``path`` for inference: TensorRT for ``.engine``/``.plan``/``.trt``, ONNX Runtime for ``.onnx``.

    TensorRT options: ``device`` (int), ``cuda_graphs`` (bool), ``sidecar`` (path; default ``<engine>.json``).
    ONNX Runtime options: ``providers``, ``threads``, ``optimization``. An engine is refused with a one-line
    :class:`UserError` when no GPU/TensorRT runtime is usable here, or when it does not match its sidecar
    (tampered, or built by another TensorRT or for another GPU).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"model {path} not found")
    if not path.is_file():
        raise UserError(f"model {path} is not a file")
    suffix = path.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        allowed = {"device", "cuda_graphs", "sidecar"}
        _check_opts(opts, allowed, "a TensorRT engine")
        from .backends.tensorrt.runtime import TensorRTModel

        return TensorRTModel(path, **opts)
    if suffix == ".onnx":
        _check_opts(opts, {"providers", "threads", "optimization"}, "an ONNX model")
        from .backends.onnxruntime import OnnxRuntimeModel

        return OnnxRuntimeModel(path, **opts)
    raise UserError(f"cannot load {path}: expected a .onnx model or a TensorRT engine ({', '.join(ENGINE_SUFFIXES)})")


def _check_opts(opts: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} for {what} (allowed: {', '.join(sorted(allowed))})")
