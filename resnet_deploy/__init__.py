"""resnet-deploy: an edge-deployment compiler for ResNets (PyTorch -> ONNX -> precision -> TensorRT / ONNX Runtime).

``resnet_deploy.load(path_or_name)`` returns a ready model (``predict``, ``topk``) for an ``.onnx`` file (ONNX
Runtime), a TensorRT engine, or a PyTorch checkpoint / bundled checkpoint name. The rest of the Python API is in
:mod:`resnet_deploy.api`. Importing this package imports nothing heavy: each backend is imported on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .backends.base import InferenceModel

__all__ = ["__version__", "load"]


def load(spec: str | Path, **options: Any) -> InferenceModel:
    """Load a model for inference: ``.onnx`` (ONNX Runtime), ``.engine``/``.plan``/``.trt`` (TensorRT), or a
    checkpoint file or bundled name such as ``"fmnist_resnet20"`` (PyTorch eager).

    Options: see :func:`resnet_deploy.backends.loader.load`. Bad input is a one-line
    :class:`resnet_deploy.errors.UserError`.
    """
    from .backends.loader import load as load_model

    return load_model(spec, **options)
