"""What a model is, in one record that travels with it: checkpoint metadata -> ONNX metadata -> engine sidecar.

:class:`ModelInfo` and every conversion to and from its stored forms live here, torch-free, so that running an
``.onnx`` or an engine never needs PyTorch:

- checkpoints and ONNX ``metadata_props`` hold the same flat string map (:meth:`ModelInfo.to_metadata`,
  :meth:`ModelInfo.from_metadata`); in ONNX the keys carry the prefix :data:`METADATA_PREFIX`
  (:func:`to_onnx_props`, :func:`from_onnx_props`);
- an engine sidecar holds ``model`` and ``preprocessing`` sections (:func:`to_sidecar`, :func:`from_sidecar`);
- a foreign graph without any of these still tells its input layout (:func:`from_input_shape`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._io import parse_json
from .errors import UserError

CHECKPOINT_FORMAT = "resnet-deploy-checkpoint/1"
METADATA_PREFIX = "resnet_deploy."


@dataclass
class ModelInfo:
    """What travels with a model from checkpoint to ONNX metadata to engine sidecar."""

    arch: str
    num_classes: int = 1000
    in_channels: int = 3
    input_size: int = 224
    mean: list[float] | None = None  # normalisation inside the graph; None = the caller normalises
    std: list[float] | None = None
    dataset: str | None = None
    labels: list[str] | None = None
    name: str | None = None  # bundled checkpoint name
    top1: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def normalizes_in_graph(self) -> bool:
        return self.mean is not None and self.std is not None

    def to_metadata(self) -> dict[str, str]:
        """Flatten to string key/values (safetensors metadata, ONNX metadata_props)."""
        out = {"format": CHECKPOINT_FORMAT}
        for key, value in asdict(self).items():
            if value is None or key == "extra":
                continue
            out[key] = value if isinstance(value, str) else json.dumps(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str = "metadata") -> ModelInfo:
        """Parse and validate metadata written by :meth:`to_metadata` (untrusted: it comes from checkpoint and ONNX
        files); every value is bounded JSON and every number within :data:`LIMITS`."""
        if "arch" not in meta:
            raise UserError(f"{source}: no 'arch' in the checkpoint metadata")
        kwargs: dict[str, Any] = {"arch": meta["arch"]}

        def value(key: str) -> Any:
            try:
                return parse_json(meta[key], f"'{key}'", max_depth=2)
            except UserError as exc:
                raise _Malformed(str(exc)) from None

        try:
            for key in ("num_classes", "in_channels", "input_size"):
                if key in meta:
                    kwargs[key] = _integer(value(key), key)
            for key in ("mean", "std"):
                if key in meta:
                    kwargs[key] = [_number(v, key) for v in _list(value(key), key)]
            if "labels" in meta:
                kwargs["labels"] = [str(v) for v in _list(value("labels"), "labels")]
            if "top1" in meta:
                kwargs["top1"] = _number(value("top1"), "top1")
        except _Malformed as exc:
            raise UserError(f"{source}: malformed checkpoint metadata ({exc})") from None
        for key in ("dataset", "name"):
            if key in meta:
                kwargs[key] = meta[key]
        info = cls(**kwargs)
        info.validate(source)
        return info

    def validate(self, source: str = "metadata") -> None:
        """One line for a field out of its sane range (a class count of 10^12 would be a giant allocation)."""
        for key, (low, high) in LIMITS.items():
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
                raise UserError(f"{source}: {key} {_short(v)} is out of range ({low}..{high})")
        if (self.mean is None) != (self.std is None) or (
            self.mean is not None and self.std is not None and len(self.mean) != len(self.std)
        ):
            raise UserError(f"{source}: mean and std must both be given with the same length")
        if self.mean is not None and self.std is not None:
            if len(self.mean) not in (1, self.in_channels):
                raise UserError(f"{source}: {len(self.mean)} mean values for {self.in_channels} input channels")
            if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(v) and v > 0 for v in self.std):
                raise UserError(f"{source}: mean must be finite, std finite and positive: {self.mean}, {self.std}")
        if self.labels is not None and len(self.labels) > LIMITS["num_classes"][1]:
            raise UserError(f"{source}: {len(self.labels)} labels, more than any supported class count")
        if self.top1 is not None and not (math.isfinite(self.top1) and 0 <= self.top1 <= 100):
            raise UserError(f"{source}: top1 {self.top1} is not a percentage")


#: Sane ranges of the numeric fields: the largest public classification heads have ~22k classes (ImageNet-21k),
#: multispectral inputs a few dozen channels, and export already caps the input size at 4096.
LIMITS: dict[str, tuple[int, int]] = {"num_classes": (1, 100_000), "in_channels": (1, 512), "input_size": (1, 4096)}


class _Malformed(Exception):
    pass


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 24 else text[:20] + "..."


def _list(v: object, key: str) -> list[Any]:
    if not isinstance(v, list):
        raise _Malformed(f"{key} must be a list, got {type(v).__name__}")
    return v


def _integer(v: object, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Malformed(f"{key} must be an integer, got {_short(v)}")
    return v


def _number(v: object, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Malformed(f"{key} must hold numbers, got {_short(v)}")
    return float(v)


# ------------------------------------------------------------------------------------------ ONNX metadata_props


def to_onnx_props(info: ModelInfo, existing: Mapping[str, str] | None = None) -> dict[str, str]:
    """``existing`` ONNX metadata with our keys replaced by ``info``'s (prefixed :data:`METADATA_PREFIX`)."""
    meta = {k: v for k, v in (existing or {}).items() if not k.startswith(METADATA_PREFIX)}
    meta.update({METADATA_PREFIX + k: v for k, v in info.to_metadata().items()})
    return meta


