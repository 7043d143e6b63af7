"""PyTorch eager backend: the baseline every compiled graph is compared with."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..info import ModelInfo
from .base import InferenceModel


class TorchModel(InferenceModel):
    """A ``torch.nn.Module`` in eval mode behind the common interface (CPU, or CUDA when ``device`` says so)."""

    backend = "pytorch"

    def __init__(self, module: nn.Module, info: ModelInfo, device: str = "cpu", half: bool = False) -> None:
        super().__init__(
            input_name="input",
            input_shape=(None, info.in_channels, info.input_size, info.input_size),
            input_dtype=np.dtype(np.float32),
            output_name="logits",
            info=info,
        )
        self.device = torch.device(device)
        self.half = half
        self.module = module.eval().to(self.device)
        if half:
            self.module = self.module.half()
        self.precision = "fp16" if half else "fp32"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            if self.half:
                x = x.half()
            return self.module(x).float().cpu().numpy()  # type: ignore[no-any-return]
