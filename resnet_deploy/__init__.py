"""resnet-deploy: an edge-deployment compiler for ResNets (PyTorch -> ONNX -> precision -> TensorRT / ONNX Runtime)."""

__version__ = "0.1.0"
