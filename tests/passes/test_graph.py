"""The passes' graph toolkit: the index, fresh names, node naming, and the clean-up helpers (order kept, one pass)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from resnet_deploy.passes.graph import (
    GraphIndex,
    UniqueNames,
    attribute,
    copy_model,
    default_opset,
    drop_unused_initializers,
    drop_value_info,
    in_default_domain,
    name_nodes,
    rebuild_nodes,
)


def small_model() -> onnx.ModelProto:
    """x -> Conv(w, b) -> y -> Relu -> r; Add(y, r) -> out; one initializer nothing reads."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y"], ["r"]),
        helper.make_node("Add", ["y", "r"], ["out"], name="add"),
    ]
    inits = [
        numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w"),
        numpy_helper.from_array(np.zeros(2, np.float32), "b"),
        numpy_helper.from_array(np.zeros(3, np.float32), "unused"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 4, 4])],
        inits,
        value_info=[helper.make_tensor_value_info(t, TensorProto.FLOAT, [1, 2, 4, 4]) for t in ("y", "r")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_index_maps_producers_and_readers() -> None:
    g = small_model().graph
    index = GraphIndex(g)
    assert index.producer["y"].name == "conv" and "x" not in index.producer
    assert [n.op_type for n in index.readers("y")] == ["Relu", "Add"]
    assert index.readers("nothing") == []
    assert set(index.initializers) == {"w", "b", "unused"} and index.outputs == {"out"}


def test_index_lists_a_node_once_per_slot_it_reads() -> None:
    g = small_model().graph
    g.node.append(helper.make_node("Mul", ["out", "out"], ["sq"]))
    assert [n.op_type for n in GraphIndex(g).readers("out")] == ["Mul", "Mul"]


def test_unique_names_skip_every_taken_name() -> None:
    names = UniqueNames.of(small_model().graph)
    assert names.fresh("y") == "y_1" and names.fresh("y") == "y_2"
    assert names.fresh("x") == "x_1" and names.fresh("w") == "w_1"  # graph inputs and initializers are taken too
    assert names.fresh("new") == "new" and names.fresh("new") == "new_1"


def test_name_nodes_names_every_node_uniquely_and_copies() -> None:
    model = small_model()
    model.graph.node.append(helper.make_node("Relu", ["out"], ["r2"], name="add"))
    named = name_nodes(model)
    assert [n.name for n in named.graph.node] == ["conv", "Relu_r", "add", "add_3"]
    assert model.graph.node[1].name == ""  # the input is untouched


def test_drop_unused_initializers_keeps_order_and_graph_outputs() -> None:
    model = small_model()
    g = model.graph
    g.initializer.insert(0, numpy_helper.from_array(np.ones(1, np.float32), "first_unused"))
    g.initializer.append(numpy_helper.from_array(np.ones(1, np.float32), "exposed"))
    g.output.append(helper.make_tensor_value_info("exposed", TensorProto.FLOAT, [1]))
    assert drop_unused_initializers(g) == 2
    assert [t.name for t in g.initializer] == ["w", "b", "exposed"]
    np.testing.assert_array_equal(numpy_helper.to_array(g.initializer[0]), np.ones((2, 1, 3, 3), np.float32))
    assert drop_unused_initializers(g) == 0


def test_drop_unused_initializers_on_a_wide_graph() -> None:
    """20,000 initializers, every other one unused: the right half goes, order kept. (Speed is not asserted: no
    test may depend on the machine's load; the one filtered rebuild replaced a quadratic per-tensor ``remove``.)"""
    count = 20_000
    g = helper.make_graph(
        [helper.make_node("Identity", [f"t{i}"], [f"o{i}"]) for i in range(0, count, 2)],
        "wide",
        [],
        [helper.make_tensor_value_info("o0", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.full(1, i, np.float32), f"t{i}") for i in range(count)],
    )
    assert drop_unused_initializers(g) == count // 2
    assert [t.name for t in g.initializer[:3]] == ["t0", "t2", "t4"]


def test_rebuild_and_drop_value_info() -> None:
    model = small_model()
    g = model.graph
    relu = g.node[1]
    rebuild_nodes(g, [n for n in g.node if n.op_type != "Relu"])
    assert [n.op_type for n in g.node] == ["Conv", "Add"]
    drop_value_info(g, {relu.output[0]})
    assert [v.name for v in g.value_info] == ["y"]


def test_copy_model_is_deep_and_small_readers() -> None:
    model = small_model()
    copy = copy_model(model)
    copy.graph.node[0].name = "changed"
    assert model.graph.node[0].name == "conv"
    assert attribute(model.graph.node[0], "pads", None) == [1, 1, 1, 1]
    assert attribute(model.graph.node[0], "group", 1) == 1
    assert default_opset(model) == 17
    del model.opset_import[:]
    assert default_opset(model) is None
    custom = helper.make_node("ResidualAddRelu", ["a", "b"], ["c"], domain="resnet_deploy")
    assert in_default_domain(model.graph.node[0]) and not in_default_domain(custom)
