"""The few facts running an ``.onnx`` needs, read straight off the protobuf wire format: no ``onnx`` import.

``import onnx`` costs about 110 ms (measured, benchmarks/results/startup.md), a third of a bare ONNX Runtime
start-up; a Jetson service pays it at every restart. Loading a model for inference only needs to know that it
names no external files, what our metadata says, and its precision, so this module walks the serialized
``ModelProto`` for exactly that (field numbers from ``onnx/onnx.proto``, which the ONNX project keeps stable) and
hands the bytes to ONNX Runtime, which parses and validates the graph itself.

The walk visits every tensor an ONNX file can hold: initializers, sparse initializers, tensor attributes of every
node (``Constant`` included), and every nested graph (``If``/``Loop``/``Scan`` bodies) and model-local function, to
any depth up to :data:`MAX_DEPTH`. Length-delimited fields it does not need (``raw_data``) are skipped by length,
so a model's weights are never copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ._io import check_input_file
from .errors import UserError

MAX_ONNX_BYTES = 2 * 1024**3  # protobuf's own limit; larger files would need external data, which we refuse
MAX_DEPTH = 16  # nested graphs: real models use a few; protobuf itself stops at 100 message levels (~33 graphs)
FLOAT16 = 10  # TensorProto.DataType.FLOAT16
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})

# Field numbers (onnx.proto). Model: graph 7, metadata_props 14, functions 25. Graph: node 1, initializer 5,
# sparse_initializer 15. Node: op_type 4, attribute 5. Attribute: name 1, i 3, t 5, g 6, tensors 10, graphs 11,
# sparse_tensor 22, sparse_tensors 23. Tensor: data_type 2, external_data 13, data_location 14. Sparse tensor:
# values 1, indices 2. String-string entry: key 1, value 2. Function: node 7.


class _Bad(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Bad("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> list[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of one message; length-delimited values as views, not copies."""
    out: list[tuple[int, int, int | memoryview]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Bad("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Bad("truncated field")
            out.append((number, wire, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _Bad(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise _Bad("truncated field")
    return out


def _text(value: int | memoryview) -> str:
    if not isinstance(value, memoryview):
        raise _Bad("expected a string")
    return bytes(value).decode("utf-8", errors="replace")


def _message(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise _Bad("expected a message")
    return value


@dataclass
class OnnxFacts:
    """What :func:`scan` found in a serialized model."""

    metadata: dict[str, str] = field(default_factory=dict)
    op_types: set[str] = field(default_factory=set)
    fp16_tensors: bool = False  # float16 initializers or Cast-to-float16
    external_tensors: int = 0
    nodes: int = 0
    has_graph: bool = False

    @property
    def precision(self) -> str:
        """'int8' for a Q/DQ graph, 'fp16' when float16 weights or casts are present, else 'fp32'
        (the same rule as :func:`resnet_deploy.onnx_io.graph_precision`)."""
        if self.op_types & QDQ_OPS:
            return "int8"
        return "fp16" if self.fp16_tensors else "fp32"


class _Scanner:
    def __init__(self) -> None:
        self.facts = OnnxFacts()

    def model(self, buf: memoryview) -> None:
        for number, _, value in _fields(buf):
            if number == 7:
                self.facts.has_graph = True
                self.graph(_message(value), 1)
            elif number == 14:
                entry = dict((n, _text(v)) for n, _, v in _fields(_message(value)) if n in (1, 2))
                self.facts.metadata[entry.get(1, "")] = entry.get(2, "")
            elif number == 25:
                for n, _, v in _fields(_message(value)):
                    if n == 7:
                        self.node(_message(v), 1)

    def graph(self, buf: memoryview, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Bad(f"graphs nested deeper than {MAX_DEPTH}")
        for number, _, value in _fields(buf):
            if number == 1:
                self.node(_message(value), depth)
            elif number == 5:
                self.tensor(_message(value), initializer=True)
            elif number == 15:
                self.sparse(_message(value))

    def node(self, buf: memoryview, depth: int) -> None:
        self.facts.nodes += 1
        op_type = ""
        attributes = []
        for number, _, value in _fields(buf):
            if number == 4:
                op_type = _text(value)
            elif number == 5:
                attributes.append(_message(value))
        self.facts.op_types.add(op_type)
        for attr in attributes:
            self.attribute(attr, op_type, depth)

    def attribute(self, buf: memoryview, op_type: str, depth: int) -> None:
        name, int_value = "", None
        for number, _, value in _fields(buf):
            if number == 1:
                name = _text(value)
            elif number == 3 and isinstance(value, int):
                int_value = value
            elif number in (5, 10):
                self.tensor(_message(value), initializer=False)
            elif number in (6, 11):
                self.graph(_message(value), depth + 1)
            elif number in (22, 23):
                self.sparse(_message(value))
        if op_type == "Cast" and name == "to" and int_value == FLOAT16:
            self.facts.fp16_tensors = True

    def sparse(self, buf: memoryview) -> None:
        for number, _, value in _fields(buf):
            if number in (1, 2):
                self.tensor(_message(value), initializer=False)

    def tensor(self, buf: memoryview, initializer: bool) -> None:
        for number, _, value in _fields(buf):
            if (number == 14 and value == EXTERNAL) or number == 13:
                self.facts.external_tensors += 1
                return
            if number == 2 and initializer and value == FLOAT16:
                self.facts.fp16_tensors = True


def scan(data: bytes, source: str = "the model") -> OnnxFacts:
    """Walk a serialized ONNX model; a one-line :class:`UserError` if it is not one or names external files."""
    try:
        scanner = _Scanner()
        scanner.model(memoryview(data))
    except (_Bad, RecursionError) as exc:
        raise UserError(f"{source} is not an ONNX model ({exc})") from None
    facts = scanner.facts
    if not facts.has_graph or not facts.nodes:
        raise UserError(f"{source} is not an ONNX model (no graph)")
    if facts.external_tensors:
        raise UserError(f"{source} keeps weights in external files, which resnet-deploy does not load")
    return facts


def read_model_file(path: str | Path) -> bytes:
    """The bytes of an ONNX file, refusing a missing, empty or oversized one, or one that is not a regular file
    (a FIFO would block the read), with one line."""
    path = check_input_file(path, "ONNX model")
    size = path.stat().st_size
    if size == 0 or size > MAX_ONNX_BYTES:
        raise UserError(f"{path} is not an ONNX model (size {size} bytes)")
    return path.read_bytes()


def _file_varint(f: BinaryIO) -> int:
    """:func:`_varint` at the file's position (a varint is at most 10 bytes), leaving the file just after it."""
    chunk = f.read(10)
    value, used = _varint(memoryview(chunk), 0)
    f.seek(used - len(chunk), os.SEEK_CUR)
    return value


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read from the model's top-level fields alone: the graph (the
    weights) is skipped by seeking past it, so choosing a runtime before loading costs a few reads, not a second
    pass over the file. Empty when the file does not parse that far: the full :func:`scan` that loading does then
    refuses it with the reason."""
    path = check_input_file(path, "ONNX model")
    meta: dict[str, str] = {}
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_ONNX_BYTES:
                return {}
            while f.tell() < size:
                key = _file_varint(f)
                number, wire = key >> 3, key & 7
                if number == 0:
                    raise _Bad("field number 0")
                if wire == 0:
                    _file_varint(f)
                    continue
                skip = {1: 8, 5: 4}.get(wire)
                if wire == 2:
                    skip = _file_varint(f)
                if skip is None or f.tell() + skip > size:
                    raise _Bad("unsupported wire type or truncated field")
                if number != 14:
                    f.seek(skip, os.SEEK_CUR)
                    continue
                entry = dict((n, _text(v)) for n, _, v in _fields(memoryview(f.read(skip))) if n in (1, 2))
                meta[entry.get(1, "")] = entry.get(2, "")
    except (_Bad, OSError):
        return {}
    return meta
