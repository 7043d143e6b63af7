"""onnxsim, with its BatchNorm fusion left to :mod:`.fold_bn` and its bookkeeping metadata dropped."""

from __future__ import annotations

import onnx

from ..errors import UserError
from . import PassReport


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """onnxsim with BN fusion left to :func:`~resnet_deploy.passes.fold_bn.fold_batchnorm`; the batch axis stays
    dynamic."""
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
