"""The rules both placements share: which Conv/Gemm is a quantizable layer, which Add is a residual join, and the
Conv depth that tells a shortcut from a branch."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.precision.placement.common import Layer, conv_depth, is_residual_add, quantizable_layer


def inits(**arrays: np.ndarray) -> dict[str, onnx.TensorProto]:
    return {name: numpy_helper.from_array(a, name) for name, a in arrays.items()}


W4 = np.ones((4, 2, 3, 3), np.float32)
WG = np.ones((3, 4), np.float32)


def test_conv_and_gemm_layers_and_their_weight_axis() -> None:
    weights = inits(w=W4, wg=WG)
    assert quantizable_layer(helper.make_node("Conv", ["x", "w"], ["y"]), weights) == Layer(0, "conv")
    assert quantizable_layer(helper.make_node("Gemm", ["x", "wg"], ["y"], transB=1), weights) == Layer(0, "gemm")
    assert quantizable_layer(helper.make_node("Gemm", ["x", "wg"], ["y"]), weights) == Layer(1, "gemm")


def test_what_stays_float() -> None:
    weights = {**inits(w=W4, wg=WG, x=np.ones((1, 2, 3, 3), np.float32)), **inits(w16=W4.astype(np.float16))}
    assert quantizable_layer(helper.make_node("Gemm", ["x", "wg"], ["y"], transA=1), weights) is None
    assert quantizable_layer(helper.make_node("Conv", ["x", "w"], ["y"]), weights) is None  # constant input
    assert quantizable_layer(helper.make_node("Conv", ["a", "w16"], ["y"]), weights) is None  # not float32
    assert quantizable_layer(helper.make_node("Conv", ["a", "computed"], ["y"]), weights) is None
    assert quantizable_layer(helper.make_node("Conv", ["a", "w"], ["y"], domain="custom"), weights) is None
    assert quantizable_layer(helper.make_node("MatMul", ["a", "wg"], ["y"]), weights) is None
    grouped = helper.make_node("Conv", ["a", "w1d"], ["y"], group=2)
    assert quantizable_layer(grouped, inits(w1d=np.ones((4, 1, 3), np.float32))) is None
    assert quantizable_layer(helper.make_node("Conv", ["a", "w"], ["y"], group=2), weights) == Layer(0, "conv")


def test_residual_add_joins_two_activations() -> None:
    bias = inits(b=np.zeros(4, np.float32))
    assert is_residual_add(helper.make_node("Add", ["a", "c"], ["s"]), bias)
    assert not is_residual_add(helper.make_node("Add", ["a", "b"], ["s"]), bias)
    assert not is_residual_add(helper.make_node("Sum", ["a", "c"], ["s"]), bias)
    assert not is_residual_add(helper.make_node("Add", ["a", "c"], ["s"], domain="custom"), bias)


def test_conv_depth_counts_the_longest_chain_of_layers() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Conv", ["r", "w"], ["c1"]),
        helper.make_node("Conv", ["c1", "w"], ["c2"]),
        helper.make_node("Add", ["c2", "r"], ["s"]),
        helper.make_node("Gemm", ["s", "wg"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)], [])
    depth = conv_depth(helper.make_model(graph))
    assert depth == {"r": 0, "c1": 1, "c2": 2, "s": 2, "y": 3}
