"""resnet-deploy: an edge-deployment compiler for ResNets (PyTorch -> ONNX -> precision -> TensorRT / ONNX Runtime)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runtime import load as load

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `resnet_deploy.load(path)` without importing torch/onnxruntime/TensorRT at package import time.
    if name == "load":
        from .runtime import load

        return load
    raise AttributeError(f"module 'resnet_deploy' has no attribute {name!r}")
