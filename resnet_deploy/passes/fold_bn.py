"""Fold inference BatchNormalization into the preceding Conv: one Conv with scaled weights and a new bias."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UserError
from . import PassReport
from .graph import (
    GraphIndex,
    attribute,
    copy_model,
    drop_unused_initializers,
    drop_value_info,
    in_default_domain,
    rebuild_nodes,
)


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """Fold every ``Conv -> BatchNormalization`` whose parameters are initializers and whose Conv output feeds
    only that BatchNormalization. Idempotent; BNs that cannot be folded are listed in the report's notes."""
    model = copy_model(model)
    report = PassReport("fold_batchnorm")
    graph = model.graph
    index = GraphIndex(graph)
    inits = index.initializers

    def uses(tensor: str) -> int:
        return len(index.readers(tensor))

    removed: list[onnx.NodeProto] = []
    replaced_inits: dict[str, onnx.TensorProto] = {}
    new_inits: list[onnx.TensorProto] = []

    for bn in graph.node:
        if bn.op_type != "BatchNormalization" or not in_default_domain(bn):
            continue
        conv = index.producer.get(bn.input[0])
        why = None
        if conv is None or conv.op_type != "Conv":
            why = "input is not a Conv"
        elif int(attribute(bn, "training_mode", 0)) != 0 or len([o for o in bn.output if o]) > 1:
            why = "training-mode BatchNormalization"
        elif uses(bn.input[0]) != 1 or bn.input[0] in index.outputs:
            why = "Conv output has other consumers"
        elif not all(name in inits for name in bn.input[1:5]) or conv.input[1] not in inits:
            why = "parameters are not initializers"
        elif len(conv.input) > 2 and conv.input[2] and conv.input[2] not in inits:
            why = "Conv bias is not an initializer"
        elif uses(conv.input[1]) != 1:
            why = "Conv weights are shared with another node"
        if why is not None:
            report.notes.append(f"left {bn.name or bn.output[0]}: {why}")
            continue
        assert conv is not None
        scale, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        eps = float(attribute(bn, "epsilon", 1e-5))
        w_init = replaced_inits.get(conv.input[1], inits[conv.input[1]])
        w = numpy_helper.to_array(w_init)
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if has_bias else np.zeros(w.shape[0])
        # A bias other Convs read too (the dynamo exporter shares one zero bias between Convs of equal width) is
        # left to them: this Conv gets a bias of its own.
        has_bias = has_bias and uses(conv.input[2]) == 1
        name = bn.name or bn.output[0]
        denominator = var + eps
        if not (denominator > 0).all():  # also catches NaN
            worst = float(denominator[~(denominator > 0)].flat[0])
            raise UserError(
                f"BatchNormalization '{name}' has variance + epsilon {worst:.3g}, not positive: the model's "
                "statistics are corrupt and cannot be folded"
            )
        factor = scale / np.sqrt(denominator)
        with np.errstate(over="ignore", invalid="ignore"):  # checked right below, with a message that says why
            w_new = (w.astype(np.float64) * factor.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
            b_new = ((b - mean) * factor + beta).astype(w.dtype)
        if not (np.isfinite(w_new).all() and np.isfinite(b_new).all()):
            raise UserError(
                f"folding BatchNormalization '{name}' into its Conv gives NaN or infinite weights (non-finite "
                f"parameters, or values beyond {w.dtype}'s range): the model's weights are corrupt"
            )
        replaced_inits[conv.input[1]] = numpy_helper.from_array(w_new, conv.input[1])
        if has_bias:
            replaced_inits[conv.input[2]] = numpy_helper.from_array(b_new, conv.input[2])
        else:
            bias_name = f"{conv.name or conv.output[0]}_folded_bias"
            new_inits.append(numpy_helper.from_array(b_new, bias_name))
            while len(conv.input) < 3:
                conv.input.append("")
            conv.input[2] = bias_name
        conv.output[0] = bn.output[0]
        removed.append(bn)
        report.count("batchnorm_folded")

    if removed:
        gone = {id(r) for r in removed}
        rebuild_nodes(graph, (n for n in graph.node if id(n) not in gone))
        for i, t in enumerate(graph.initializer):
            if t.name in replaced_inits:
                graph.initializer[i].CopyFrom(replaced_inits[t.name])
        graph.initializer.extend(new_inits)
        drop_unused_initializers(graph)
        # value_info for the removed intermediate tensors would now be stale
        drop_value_info(graph, {r.input[0] for r in removed})
    return model, report
