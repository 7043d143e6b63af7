"""The PyTorch eager backend: the baseline every compiled graph is compared with."""

from __future__ import annotations

import numpy as np
import torch

from resnet_deploy.api import export_onnx
from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.models.weights import load_model


def test_eager_matches_its_onnx_export_and_accepts_torch_tensors() -> None:
    module, info = load_model(weights="fmnist_resnet20")
    eager = TorchModel(module, info)
    ort = OnnxRuntimeModel(export_onnx(module, info)[0])
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(eager.predict(x), ort.predict(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(eager.predict(torch.from_numpy(x)), eager.predict(x))
    assert eager.backend == "pytorch" and eager.precision == "fp32" and eager.input_shape == (None, 1, 28, 28)
    assert TorchModel(module, info, half=True).precision == "fp16"
