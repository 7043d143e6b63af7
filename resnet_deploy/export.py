"""PyTorch -> ONNX: export with a dynamic batch axis, simplify with onnxsim, then our own BatchNorm folding.

The exporter is asked to keep BatchNormalization (``TrainingMode.PRESERVE`` on an eval-mode model) and
onnxsim to skip its BN fusion, so the folding users rely on is the pass we test, not a side effect of either.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from . import __version__
from ._io import atomic_path
from .errors import UserError
from .models.weights import ModelInfo
from .passes import PassReport
from .passes.fold_bn import fold_batchnorm

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
METADATA_PREFIX = "resnet_deploy."
MAX_ONNX_BYTES = 2 * 1024**3  # protobuf's own limit; larger files would need external data, which we refuse


def torch_to_onnx(model: nn.Module, info: ModelInfo, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Raw export (BatchNorm kept), dynamic batch, input ``input`` (N, C, H, W) float32, output ``logits``."""
    if opset < 17:
        raise UserError(f"opset {opset} is too old: resnet-deploy exports opset >= 17")
    dummy = torch.zeros(1, info.in_channels, info.input_size, info.input_size)
    buf = io.BytesIO()
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
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
        )
    return onnx.load_from_string(buf.getvalue())


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """onnxsim with BN fusion left to :func:`fold_batchnorm`; the batch axis stays dynamic."""
    import onnxsim

    report = PassReport("onnxsim")
    before = len(model.graph.node)
    simplified, ok = onnxsim.simplify(model, skip_fuse_bn=True)
    if not ok:
        raise UserError("onnxsim could not verify the simplified model against the original")
    report.count("nodes_removed", before - len(simplified.graph.node))
    # onnxsim >= 0.5 records every removed node and value name in metadata_props (kilobytes of noise per model)
    keep = [p for p in simplified.metadata_props if not p.key.startswith("onnxsim.")]
    del simplified.metadata_props[:]
    simplified.metadata_props.extend(keep)
    return simplified, report


def set_info(model: onnx.ModelProto, info: ModelInfo) -> onnx.ModelProto:
    """Store ``info`` in ``metadata_props`` (keys prefixed ``resnet_deploy.``), replacing earlier values."""
    meta = {p.key: p.value for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)}
    meta.update({METADATA_PREFIX + k: v for k, v in info.to_metadata().items()})
    onnx.helper.set_model_props(model, meta)
    return model


def info_from_onnx(model: onnx.ModelProto) -> ModelInfo | None:
    """The :class:`ModelInfo` written by :func:`set_info`, or None for a foreign ONNX file."""
    meta = {
        p.key.removeprefix(METADATA_PREFIX): p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)
    }
    return ModelInfo.from_metadata(meta, "ONNX metadata") if "arch" in meta else None


def export_onnx(
    model: nn.Module, info: ModelInfo, opset: int = DEFAULT_OPSET
) -> tuple[onnx.ModelProto, list[PassReport]]:
    """Export, simplify and fold BatchNorm; the result carries ``info`` in its metadata."""
    raw = torch_to_onnx(model, info, opset)
    simplified, sim_report = simplify(raw)
    folded, fold_report = fold_batchnorm(simplified)
    folded.producer_name = "resnet-deploy"
    folded.producer_version = __version__  # not the torch version the exporter left there
    set_info(folded, info)
    onnx.checker.check_model(folded)
    return folded, [sim_report, fold_report]


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write an ONNX file atomically."""
    data = model.SerializeToString()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def load_onnx(path: str | Path, check: bool = True) -> onnx.ModelProto:
    """Read an untrusted ONNX file: it must parse, pass the checker and keep all weights inside the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX model {path} not found")
    size = path.stat().st_size
    if size == 0 or size > MAX_ONNX_BYTES:
        raise UserError(f"{path} is not an ONNX model (size {size} bytes)")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UserError(f"{path} is not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or model.ir_version == 0:
        raise UserError(f"{path} is not an ONNX model (no graph)")
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise UserError(f"{path} keeps weights in external files, which resnet-deploy does not load")
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"{path} fails the ONNX checker: {first}") from None
    return model
