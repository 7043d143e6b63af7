"""Triton model configurations: written as text (with comments that say why), then checked the way Triton would.

Every ``config.pbtxt`` is parsed with Triton's own ``model_config.proto`` as ``tritonclient`` ships it
(``tritonclient.grpc.model_config_pb2`` + ``google.protobuf.text_format``): that catches syntax, unknown fields and
enum values. The proto cannot say what Triton refuses at load time for its meaning, so :func:`check_config` checks
those too (each seen refused by the 2.51 server): a name that differs from its folder, an input or output without
dims, preferred batch sizes above ``max_batch_size``, dynamic batching without a batch axis; and what would only
fail later: warm-up or ensemble steps that name tensors or models that do not exist.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

PLATFORMS = ("onnxruntime_onnx", "tensorrt_plan", "ensemble")
BACKENDS = ("python", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class Enum:
    """A protobuf enum value in text format (written bare, not quoted)."""

    name: str


Value = Any  # str | int | float | bool | Enum | list | dict: what render() takes


def _scalar(v: Value) -> str:
    if isinstance(v, Enum):
        return v.name
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid protobuf text string


def _inline(fields: Mapping[str, Value]) -> str:
    """``{ key: value ... }`` on one line (messages nest; repeated messages do not)."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            parts.append(f"{key} {_inline(value)}")
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            parts.append(f"{key} [{', '.join(_inline(v) for v in value)}]")
        elif isinstance(value, list):
            parts.append(f"{key}: [{', '.join(_scalar(v) for v in value)}]")
        else:
            parts.append(f"{key}: {_scalar(value)}")
    return "{ " + " ".join(parts) + " }"


