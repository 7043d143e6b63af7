"""resnet-deploy: an edge-deployment compiler for ResNets (PyTorch -> ONNX -> precision -> TensorRT / ONNX Runtime).

``resnet_deploy.load(path_or_name)`` returns a ready model (``predict``, ``topk``) for an ``.onnx`` file (ONNX
Runtime), a TensorRT engine, or a PyTorch checkpoint / bundled checkpoint name such as ``"fmnist_resnet20"``.
``resnet_deploy.load_images(paths, model)`` decodes and preprocesses image files for a model;
``resnet_deploy.compile(module, example_input, precision=...)`` builds an in-memory ``torch.nn.Module`` and returns
the loaded result. The rest of the Python API is in :mod:`resnet_deploy.api`. Importing this package imports
nothing heavy: each backend is imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from .backends.base import InferenceModel

__all__ = ["__version__", "compile", "load", "load_images"]


def load(spec: str | Path, **options: Any) -> InferenceModel:
    """Load a model for inference: ``.onnx`` (ONNX Runtime), ``.engine``/``.plan``/``.trt`` (TensorRT), or a
    checkpoint file or bundled name such as ``"fmnist_resnet20"`` (PyTorch eager).

    Options: see :func:`resnet_deploy.backends.loader.load`. Bad input is a one-line
    :class:`resnet_deploy.errors.UserError`.
    """
    from .backends.loader import load as load_model

    return load_model(spec, **options)


def load_images(paths: Sequence[str | Path], model: InferenceModel) -> np.ndarray:
    """Decode image files (JPEG, PNG, BMP, WebP) into the (N, C, H, W) batch ``model.predict`` takes: resized,
    center-cropped and normalised as the model's metadata says (see :func:`resnet_deploy.infer.load_images`)."""
    from .infer import load_images as decode

    return decode(paths, model)


def compile(  # noqa: A001 -- the name torch2trt and Torch-TensorRT users look for
    module: nn.Module, example_input: Any, precision: str = "fp32", **options: Any
) -> InferenceModel:
    """Build an in-memory ``torch.nn.Module`` (export, simplify, fold BatchNorm, FP16 or INT8) for ONNX Runtime
    (``backend="onnxruntime"``, the default) or TensorRT (``backend="tensorrt"``) and return the loaded model.

    ``example_input`` (N, C, S, S) fixes the input's channels and size; INT8 needs ``calib_data`` (a data spec or
    a float array). Options: see :func:`resnet_deploy.build.compiler.compile`.
    """
    from .build.compiler import compile as compile_module

    return compile_module(module, example_input, precision, **options)
