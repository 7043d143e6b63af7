"""A Triton "Python-based backend" for ``platform: "onnxruntime_onnx"``: ``<backend-dir>/onnxruntime/model.py``.

The ``nvidia-pytriton`` server has only the python backend. Triton maps the platform ``onnxruntime_onnx`` to the
backend ``onnxruntime``; when ``<backend-dir>/onnxruntime/`` holds a ``model.py`` instead of
``libtriton_onnxruntime.so``, the python backend runs this class for every such model (Triton's docs, "Python-based
Backends"). The model repository stays NVIDIA's format (``config.pbtxt`` + ``1/model.onnx``), so the same folder
runs in NVIDIA's containers on their native ONNX Runtime backend.

One ``InferenceSession`` per model instance, with the session options ``resnet_deploy.load`` uses (all graph
optimisations, ONNX Runtime's default thread count) so that logits match a local run bit for bit. It reads the
parameters NVIDIA's ONNX Runtime backend reads for threads (``intra_op_thread_count``, ``inter_op_thread_count``).
Triton's dynamic batcher hands ``execute`` several requests; they run as one batch when the model batches.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


class TritonPythonModel:
    """Triton's python-backend interface over one ONNX Runtime session."""

    def initialize(self, args: dict[str, str]) -> None:
        import onnxruntime as ort
        import triton_python_backend_utils as pb_utils  # exists only inside Triton's python backend

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        params = config.get("parameters") or {}
        for which in ("intra_op", "inter_op"):
            if f"{which}_thread_count" in params:
                setattr(options, f"{which}_num_threads", int(params[f"{which}_thread_count"]["string_value"]))
        providers: list[Any] = ["CPUExecutionProvider"]  # names, or (name, options) pairs
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])}))
        self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds = [{n: self.pb.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        if not self.batching or len(feeds) == 1:
            return [self._respond(self._run(feed)) for feed in feeds]
        sizes = [int(feed[self.inputs[0]].shape[0]) for feed in feeds]
        batch = {n: np.concatenate([feed[n] for feed in feeds]) for n in self.inputs}
        outs = self._run(batch)
        if isinstance(outs, str):
            return [self._respond(outs) for _ in feeds]
        responses, start = [], 0
        for size in sizes:
            responses.append(self._respond([o[start : start + size] for o in outs]))
            start += size
        return responses

    def _run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray] | str:
        """The outputs, or ONNX Runtime's error as text (the request fails, the model stays up)."""
        try:
            return [np.asarray(o) for o in self.session.run(self.outputs, feed)]
        except Exception as exc:  # ONNX Runtime raises its own Fail/InvalidArgument types
            return f"ONNX Runtime: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"

    def _respond(self, outs: list[np.ndarray] | str) -> Any:
        if isinstance(outs, str):
            return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(outs))
        tensors = [self.pb.Tensor(name, np.ascontiguousarray(o)) for name, o in zip(self.outputs, outs, strict=True)]
        return self.pb.InferenceResponse(output_tensors=tensors)
