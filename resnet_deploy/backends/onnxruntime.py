"""ONNX Runtime backend (CPU by default): runs every graph resnet-deploy writes, FP32, FP16 and Q/DQ INT8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import UserError
from ..onnx_io import graph_precision, info_from_onnx, load_onnx
from .base import InferenceModel

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxRuntimeModel(InferenceModel):
    """An ONNX graph in an ``onnxruntime.InferenceSession``."""

    backend = "onnxruntime"

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        providers: list[str] | None = None,
        threads: int | None = None,
        optimization: str = "all",
    ) -> None:
        import onnxruntime as ort

        path: Path | None = None
        if not isinstance(model, onnx.ModelProto):
            path = Path(model)
            model = load_onnx(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        opts.graph_optimization_level = levels[optimization]
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                model.SerializeToString(), sess_options=opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"ONNX Runtime cannot load the model: {first}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise UserError(f"expected a model with one input, got {len(inputs)} inputs")
        inp = inputs[0]
        if inp.type not in _ORT_TYPES:
            raise UserError(f"unsupported input type {inp.type}")
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in inp.shape)
        super().__init__(
            input_name=inp.name,
            input_shape=shape,
            input_dtype=np.dtype(_ORT_TYPES[inp.type]),
            output_name=outputs[0].name,
            info=info_from_onnx(model),
            path=path,
        )
        self.precision = graph_precision(model)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out: Any = self.session.run([self.output_name], {self.input_name: batch})[0]
        return np.asarray(out)
