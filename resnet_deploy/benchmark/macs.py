"""Multiply-accumulate counts read off an ONNX graph (Conv and Gemm/MatMul, float or quantized) or a torch module.

Only the multiply-accumulates of convolutions and matrix products are counted: they are >99 % of a ResNet's
arithmetic, and they are what a machine's peak rate is quoted for. Element-wise ops, pooling and the
normalisation in front of the bundled checkpoints are left out, as in the usual "ResNet-50 = 4.09 GMAC".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import onnx

from ..errors import UserError

# op type -> (index of the data input, index of the weight input)
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}


@dataclass
class MacCount:
    """Multiply-accumulates per image, in total and by op type."""

    total: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    #: values per image of the largest Conv/Gemm input or output: what the memory a batch needs scales with
    largest_activation: int = 0

    def add(self, op: str, macs: int, *activations: list[int] | tuple[int, ...] | None) -> None:
        """Count ``macs`` of one ``op`` node, and the per-image sizes of its input and output (batch axis first)."""
        for dims in activations:
            if dims:
                self.largest_activation = max(self.largest_activation, math.prod(dims[1:]))
        self.total += macs
        self.by_op[op] = self.by_op.get(op, 0) + macs
        self.nodes += 1

    @property
    def gmac(self) -> float:
        return self.total / 1e9


def _dims(vi: onnx.ValueInfoProto) -> list[int] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    out = []
    for d in vi.type.tensor_type.shape.dim:
        if not d.HasField("dim_value") or d.dim_value <= 0:
            return None
        out.append(int(d.dim_value))
    return out


def _with_batch_one(model: onnx.ModelProto, input_size: int | None) -> onnx.ModelProto:
    """A copy whose graph inputs have batch 1 (and ``input_size`` on dynamic spatial axes), ready for inference."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    init_names = {t.name for t in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in init_names or not inp.type.HasField("tensor_type"):
            continue
        dims = inp.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if i == 0:
                d.Clear()
                d.dim_value = 1
            elif not d.HasField("dim_value") or d.dim_value <= 0:
                if input_size is None or i < len(dims) - 2:
                    raise UserError(f"input '{inp.name}' has a dynamic axis {i}: give the input size to count MACs")
                d.Clear()
                d.dim_value = input_size
    # Stale value_info and outputs carry the symbolic batch; let inference recompute them.
    del m.graph.value_info[:]
    for out in m.graph.output:
        out.type.tensor_type.ClearField("shape")
    return m


def count_macs_onnx(model: onnx.ModelProto, input_size: int | None = None) -> MacCount:
    """MACs per image of ``model`` (batch axis set to 1 for shape inference)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(_with_batch_one(model, input_size), data_prop=True)
    except onnx.shape_inference.InferenceError as exc:
        raise UserError(f"cannot infer shapes to count MACs: {str(exc).splitlines()[0]}") from None
    shapes: dict[str, list[int]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = _dims(vi)
        if dims is not None:
            shapes[vi.name] = dims
    for t in inferred.graph.initializer:
        shapes[t.name] = [int(d) for d in t.dims]
    for n in inferred.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    shapes[n.output[0]] = [int(d) for d in a.t.dims]

    count = MacCount()
    for node in inferred.graph.node:
        if node.domain not in ("", "ai.onnx", "com.microsoft"):
            continue
        out = shapes.get(node.output[0]) if node.output else None
        if node.op_type in _CONV_OPS:
            di, wi = _CONV_OPS[node.op_type]
            w = shapes.get(node.input[wi]) if len(node.input) > wi else None
            if out is None or w is None:
                raise UserError(f"cannot count MACs: shape of {node.op_type} '{node.name}' unknown")
            # per image: every output element needs (C_in / group) * prod(kernel) MACs = prod(w.shape[1:])
            count.add(node.op_type, math.prod(out[1:]) * math.prod(w[1:]), out, shapes.get(node.input[di]))
        elif node.op_type in _MATMUL_OPS:
            ai, bi = _MATMUL_OPS[node.op_type]
            a = shapes.get(node.input[ai])
            b = shapes.get(node.input[bi])
            if out is None or a is None or b is None:
                raise UserError(f"cannot count MACs: shape of {node.op_type} '{node.name}' unknown")
            if node.op_type == "Gemm":
                trans_a = any(at.name == "transA" and at.i for at in node.attribute)
                k = a[0] if trans_a else a[-1]
            else:
                k = a[-1]
            count.add(node.op_type, math.prod(out) * k, out, a)
    return count


def count_macs_torch(module: object, input_shape: tuple[int, ...]) -> MacCount:
    """MACs per image of a torch module, from forward hooks on Conv2d and Linear (an independent cross-check)."""
    import torch
    from torch import nn

    assert isinstance(module, nn.Module)
    count = MacCount()

    def conv_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        assert isinstance(m, nn.Conv2d)
        macs = math.prod(out.shape[1:]) * (m.in_channels // m.groups) * math.prod(m.kernel_size)
        count.add("Conv", macs, tuple(out.shape), tuple(inp[0].shape))

    def linear_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        assert isinstance(m, nn.Linear)
        count.add("Gemm", math.prod(out.shape[1:]) * m.in_features, tuple(out.shape), tuple(inp[0].shape))

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            module(torch.zeros(1, *input_shape[1:]))
    finally:
        for h in handles:
            h.remove()
    return count