def render(fields: Mapping[str, Value], indent: int = 0, width: int = 100) -> str:
    """Protobuf text format for nested dicts (messages), lists (repeated fields) and scalars; a message that fits
    in ``width`` columns goes on one line, as in Triton's documentation."""
    pad = "  " * indent
    lines = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            one = f"{pad}{key} {_inline(value)}"
            lines.append(one if len(one) <= width else f"{pad}{key} {{\n{render(value, indent + 1)}{pad}}}")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            items = []
            for v in value:
                one = f"{pad}  {_inline(v)}"
                items.append(one if len(one) <= width else f"{pad}  {{\n{render(v, indent + 2)}{pad}  }}")
            lines.append(f"{pad}{key} [\n" + ",\n".join(items) + f"\n{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(v) for v in value)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "".join(line + "\n" for line in lines)


def comment(text: str, width: int = 110) -> str:
    """``text`` as ``#`` comment lines, wrapped at ``width``."""
    lines = [wrapped for line in text.splitlines() for wrapped in (textwrap.wrap(line, width) or [""])]
    return "".join(f"# {line}\n".replace(" \n", "\n") for line in lines)


def parameters(values: Mapping[str, Value]) -> list[dict[str, Value]]:
    """Triton's ``parameters`` map (string values only), as a repeated key/value list."""
    return [
        {"key": k, "value": {"string_value": v if isinstance(v, str) else json.dumps(v)}} for k, v in values.items()
    ]


# ---------------------------------------------------------------------------------------------------- checking


def model_config_pb2() -> Any:
    """Triton's ``model_config_pb2`` from ``tritonclient``, or a one-line :class:`UserError` saying what to install."""
    try:
        from tritonclient.grpc import model_config_pb2
    except Exception as exc:  # not installed, or installed without its grpc part
        raise UserError(
            "Triton model configurations are checked with tritonclient's model_config.proto, which is not "
            f"importable here ({type(exc).__name__}: {exc}): pip install 'tritonclient[grpc]==2.51.0' "
            "(or resnet-deploy[serve])"
        ) from None
    return model_config_pb2


def parse_config(text: str, source: str) -> Any:
    """Parse ``config.pbtxt`` text into Triton's ``ModelConfig`` message (one line on a syntax error)."""
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    try:
        return text_format.Parse(text, pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise UserError(f"{source}: not a valid Triton model configuration ({exc})") from None


def check_config(
    text: str,
    folder: str,
    *,
    source: str | None = None,
    files: Collection[str] = (),
    models: Mapping[str, Any] | None = None,
) -> Any:
    """Parse and check one configuration for the model folder ``folder``; returns the ``ModelConfig`` message.

    ``files`` are the paths (relative to the model folder) the repository will hold, for ``label_filename``;
    ``models`` maps the repository's other model names to their parsed configs, for ensemble steps.
    """
    source = source or f"{folder}/config.pbtxt"
    config = parse_config(text, source)
    problems = _problems(config, folder, files, models or {})
    if problems:
        raise UserError(f"{source}: {problems[0]} (Triton would refuse it)")
    return config


def _problems(c: Any, folder: str, files: Collection[str], models: Mapping[str, Any]) -> list[str]:
    pb2 = model_config_pb2()
    out: list[str] = []
    if c.name != folder:
        out.append(f"name {c.name!r} differs from its folder {folder!r}")
    if c.platform and c.platform not in PLATFORMS:
        out.append(f"platform {c.platform!r} is none of {', '.join(PLATFORMS)}")
    if not c.platform and c.backend not in BACKENDS:
        out.append(f"backend {c.backend!r} is none of {', '.join(BACKENDS)}")
    if c.max_batch_size < 0:
        out.append(f"max_batch_size {c.max_batch_size} is negative")
    for what, tensors in (("input", c.input), ("output", c.output)):
        if not tensors:
            out.append(f"no {what}s")
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            out.append(f"{what} names repeat: {names}")
        for t in tensors:
            if not t.name:
                out.append(f"an {what} has no name")
            if t.data_type == pb2.TYPE_INVALID:
                out.append(f"{what} {t.name!r} has no data_type")
            if not t.dims:
                out.append(f"{what} {t.name!r} has no dims")
            if any(d == 0 or d < -1 for d in t.dims):
                out.append(f"{what} {t.name!r} has dims {list(t.dims)}: each must be -1 or positive")
            label = getattr(t, "label_filename", "")
            if label and label not in files:
                out.append(f"{what} {t.name!r} names label file {label!r}, which the folder does not hold")
    if c.HasField("dynamic_batching"):
        if c.max_batch_size == 0:
            out.append("dynamic batching needs max_batch_size > 0")
        for size in c.dynamic_batching.preferred_batch_size:
            if not 1 <= size <= c.max_batch_size:
                out.append(f"preferred batch size {size} is outside [1, max_batch_size {c.max_batch_size}]")
    for group in c.instance_group:
        if group.count < 1:
            out.append(f"instance group count {group.count} is below 1")
        if c.platform == "tensorrt_plan" and group.kind == pb2.ModelInstanceGroup.KIND_CPU:
            out.append("a tensorrt_plan cannot run on KIND_CPU instances")
    out += _warmup_problems(c)
    if c.platform == "ensemble":
        out += _ensemble_problems(c, models)
    return out


def _warmup_problems(c: Any) -> list[str]:
    out = []
    dims = {t.name: list(t.dims) for t in c.input}
    for w in c.model_warmup:
        if c.max_batch_size and not 1 <= w.batch_size <= c.max_batch_size:
            out.append(f"warm-up {w.name!r} has batch_size {w.batch_size}, outside [1, {c.max_batch_size}]")
        for name, value in w.inputs.items():
            if name not in dims:
                out.append(f"warm-up {w.name!r} feeds {name!r}, which is not an input")
            elif len(value.dims) != len(dims[name]) or any(
                a != b for a, b in zip(value.dims, dims[name], strict=True) if b != -1
            ):
                out.append(f"warm-up {w.name!r} gives {name!r} dims {list(value.dims)}, not {dims[name]}")
    return out


def _ensemble_problems(c: Any, models: Mapping[str, Any]) -> list[str]:
    out = []
    steps = c.ensemble_scheduling.step
    if not steps:
        out.append("an ensemble without steps")
    if c.instance_group:
        out.append("an ensemble has no instance groups")
    produced = {t.name for t in c.input}
    for step in steps:
        model = models.get(step.model_name)
        if model is None:
            out.append(f"step model {step.model_name!r} is not in the repository")
            continue
        if c.max_batch_size > model.max_batch_size:
            out.append(f"max_batch_size {c.max_batch_size} is above step {step.model_name!r}'s {model.max_batch_size}")
        ins, outs = {t.name for t in model.input}, {t.name for t in model.output}
        for key, tensor in step.input_map.items():
            if key not in ins:
                out.append(f"step {step.model_name!r} has no input {key!r}")
            if tensor not in produced:
                out.append(f"step {step.model_name!r} reads {tensor!r}, which no earlier step produces")
        for key, tensor in step.output_map.items():
            if key not in outs:
                out.append(f"step {step.model_name!r} has no output {key!r}")
            produced.add(tensor)
    out += [f"output {t.name!r} is produced by no step" for t in c.output if t.name not in produced]
    return out
