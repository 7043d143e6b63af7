"""TensorRT plugins of resnet-deploy. Importing this package needs neither TensorRT nor CUDA: the code that does
(``residual_add_relu_trt``) is imported explicitly and only on a machine with a GPU and TensorRT."""

from __future__ import annotations

# Identity of the fused residual add + ReLU plugin. The ONNX node that TensorRT maps onto it has
# op_type == PLUGIN_NAME, domain == PLUGIN_NAMESPACE, and attributes plugin_namespace / plugin_version.
PLUGIN_NAME = "ResidualAddRelu"
PLUGIN_NAMESPACE = "resnet_deploy"
PLUGIN_VERSION = "1"

__all__ = ["PLUGIN_NAME", "PLUGIN_NAMESPACE", "PLUGIN_VERSION"]
