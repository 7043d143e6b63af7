"""torchvision's own ONNX exports (``fixtures/*.skeleton.onnx``, made by ``benchmarks/export_torchvision.py``), with
their weights filled in from a seed: the graphs users bring, without torchvision or 100 MB files in the repository.

Weights follow torchvision's initialisation (Kaiming normal, fan-out, for convolutions; PyTorch's default uniform
for the classifier), BatchNorm parameters and statistics are random around their usual values, so activations and
the folded weights look like a trained network's, not like identity BatchNorms'. Each initializer's role is read
off the node that consumes it, through the Identity nodes the TorchScript exporter puts in front of shared
constants.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

FIXTURES = Path(__file__).parent / "fixtures"
GRAPHS = sorted(p.name.removesuffix(".skeleton.onnx") for p in FIXTURES.glob("torchvision_*.skeleton.onnx"))


def manifest() -> dict[str, object]:
    return json.loads((FIXTURES / "manifest.json").read_text())  # type: ignore[no-any-return]


def _roles(graph: onnx.GraphProto) -> dict[str, tuple[str, int]]:
    """initializer -> (op type, input index) of a node that reads it, looking through Identity nodes."""
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    roles: dict[str, tuple[str, int]] = {}
    for node in graph.node:
        if node.op_type == "Identity":
            continue
        for index, name in enumerate(node.input):
            while name in alias:
                name = alias[name]
            roles.setdefault(name, (node.op_type, index))
    return roles


def _values(role: tuple[str, int] | None, dims: list[int], rng: np.random.Generator) -> np.ndarray:
    shape = tuple(dims)
    op, index = role or ("", -1)
    if op == "Conv" and index == 1:
        fan_out = shape[0] * int(np.prod(shape[2:]))
        return rng.normal(0.0, np.sqrt(2.0 / fan_out), shape)
    if op == "Gemm":
        bound = 1.0 / np.sqrt(dims[-1] if index == 1 else 512)
        return rng.uniform(-bound, bound, shape)
    if op == "BatchNormalization":
        if index in (1, 4):  # scale, variance
            return rng.uniform(0.5, 1.5, shape)
        return rng.normal(0.0, 0.1, shape)  # bias, mean
    return rng.normal(0.0, 0.05, shape)  # conv biases of graphs whose BatchNorm the exporter folded


def load_graph(name: str, seed: int = 0) -> onnx.ModelProto:
    """The export ``name`` (see :data:`GRAPHS`) with weights from ``seed``."""
    model = onnx.load(str(FIXTURES / f"{name}.skeleton.onnx"))
    rng = np.random.default_rng(seed)
    roles = _roles(model.graph)
    for i, t in enumerate(model.graph.initializer):
        if t.HasField("raw_data") or len(t.float_data) or len(t.int64_data) or len(t.int32_data) or not t.dims:
            continue
        if t.data_type != onnx.TensorProto.FLOAT:
            raise AssertionError(f"{name}: stripped initializer {t.name} is not float32")
        values = _values(roles.get(t.name), list(t.dims), rng).astype(np.float32)
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values, t.name))
    onnx.checker.check_model(model)
    return model


def save_graph(name: str, path: Path, seed: int = 0) -> Path:
    onnx.save(load_graph(name, seed), str(path))
    return path
