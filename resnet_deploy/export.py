"""PyTorch -> ONNX, and nothing else: the raw export with a dynamic batch axis and BatchNorm kept.

The exporter is asked to keep BatchNormalization (``TrainingMode.PRESERVE`` on an eval-mode model), so the folding
users rely on is :mod:`resnet_deploy.passes.fold_bn`, the pass we test, not a side effect of the exporter. The
passes that follow (simplify, fold BN) are composed by :mod:`resnet_deploy.build`.
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import nn

from .errors import UserError
from .info import ModelInfo

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
MIN_OPSET = 17


def max_opset() -> int:
    """The newest opset torch's TorchScript exporter writes."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

        return int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except ImportError:  # private constant; newer torch may move it
        return 20


def torch_to_onnx(
    model: nn.Module, info: ModelInfo, opset: int = DEFAULT_OPSET, dynamic_hw: bool = False
) -> onnx.ModelProto:
    """Raw export (BatchNorm kept), dynamic batch, input ``input`` (N, C, H, W) float32, output ``logits``; traced
    at ``info.input_size``. ``dynamic_hw``: H and W are dynamic axes too (our ResNets end in adaptive average
    pooling, so the traced graph holds no size-dependent shapes)."""
    if opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old: resnet-deploy exports opset >= {MIN_OPSET}")
    dummy = torch.zeros(1, info.in_channels, info.input_size, info.input_size)
    buf = io.BytesIO()
    axes: dict[str, dict[int, str]] = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if dynamic_hw:
        axes[INPUT_NAME].update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's business
        torch.onnx.export(
            model.eval(),
            (dummy,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
        )
    return onnx.load_from_string(buf.getvalue())
