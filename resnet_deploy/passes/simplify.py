"""onnxsim, with its BatchNorm fusion left to :mod:`.fold_bn` and its bookkeeping metadata dropped.

Before onnxsim, ``CastLike(constant, x)`` becomes ``Cast(constant, to=type of x)``: the dynamo exporter without its
optimizer (``torch.onnx.export(..., optimize=False)``) writes each absent Conv bias as
``Expand(CastLike(0, x), [C])``, which depends on the graph input only through its dtype; onnxsim cannot fold it
then, and BatchNorm folding needs the bias as an initializer. After onnxsim, the Constant nodes it leaves (the
folded biases of such graphs) become initializers, for the same reason.
"""

from __future__ import annotations

import sys
from types import ModuleType

import onnx
from onnx import helper

from ..errors import UserError
from . import PassReport
from .graph import copy_model


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Turn ``Constant`` nodes holding a tensor into initializers of the same name, in place; returns how many."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    moved: list[onnx.TensorProto] = []
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value" and a.HasField("t")), None)
        if (
            node.op_type == "Constant"
            and node.domain in ("", "ai.onnx")
            and len(node.attribute) == 1
            and value is not None
            and node.output[0] not in outputs
        ):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            moved.append(tensor)
        else:
            keep.append(node)
    if moved:
        del graph.node[:]
        graph.node.extend(keep)
        graph.initializer.extend(moved)
    return len(moved)


def _known_types(graph: onnx.GraphProto) -> dict[str, int]:
    types = {t.name: t.data_type for t in graph.initializer}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            types[v.name] = v.type.tensor_type.elem_type
    return types


def resolve_castlike(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``model`` with every ``CastLike`` of a constant to a tensor of known type turned into a ``Cast``; the input
    itself (no copy) when there is none."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    types = _known_types(graph)
    todo = [
        i
        for i, n in enumerate(graph.node)
        if n.op_type == "CastLike" and n.domain in ("", "ai.onnx") and n.input[0] in constants and n.input[1] in types
    ]
    if not todo:
        return model, 0
    model = copy_model(model)
    for i in todo:
        node = model.graph.node[i]
        cast = helper.make_node("Cast", [node.input[0]], list(node.output), name=node.name, to=types[node.input[1]])
        model.graph.node[i].CopyFrom(cast)
    return model, len(todo)


def _onnxsim() -> ModuleType:
    """``import onnxsim`` without the torch import it makes for an optional integration (onnxsim >= 0.8 imports
    torch, when installed, at package import: 185 MB of a build from an ONNX file that never uses it; peak memory
    is what calibration at real size runs out of). torch is hidden only while onnxsim imports, and only when
    nothing has loaded it yet; should a future onnxsim need it, it is imported plainly."""
    if "onnxsim" in sys.modules or "torch" in sys.modules:
        import onnxsim

        return onnxsim
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import onnxsim

        return onnxsim
    except ImportError:
        for name in [m for m in sys.modules if m == "onnxsim" or m.startswith("onnxsim.")]:
            del sys.modules[name]
    finally:
        del sys.modules["torch"]
    import onnxsim

    return onnxsim


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """onnxsim with BN fusion left to :func:`~resnet_deploy.passes.fold_bn.fold_batchnorm`; the batch axis stays
    dynamic."""
    onnxsim = _onnxsim()
    report = PassReport("onnxsim")
    before = len(model.graph.node)
    model, resolved = resolve_castlike(model)
    if resolved:
        report.count("castlike_resolved", resolved)
    simplified, ok = onnxsim.simplify(model, skip_fuse_bn=True)
    if not ok:
        raise UserError("onnxsim could not verify the simplified model against the original")
    moved = constants_to_initializers(simplified)
    if moved:
        report.count("constants_to_initializers", moved)
    report.count("nodes_removed", before - len(simplified.graph.node))
    # onnxsim >= 0.5 records every removed node and value name in metadata_props (kilobytes of noise per model)
    keep = [p for p in simplified.metadata_props if not p.key.startswith("onnxsim.")]
    del simplified.metadata_props[:]
    simplified.metadata_props.extend(keep)
    return simplified, report
