"""Multiply-accumulate counts of ONNX graphs and torch modules."""

from __future__ import annotations

from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from resnet_deploy.benchmark import (
    count_macs_onnx,
    count_macs_torch,
)
from resnet_deploy.export import torch_to_onnx
from resnet_deploy.models.weights import load_model


def test_mac_count_by_hand(tiny_graph: Any) -> None:
    c = count_macs_onnx(tiny_graph())
    # conv: 4 x 8 x 8 outputs x (2/2 x 3 x 3) = 2304; gemm: 10 outputs x 256 = 2560
    assert c.by_op == {"Conv": 2304, "Gemm": 2560}
    assert c.total == 4864 and c.nodes == 2


@pytest.mark.slow
@pytest.mark.parametrize("arch,gmac", [("resnet18", 1.81), ("resnet50", 4.09)])
def test_mac_count_resnets_at_224(arch: str, gmac: float) -> None:
    model, info = load_model(arch)
    proto = torch_to_onnx(model, info)
    count = count_macs_onnx(proto)
    assert abs(count.gmac - gmac) / gmac < 0.01, count.gmac
    # An independent count from forward hooks on the torch modules gives the same number exactly.
    assert count.total == count_macs_torch(model, (1, 3, 224, 224)).total


def test_mac_count_of_a_qdq_graph_equals_float(tiny_graph: Any) -> None:
    """Q/DQ in front of Conv and Gemm (as the INT8 build writes them) does not change the count."""
    base = tiny_graph()
    qdq = onnx.ModelProto()
    qdq.CopyFrom(base)
    g = qdq.graph
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zp = helper.make_tensor("z", TensorProto.INT8, [], [0])
    g.initializer.extend([scale, zp])
    new_nodes = [
        helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
    ]
    conv = g.node[0]
    conv.input[0], conv.input[1] = "xd", "wd"
    nodes = [*new_nodes, *g.node]
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(qdq)
    assert count_macs_onnx(qdq).total == count_macs_onnx(base).total
