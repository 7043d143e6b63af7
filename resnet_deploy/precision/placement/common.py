"""What both placements recognise the same way: a quantizable layer, a residual Add, and how deep in Conv/Gemm
layers each tensor lies."""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

from ...passes.graph import GraphIndex, attribute, in_default_domain

QUANTIZED_OPS = ("Conv", "Gemm")


@dataclass(frozen=True)
class Layer:
    """A quantizable Conv/Gemm: its weight's output-channel ``axis`` and its ``kind`` ("conv" or "gemm")."""

    axis: int
    kind: str


@dataclass
class GraphFacts:
    """What the rules of a placement look up about the graph they place Q/DQ in."""

    index: GraphIndex
    #: longest chain of Conv/Gemm from the inputs to each tensor
    depth: dict[str, int]

    @classmethod
    def of(cls, model: onnx.ModelProto) -> GraphFacts:
        return cls(GraphIndex(model.graph), conv_depth(model))

    @property
    def initializers(self) -> dict[str, onnx.TensorProto]:
        return self.index.initializers


def quantizable_layer(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> Layer | None:
    """The layer ``node`` is when it is a Conv/Gemm whose weight is a float32 initializer, else None."""
    if node.op_type not in QUANTIZED_OPS or not in_default_domain(node):
        return None
    weight = initializers.get(node.input[1]) if len(node.input) >= 2 else None
    if weight is None or weight.data_type != TensorProto.FLOAT:
        return None  # weights computed at run time or not float32: leave the layer in float
    if node.input[0] in initializers:
        return None
    if node.op_type == "Gemm":
        if int(attribute(node, "transA", 0)):
            return None
        return Layer(0 if int(attribute(node, "transB", 0)) else 1, "gemm")
    if int(attribute(node, "group", 1)) != 1 and len(weight.dims) != 4:
        return None
    return Layer(0, "conv")


def is_residual_add(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> bool:
    """An Add of two activations (not a bias add): the join of a residual block."""
    return (
        node.op_type == "Add"
        and in_default_domain(node)
        and len(node.input) == 2
        and all(i and i not in initializers for i in node.input)
    )


def conv_depth(model: onnx.ModelProto) -> dict[str, int]:
    """Longest chain of Conv/Gemm from the inputs to each tensor: the shortcut is the shallower input of an Add."""
    depth: dict[str, int] = {}
    for node in model.graph.node:
        d = max((depth.get(i, 0) for i in node.input if i), default=0)
        for out in node.output:
            depth[out] = d + (1 if node.op_type in QUANTIZED_OPS else 0)
    return depth