def from_onnx_props(props: Mapping[str, str], source: str = "ONNX metadata") -> ModelInfo | None:
    """The :class:`ModelInfo` in ONNX ``metadata_props`` (as a dict), or None for a foreign ONNX file."""
    meta = {k.removeprefix(METADATA_PREFIX): v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
    return ModelInfo.from_metadata(meta, source) if "arch" in meta else None


#: The CPU runtimes that run an ``.onnx`` (``load(..., runtime=...)``, ``--runtime`` of eval and bench).
CPU_RUNTIMES = ("onnxruntime", "openvino")
#: The runtime ``build --backend auto`` measured faster on the graph, recorded beside precision and placement.
RUNTIME_KEY = METADATA_PREFIX + "runtime"


def recorded_runtime(props: Mapping[str, str], source: str = "ONNX metadata") -> tuple[str | None, str | None]:
    """(runtime, warning): the runtime :data:`RUNTIME_KEY` names in ONNX ``metadata_props``, one of
    :data:`CPU_RUNTIMES`, or None when absent. Any other value (from a newer resnet-deploy, or edited) is ignored
    with a one-line warning rather than refused: the graph itself is sound and the default runtime runs it."""
    value = props.get(RUNTIME_KEY)
    if value is None:
        return None, None
    if value in CPU_RUNTIMES:
        return value, None
    return None, (
        f"{source}: {RUNTIME_KEY} {_short(value)} is not a runtime resnet-deploy knows "
        f"({', '.join(CPU_RUNTIMES)}); ignored"
    )


# ------------------------------------------------------------------------------------------------ engine sidecar


def to_sidecar(info: ModelInfo | None, input_shape: Sequence[int]) -> dict[str, dict[str, Any]]:
    """The ``model`` and ``preprocessing`` sections of an engine sidecar; ``input_shape`` is the engine's NCHW."""
    normalized = info is not None and info.normalizes_in_graph
    return {
        "model": {
            "arch": info.arch if info else None,
            "name": info.name if info else None,
            "num_classes": info.num_classes if info else None,
            "dataset": info.dataset if info else None,
            "labels": info.labels if info else None,
            "top1": info.top1 if info else None,
        },
        "preprocessing": {
            "layout": "NCHW",
            "input_size": info.input_size if info else input_shape[-1],
            "in_channels": info.in_channels if info else input_shape[1],
            "mean": info.mean if info else None,
            "std": info.std if info else None,
            "normalization": "in_graph" if normalized else "caller",
            "input_range": "[0, 1]" if normalized else None,
        },
    }


def from_sidecar(meta: Mapping[str, Any]) -> ModelInfo | None:
    """The :class:`ModelInfo` a validated sidecar describes (None for an engine of a foreign ONNX graph)."""
    model, pre = meta["model"], meta["preprocessing"]
    if model["arch"] is None:
        return None
    in_graph = pre.get("normalization") == "in_graph"
    info = ModelInfo(arch=model["arch"], mean=pre["mean"] if in_graph else None, std=pre["std"] if in_graph else None)
    if model.get("num_classes") is not None:
        info.num_classes = model["num_classes"]
    if pre["in_channels"] is not None:
        info.in_channels = pre["in_channels"]
    if pre["input_size"] is not None:
        info.input_size = pre["input_size"]
    info.dataset, info.labels, info.name = model.get("dataset"), model.get("labels"), model.get("name")
    info.top1 = model.get("top1")
    info.validate("engine sidecar")
    return info


# ------------------------------------------------------------------------------------------------ foreign graphs


def from_input_shape(shape: Sequence[int | None]) -> ModelInfo | None:
    """What a graph with no metadata tells of itself: channels and size from a static square NCHW input."""
    if len(shape) == 4 and shape[1] is not None and shape[2] is not None and shape[2] == shape[3]:
        return ModelInfo(arch="unknown", in_channels=int(shape[1]), input_size=int(shape[2]))
    return None


def has_dynamic_hw(shape: Sequence[object]) -> bool:
    """Whether an N x C x H x W shape leaves H or W open (None, or a named dimension as inspect prints it)."""
    return len(shape) == 4 and not all(isinstance(d, int) for d in shape[2:])


def describe_or_shape(info: ModelInfo | None, shape: Sequence[int | None]) -> ModelInfo | None:
    """``info`` when the model carries it, else what its input shape tells (see :func:`from_input_shape`)."""
    return info if info is not None else from_input_shape(shape)
