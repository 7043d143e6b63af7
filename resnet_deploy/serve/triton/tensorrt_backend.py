"""A Triton "Python-based backend" for ``platform: "tensorrt_plan"``: ``<backend-dir>/tensorrt/model.py``.

Same mechanism as :mod:`.onnxruntime_backend`: on the ``nvidia-pytriton`` server (python backend only) every
``tensorrt_plan`` model runs through this class, which loads ``1/model.plan`` with ``resnet_deploy.load`` (so the
sidecar ``1/model.plan.json`` that ``triton-repo`` copies beside it is checked first: sha256, TensorRT version,
GPU). NVIDIA's containers run the same folder on their native TensorRT backend and ignore the sidecar.

Never run on this project's machines: engines need full TensorRT on an NVIDIA GPU, which none has (README, "what
runs where"). What is tested is that the server gets this far and refuses with ``resnet_deploy.load``'s one line.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


class TritonPythonModel:
    """Triton's python-backend interface over one :class:`resnet_deploy.backends.tensorrt.runtime.TensorRTModel`."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils  # exists only inside Triton's python backend

        from resnet_deploy.backends.loader import load
        from resnet_deploy.errors import UserError

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.plan"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        try:
            self.model = load(path, device=int(args.get("model_instance_device_id") or 0))
        except UserError as exc:  # Triton shows the message as the reason the model failed to load
            raise pb_utils.TritonModelException(str(exc)) from None
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]

    def execute(self, requests: list[Any]) -> list[Any]:
        batches = [self.pb.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        sizes = [int(b.shape[0]) for b in batches]
        try:
            logits = self.model.predict(np.concatenate(batches) if len(batches) > 1 else batches[0])
        except Exception as exc:  # one failed batch fails its requests, not the server
            error = self.pb.TritonError(f"TensorRT: {exc}")
            return [self.pb.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            out = np.ascontiguousarray(logits[start : start + size])
            responses.append(self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(self.output, out)]))
            start += size
        return responses

    def finalize(self) -> None:
        self.model.close()
