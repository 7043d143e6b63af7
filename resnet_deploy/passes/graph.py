"""The small graph toolkit every pass uses: who produces and who reads each tensor, fresh names, and the clean-up a
rewrite ends with (new node list, unused initializers and stale ``value_info`` dropped), each one pass over the graph.

Nothing here looks inside subgraphs (If/Loop bodies): ResNet graphs have none, and the passes refuse nothing on
that ground, so a graph with subgraphs reading outer initializers is not safe to clean up with these helpers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import onnx
from onnx import helper

DEFAULT_DOMAINS = ("", "ai.onnx")


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy: passes rewrite the copy and never mutate their input."""
    return onnx.ModelProto.FromString(model.SerializeToString())


def in_default_domain(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is a standard ONNX op (not a custom-domain node or a local function call)."""
    return node.domain in DEFAULT_DOMAINS


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """The value of ``node``'s attribute ``name``, or ``default`` when it has none."""
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def default_opset(model: onnx.ModelProto) -> int | None:
    """The version of the default ONNX domain the model imports; None when it imports none."""
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return int(imp.version)
    return None


class GraphIndex:
    """Producer and readers of every tensor of one graph, found in one pass over its nodes.

    A snapshot: it describes the graph as it was when built, so build a new one after rewiring. ``consumers``
    lists a node once per input slot that reads the tensor.
    """

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.outputs: set[str] = {o.name for o in graph.output}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def readers(self, tensor: str) -> list[onnx.NodeProto]:
        """The nodes reading ``tensor`` (empty for a tensor nothing reads)."""
        return self.consumers.get(tensor, [])


class UniqueNames:
    """Hands out tensor and node names not yet taken: ``base``, else ``base_1``, ``base_2``, ..."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> UniqueNames:
        """The names already used in ``graph``: node outputs, graph inputs, initializers."""
        outputs = (name for node in graph.node for name in node.output)
        return cls([*outputs, *(i.name for i in graph.input), *(t.name for t in graph.initializer)])

    def fresh(self, base: str) -> str:
        """A name not taken yet, now taken."""
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names (Q/DQ plans and the calibration cache refer to nodes by name)."""
    model = copy_model(model)
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{node.output[0]}"
        if name in seen:
            name = f"{name}_{i}"
        node.name = name
        seen.add(name)
    return model


def rebuild_nodes(graph: onnx.GraphProto, nodes: Iterable[onnx.NodeProto]) -> None:
    """Replace ``graph``'s node list with ``nodes``, in that order."""
    nodes = list(nodes)
    del graph.node[:]
    graph.node.extend(nodes)


def drop_unused_initializers(graph: onnx.GraphProto) -> int:
    """Remove the initializers no node reads and no graph output names, keeping the others' order; returns how
    many went."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    dropped = len(graph.initializer) - len(kept)
    if dropped:
        del graph.initializer[:]
        graph.initializer.extend(kept)
    return dropped


def drop_value_info(graph: onnx.GraphProto, names: Collection[str]) -> None:
    """Remove the ``value_info`` of the tensors ``names`` (tensors a rewrite removed or retyped)."""
    if not names:
        return
    kept = [v for v in graph.value_info if v.name not in names]
    if len(kept) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(kept)
