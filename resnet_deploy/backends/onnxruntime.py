"""ONNX Runtime backend (CPU by default): runs every graph resnet-deploy writes, FP32, FP16 and Q/DQ INT8.

A model file is read with :mod:`resnet_deploy.onnx_scan` (no ``onnx`` import on the path from ``load`` to the first
prediction) and parsed by ONNX Runtime itself; an in-memory ``onnx.ModelProto`` (what ``build`` verifies) is
described through :mod:`resnet_deploy.onnx_io`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from ..info import ModelInfo, from_onnx_props
from ..onnx_scan import read_model_file, scan
from .base import InferenceModel
from .cpus import cpu_budget

if TYPE_CHECKING:
    import onnx

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _names(providers: list[Any]) -> list[str]:
    return [p if isinstance(p, str) else str(p[0]) for p in providers]


def check_providers(providers: str | list[Any] | None) -> list[Any]:
    """The providers to ask ONNX Runtime for (default: the CPU), refusing names this onnxruntime build lacks: left
    alone, ONNX Runtime warns and silently runs on the CPU. A provider is a name or a ``(name, options)`` tuple."""
    import onnxruntime as ort

    if providers is None or (not isinstance(providers, str) and len(providers) == 0):
        return ["CPUExecutionProvider"]
    wanted = [providers] if isinstance(providers, str) else list(providers)
    if not all(isinstance(p, str) or (isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)) for p in wanted):
        raise UserError("providers must be names (e.g. 'CUDAExecutionProvider') or (name, options) tuples")
    available = ort.get_available_providers()
    missing = [name for name in _names(wanted) if name not in available]
    if missing:
        what = "unknown to ONNX Runtime" if any(m not in ort.get_all_providers() for m in missing) else "not built in"
        raise UserError(
            f"ONNX Runtime provider {', '.join(missing)} is {what} (onnxruntime {ort.__version__} here has "
            f"{', '.join(available)})"
        )
    return wanted


class OnnxRuntimeModel(InferenceModel):
    """An ONNX graph in an ``onnxruntime.InferenceSession``: ``threads`` intra-op threads (default: the cores this
    process may use, :func:`~resnet_deploy.backends.cpus.cpu_budget`), worker spinning off unless ``spinning``."""

    backend = "onnxruntime"

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        providers: str | list[Any] | None = None,
        threads: int | None = None,
        optimization: str = "all",
        spinning: bool = False,
        log_severity: int = 4,
    ) -> None:
        import onnxruntime as ort

        path: Path | None = None
        data, info, precision = self._read(model)
        if isinstance(model, str | Path):
            path = Path(model)
        opts = ort.SessionOptions()
        # ORT's default is one thread per physical core of the machine, whatever the cgroup or affinity grants
        self.threads = threads or cpu_budget().threads
        opts.intra_op_num_threads = self.threads
        # Spinning workers hold their cores between ops; with another process on the other core they are
        # preempted mid-op and the op waits for them (issue 17: ResNet-50 2 threads 48 -> 112 ms under contention,
        # 73 ms with spinning off, 48.5 ms quiet).
        self.spinning = spinning
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        opts.graph_optimization_level = levels[optimization]
        # 4 (the default) = fatal only: ONNX Runtime logs a failing node in colour on stderr (several lines) before
        # raising, and what it raises becomes our one line (see _run); 0 = verbose, for `build --verbose`
        opts.log_severity_level = log_severity
        requested = check_providers(providers)
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=requested)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise UserError(f"ONNX Runtime cannot load the model: {text}") from None
        # An available provider whose libraries fail to load (CUDA without cuDNN, say) is dropped by ONNX Runtime
        # with a log line and the session runs on the CPU: the user asked for that provider, so say it instead.
        dropped = [name for name in _names(requested) if name not in self.session.get_providers()]
        if dropped:
            raise UserError(
                f"ONNX Runtime could not start {', '.join(dropped)} (the session fell back to "
                f"{', '.join(self.session.get_providers())}); check that provider's libraries, or leave it out"
            )
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
            info=info,
            path=path,
        )
        self.precision = precision

    @staticmethod
    def _read(model: str | Path | onnx.ModelProto) -> tuple[bytes, ModelInfo | None, str]:
        """(serialized model, its ModelInfo, its precision), refusing files that are not ONNX or name external
        files before ONNX Runtime sees them."""
        if not isinstance(model, str | Path):
            from ..onnx_io import check_no_external_data, graph_precision, info_from_onnx

            check_no_external_data(model)
            return model.SerializeToString(), info_from_onnx(model), graph_precision(model)
        data = read_model_file(model)
        facts = scan(data, str(model))
        return data, from_onnx_props(facts.metadata, f"{model} (ONNX metadata)"), facts.precision

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            out: Any = self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as exc:  # ORT's Fail/InvalidArgument/RuntimeException: a node that cannot run this input
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise UserError(f"ONNX Runtime failed to run the model: {text}") from None
        return np.asarray(out)
