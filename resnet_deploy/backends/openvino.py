"""OpenVINO backend (CPU, extra ``openvino``): runs our ``.onnx`` graphs as they are (FP32, and the INT8 Q/DQ of the
ONNX Runtime placement, which OpenVINO's CPU plugin turns into u8 int8 convolutions) and OpenVINO IR (``.xml`` +
``.bin``) written by ``build --backend openvino -o M.xml``.

An ``.onnx`` is checked with :mod:`resnet_deploy.onnx_scan` first (not ONNX, external data) and its metadata read
there; an IR carries the same metadata in its ``rt_info`` under ``resnet_deploy``. Neither path imports torch or
onnx.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import check_input_file
from ..errors import UserError
from ..info import ModelInfo, from_onnx_props
from ..onnx_scan import MAX_ONNX_BYTES, read_model_file, scan
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


#: An IR's .xml holds the graph only (ResNet-152 INT8: a few MB); its weights are in the .bin, bounded as ONNX is.
MAX_IR_XML_BYTES = 256 * 1024**2
MAX_IR_BIN_BYTES = MAX_ONNX_BYTES
#: What an IR's .xml starts with (IR v10/v11: ``<?xml ...?>``, then ``<net name=".." version="11">``).
#: A comment's body cannot hold "-->", so each prefix matches one way only: ``<!--.*?-->`` would backtrack
#: exponentially over a run of comments not followed by ``<net``.
_IR_HEAD = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--(?:[^-]|-(?!->))*-->\s*)*<net\b([^>]*)>")
_IR_VERSION = re.compile(rb"\bversion\s*=\s*[\"'](\d{1,4})[\"']")


@dataclass
class IrFile:
    """An OpenVINO IR read by :func:`read_ir`: the model and what its files hold."""

    model: Any  # openvino.Model
    xml: Path
    weights: Path
    version: int  # the IR format version of ``<net version=..>`` (OpenVINO writes 11)
    xml_bytes: int
    weights_bytes: int


def read_ir(xml: str | Path, core: Any = None) -> IrFile:
    """Read an untrusted IR with OpenVINO's own ``Core.read_model``, after checking what the files claim: the .xml a
    regular file whose root element is ``<net version="N">`` (no DTD or entities, which an IR never holds), its
    ``.bin`` beside it, both within bounds. Both files are read once here and handed to OpenVINO as a string and a
    tensor, so what was checked is what it parses; a .bin too short for the weights the .xml names is OpenVINO's
    "Incorrect weights in bin file" check. Nothing is compiled or run. Every failure is one line."""
    ov = require_openvino()
    xml = check_input_file(xml, "OpenVINO IR")
    weights = ir_weights(xml)
    if not weights.exists():
        raise UserError(f"{xml}: OpenVINO IR needs its weights file {weights} beside it")
    check_input_file(weights, "OpenVINO IR weights")
    xml_size, bin_size = xml.stat().st_size, weights.stat().st_size
    if xml_size > MAX_IR_XML_BYTES or bin_size > MAX_IR_BIN_BYTES:
        raise UserError(f"{xml}: IR of {xml_size:,} + {bin_size:,} bytes is larger than resnet-deploy reads")
    data = xml.read_bytes()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UserError(f"{xml}: a DTD or entity declaration has no place in OpenVINO IR; refused")
    head = _IR_HEAD.match(data[:65536])
    if head is None:
        raise UserError(f"{xml} is not OpenVINO IR (its root element is not <net>)")
    version = _IR_VERSION.search(head.group(1))
    if version is None:
        raise UserError(f"{xml} is not OpenVINO IR (<net> names no IR version)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{xml} is not OpenVINO IR (not UTF-8 text)") from None
    blob = np.fromfile(weights, dtype=np.uint8)
    try:
        model = (core or ov.Core()).read_model(text, ov.Tensor(blob))
    except Exception as exc:  # RuntimeError whose last line says why ("Incorrect weights in bin file!")
        raise UserError(f"OpenVINO cannot read {xml}: {_last_line(exc)}") from None
    return IrFile(model, xml, weights, int(version.group(1)), xml_size, bin_size)


def ir_metadata(model: Any) -> dict[str, str]:
    """The ONNX ``metadata_props`` that ``build -o M.xml`` kept in the IR's ``rt_info`` (empty for a foreign IR)."""
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
        source: Any = None  # what OpenVINO reads of an ONNX graph: the bytes we checked (no second open of the file)
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
            elif suffix != IR_SUFFIX:
                raise UserError(f"{path}: OpenVINO runs .onnx or IR (.xml), not {suffix or 'a file without suffix'}")
        core = ov.Core()
        if source is None and path is not None:  # an IR: its files checked and read by read_ir
            ov_model = read_ir(path, core).model
            props = ir_metadata(ov_model)
            precision = props.pop(PRECISION_KEY, "fp32")
        else:
            try:
                ov_model = core.read_model(source)
            except Exception as exc:  # OpenVINO raises RuntimeError with multi-line frontend text
                raise UserError(f"OpenVINO cannot read {what}: {_one_line(exc)}") from None
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


def _last_line(exc: BaseException) -> str:
    """The reason in OpenVINO's message, which leads with the C++ source locations it passed through."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:400] if lines else type(exc).__name__
