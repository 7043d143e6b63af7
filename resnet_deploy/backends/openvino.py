"""OpenVINO backend (CPU, extra ``openvino``): runs our ``.onnx`` graphs as they are (FP32, and the INT8 Q/DQ of the
ONNX Runtime placement, which OpenVINO's CPU plugin turns into u8 int8 convolutions) and OpenVINO IR (``.xml`` +
``.bin``) written by ``build --backend openvino -o M.xml``.

An ``.onnx`` is checked with :mod:`resnet_deploy.onnx_scan` first (not ONNX, external data) and its metadata read
there; an IR carries the same metadata in its ``rt_info`` under ``resnet_deploy``. Neither path imports torch or
onnx.
"""

from __future__ import annotations

import io
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

IR_SUFFIX = ".xml"
RT_INFO_KEY = "resnet_deploy"  # rt_info section of an IR that holds the ONNX metadata_props
PRECISION_KEY = "graph_precision"  # and, beside them, the source graph's precision (onnx_scan's rule)


def openvino_available() -> bool:
    """Whether the ``openvino`` extra is installed (found, not imported: importing it costs a second)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> Any:
    """The ``openvino`` module, or a one-line error saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise UserError("the OpenVINO runtime is not installed: pip install 'resnet-deploy[openvino]'") from None
    return openvino


def ir_weights(xml: Path) -> Path:
    """The ``.bin`` OpenVINO reads beside an IR ``.xml`` (same stem)."""
    return xml.with_suffix(".bin")


def _ir_metadata(model: Any) -> dict[str, str]:
    if not model.has_rt_info([RT_INFO_KEY]):
        return {}
    section = model.get_rt_info([RT_INFO_KEY])
    # an OVAny holding {key: OVAny(str)}; what another tool put there is refused if it is not that
    try:
        return {str(k): str(v.astype(str)) for k, v in section.astype(dict).items()}
    except Exception:
        raise UserError(f"the IR's rt_info section '{RT_INFO_KEY}' is not a table of strings") from None


class OpenVinoModel(InferenceModel):
    """An ONNX graph or IR compiled for OpenVINO's CPU plugin, latency hint (one stream), ``threads`` inference
    threads (default: the cores this process may use, :func:`~resnet_deploy.backends.cpus.cpu_budget`)."""

    backend = "openvino"

    def __init__(self, model: str | Path | onnx.ModelProto, threads: int | None = None, device: str = "CPU") -> None:
        ov = require_openvino()
        path: Path | None = None
        props: dict[str, str] = {}
        precision = "fp32"
        source: Any  # what OpenVINO reads: the ONNX bytes we checked (no second open of the file), or an IR path
        if not isinstance(model, str | Path):
            from ..onnx_io import check_no_external_data, graph_precision

            check_no_external_data(model)
            props = {p.key: p.value for p in model.metadata_props}
            source, precision, what = io.BytesIO(model.SerializeToString()), graph_precision(model), "the graph"
            suffix = ".onnx"
        else:
            path = Path(model)
            what, suffix = str(path), path.suffix.lower()
            if suffix == ".onnx":
                data = read_model_file(path)
                facts = scan(data, str(path))  # refuses non-ONNX and external data before OpenVINO sees them
                props, precision, source = dict(facts.metadata), facts.precision, io.BytesIO(data)
            elif suffix == IR_SUFFIX:
                if not ir_weights(path).is_file():
                    raise UserError(f"{path}: OpenVINO IR needs its weights file {ir_weights(path)} beside it")
                source = str(path)
            else:
                raise UserError(f"{path}: OpenVINO runs .onnx or IR (.xml), not {suffix or 'a file without suffix'}")
        core = ov.Core()
        try:
            ov_model = core.read_model(source)
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line frontend text
            raise UserError(f"OpenVINO cannot read {what}: {_one_line(exc)}") from None
        if suffix == IR_SUFFIX:
            props = _ir_metadata(ov_model)
            precision = props.pop(PRECISION_KEY, "fp32")
        if len(ov_model.inputs) != 1 or len(ov_model.outputs) < 1:
            raise UserError(f"expected a model with one input, got {len(ov_model.inputs)} inputs")
        self.threads = threads or cpu_budget().threads
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads,
            # float parts in f32 as in ONNX Runtime: on AMX/avx512_bf16 machines the default would be bf16,
            # which changes FP32 accuracy; int8 convolutions stay int8 (the hint is for floating point only)
            "INFERENCE_PRECISION_HINT": "f32",
        }
        try:
            self.compiled = core.compile_model(ov_model, device, config)
        except Exception as exc:
            raise UserError(f"OpenVINO cannot compile {what} for {device}: {_one_line(exc)}") from None
        self.request = self.compiled.create_infer_request()
        inp = self.compiled.input(0)
        try:
            dtype = np.dtype(inp.get_element_type().to_dtype())
        except Exception:
            raise UserError(f"unsupported input type {inp.get_element_type()}") from None
        shape = tuple(d.get_length() if d.is_static else None for d in inp.get_partial_shape())
        info: ModelInfo | None = from_onnx_props(props, f"{what} (metadata)") if props else None
        super().__init__(
            input_name=inp.get_any_name(),
            input_shape=shape,
            input_dtype=dtype,
            output_name=self.compiled.output(0).get_any_name(),
            info=info,
            path=path,
        )
        self.precision = precision

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            out = self.request.infer({0: batch})
        except Exception as exc:
            raise UserError(f"OpenVINO failed to run the model: {_one_line(exc)}") from None
        # the array views the request's output tensor, which the next infer() overwrites
        return np.array(out[self.compiled.output(0)], copy=True)

    def close(self) -> None:
        self.request = None
        self.compiled = None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400] or type(exc).__name__
