"""The JSON sidecar written next to every engine (``model.engine`` -> ``model.engine.json``), and the checks
that run before an engine is deserialized.

A sidecar is untrusted input: it is size-limited, parsed as JSON, and every field is type-checked before use.
An engine is only handed to TensorRT when its sha256 matches the sidecar and the sidecar's TensorRT flavour,
version and GPU fit the running ones, so a tampered, swapped or foreign engine is refused with one clear line
instead of a crash inside TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..._io import atomic_write_text
from ...errors import UserError
from .compat import GpuInfo, TrtInfo

SIDECAR_FORMAT = "resnet-deploy-engine/1"
SIDECAR_SUFFIX = ".json"
MAX_SIDECAR_BYTES = 16 * 1024**2
MAX_ENGINE_BYTES = 8 * 1024**3
PRECISIONS = ("fp32", "fp16", "int8")
LAYER_SOURCES = ("engine_inspector", "network_definition")


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ schema check
# A tiny structural schema: a dict maps keys to (checker, required); checkers raise _Bad with a JSON path.


class _Bad(Exception):
    pass


Checker = Callable[[Any, str], None]


def _str(v: Any, p: str) -> None:
    if not isinstance(v, str) or len(v) > 4096:
        raise _Bad(f"{p} must be a string")


def _sha(v: Any, p: str) -> None:
    if not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise _Bad(f"{p} must be a lowercase hex sha256")


def _int(lo: int = 0, hi: int = 2**62) -> Checker:
    def check(v: Any, p: str) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _Bad(f"{p} must be an integer in [{lo}, {hi}]")

    return check


def _num(v: Any, p: str) -> None:
    # An int of thousands of digits makes math.isfinite raise OverflowError: bound ints before converting.
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(f"{p} must be a finite number")
    if isinstance(v, int) and not -(2**63) <= v < 2**63:
        raise _Bad(f"{p} is out of range")
    if not math.isfinite(v):
        raise _Bad(f"{p} must be a finite number")


def _bool(v: Any, p: str) -> None:
    if not isinstance(v, bool):
        raise _Bad(f"{p} must be true or false")


def _one_of(*choices: str) -> Checker:
    def check(v: Any, p: str) -> None:
        if v not in choices:
            raise _Bad(f"{p} must be one of {', '.join(choices)}")

    return check


def _nullable(inner: Checker) -> Checker:
    def check(v: Any, p: str) -> None:
        if v is not None:
            inner(v, p)

    return check


def _list(inner: Checker, max_len: int = 100_000) -> Checker:
    def check(v: Any, p: str) -> None:
        if not isinstance(v, list) or len(v) > max_len:
            raise _Bad(f"{p} must be a list")
        for i, item in enumerate(v):
            inner(item, f"{p}[{i}]")

    return check


def _obj(fields: dict[str, tuple[Checker, bool]], open_: bool = False) -> Checker:
    """A JSON object with the given fields; ``open_`` allows extra keys (free-form, scalar values only)."""

    def check(v: Any, p: str) -> None:
        if not isinstance(v, dict):
            raise _Bad(f"{p} must be an object")
        for key, (inner, required) in fields.items():
            if key in v:
                inner(v[key], f"{p}.{key}")
            elif required:
                raise _Bad(f"{p}.{key} is missing")
        extra = [k for k in v if k not in fields]
        if extra and not open_:
            raise _Bad(f"{p} has unknown key {extra[0]!r}")
        for k in extra:
            if not isinstance(k, str) or not (v[k] is None or isinstance(v[k], str | int | float | bool)):
                raise _Bad(f"{p}.{k} must be a scalar")

    return check


def _shape(v: Any, p: str) -> None:
    _list(_int(-1, 2**31), 8)(v, p)


_TENSOR = _obj({"name": (_str, True), "dtype": (_str, True), "shape": (_shape, True)})
_LAYER = _obj(
    {
        "name": (_str, True),
        "type": (_str, True),
        "precisions": (_list(_str, 64), True),
        "onnx_nodes": (_list(_str, 4096), True),
        "tactic": (_nullable(_str), False),
        "fused": (_nullable(_bool), False),
    }
)
SCHEMA: Checker = _obj(
    {
        "format": (_one_of(SIDECAR_FORMAT), True),
        "resnet_deploy_version": (_str, True),
        "created": (_str, True),
        "engine": (
            _obj({"file": (_str, True), "sha256": (_sha, True), "size": (_int(1, MAX_ENGINE_BYTES), True)}),
            True,
        ),
        "source_onnx": (_obj({"sha256": (_sha, True), "size": (_int(1), True)}), True),
        "model": (
            _obj(
                {
                    "arch": (_nullable(_str), True),
                    "name": (_nullable(_str), False),
                    "num_classes": (_nullable(_int(1, 10**7)), False),
                    "dataset": (_nullable(_str), False),
                    "labels": (_nullable(_list(_str)), False),
                    "top1": (_nullable(_num), False),
                }
            ),
            True,
        ),
        "precision": (_one_of(*PRECISIONS), True),
        "tensorrt": (_obj({"flavour": (_one_of("tensorrt", "tensorrt_rtx"), True), "version": (_str, True)}), True),
        "gpu": (_nullable(_obj({"name": (_str, True), "compute_capability": (_str, True)})), True),
        "input": (
            _obj(
                {
                    "name": (_str, True),
                    "dtype": (_str, True),
                    "shape": (_shape, True),
                    "min_shape": (_shape, True),
                    "opt_shape": (_shape, True),
                    "max_shape": (_shape, True),
                }
            ),
            True,
        ),
        "outputs": (_list(_TENSOR, 64), True),
        "preprocessing": (
            _obj(
                {
                    "layout": (_one_of("NCHW"), True),
                    "input_size": (_nullable(_int(1, 1 << 16)), True),
                    "in_channels": (_nullable(_int(1, 1 << 16)), True),
                    "mean": (_nullable(_list(_num, 64)), True),
                    "std": (_nullable(_list(_num, 64)), True),
                    "normalization": (_one_of("in_graph", "caller"), True),
                    "input_range": (_nullable(_str), False),
                }
            ),
            True,
        ),
        "calibration": (_nullable(_obj({"method": (_str, True), "cache_sha256": (_nullable(_str), False)})), True),
        "build_options": (_obj({}, open_=True), True),
        "layers": (
            _obj(
                {
                    "source": (_one_of(*LAYER_SOURCES), True),
                    "count": (_int(0), True),
                    "items": (_list(_LAYER), True),
                }
            ),
            True,
        ),
        "extra": (_obj({}, open_=True), False),
    }
)


def validate(obj: Any, source: str = "sidecar") -> dict[str, Any]:
    """Check a parsed sidecar against :data:`SCHEMA`; raises a one-line :class:`UserError` naming the field."""
    try:
        SCHEMA(obj, "$")
    except _Bad as exc:
        raise UserError(f"{source}: invalid engine sidecar ({exc})") from None
    return dict(obj)


def write(path: str | Path, data: dict[str, Any]) -> Path:
    """Validate and write a sidecar atomically (a bug that produced a bad one fails here, not at load time)."""
    validate(data, str(path))
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return Path(path)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes, source: str, what: str) -> Any:
    """Untrusted JSON as one-line errors: invalid UTF-8 or JSON, NaN/Infinity, integers beyond Python's digit
    limit (ValueError), nesting deeper than the parser's recursion limit (RecursionError) all become a
    :class:`UserError`; none escapes as a traceback."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise UserError(f"{source}: {what} is nested too deeply to be ours") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError, as is the int-digit limit
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"{source}: {what} is not valid JSON ({detail})") from None


def read(path: str | Path) -> dict[str, Any]:
    """Read and validate an untrusted sidecar file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"engine sidecar {path} not found")
    size = path.stat().st_size
    if size > MAX_SIDECAR_BYTES:
        raise UserError(f"{path}: engine sidecar is too large ({size} bytes)")
    obj = parse_json(path.read_bytes(), str(path), "engine sidecar")
    return validate(obj, str(path))


# -------------------------------------------------------------------------------------------- compatibility


def _version_tuple(v: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in v.split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def check_tensorrt(meta: dict[str, Any], running: TrtInfo, source: str) -> None:
    """Refuse an engine whose TensorRT flavour/version cannot run on ``running``.

    Exact version match is required, except for version-compatible engines, which TensorRT runs on the same
    or a later runtime of the same major version.
    """
    built = meta["tensorrt"]
    names = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}
    built_desc = f"{names[built['flavour']]} {built['version']}"
    if built["flavour"] != running.flavour:
        raise UserError(
            f"{source} was built with {built_desc}, but this machine runs {running.describe()}: "
            "rebuild the engine here (engines do not move between TensorRT flavours)"
        )
    if built["version"] == running.version:
        return
    if bool(meta["build_options"].get("version_compatible")):
        b, r = _version_tuple(built["version"]), _version_tuple(running.version)
        if b and r and b[0] == r[0] and r >= b:
            return
        raise UserError(
            f"{source} is a version-compatible engine from {built_desc}; it runs on the same or a later "
            f"{names[built['flavour']]} {b[0] if b else '?'}.x, not on {running.describe()}: rebuild it here"
        )
    raise UserError(
        f"{source} was built with {built_desc}, but this machine runs {running.describe()}: "
        "rebuild the engine here (or build with --version-compatible)"
    )


def _parse_cc(text: str) -> tuple[int, int] | None:
    parts = text.split(".")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def check_gpu(meta: dict[str, Any], running: GpuInfo | None, source: str) -> list[str]:
    """Refuse an engine built for another GPU; returns warnings for differences TensorRT tolerates."""
    built = meta["gpu"]
    if built is None or running is None:
        return []  # built without a GPU (TensorRT-RTX) or nothing to compare: TensorRT's own check decides
    built_cc = _parse_cc(built["compute_capability"])
    level = str(meta["build_options"].get("hardware_compat") or "none").lower()
    if built_cc is not None and built_cc != running.compute_capability:
        if level == "ampere_plus" and running.compute_capability >= (8, 0):
            return [f"{source} was built on {built['name']}; running it on {running.name} (Ampere+ compatible)"]
        raise UserError(
            f"{source} was built for {built['name']} (compute capability {built['compute_capability']}), "
            f"but this GPU is {running.name} ({running.cc_str}): rebuild the engine on this GPU"
            + ("" if level != "none" else " or build with --hardware-compat ampere_plus")
        )
    if built["name"] != running.name:
        return [f"{source} was built on {built['name']} and runs on {running.name}: it may not be the fastest"]
    return []


def is_stale(engine_path: str | Path, side: str | Path) -> bool:
    """True when the engine file was written after its sidecar. The builder writes the sidecar's temporary file
    after the engine's and renames it last, so in a complete pair the sidecar is never the older file."""
    try:
        return Path(engine_path).stat().st_mtime_ns > Path(side).stat().st_mtime_ns
    except OSError:
        return False


FOREIGN_WARNING = (
    "{path} has no sidecar {name} (built by trtexec, Polygraphy or another tool?): nothing could be verified -- "
    "not the TensorRT version or GPU it was built for, not its integrity, not its preprocessing; inputs are passed "
    "as given"
)


def _engine_file(engine_path: str | Path) -> Path:
    """``engine_path`` after checking it is a file of a size an engine can have (before anything reads it)."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise UserError(f"engine {engine_path} not found")
    size = engine_path.stat().st_size
    if size == 0 or size > MAX_ENGINE_BYTES:
        raise UserError(f"{engine_path} is not a TensorRT engine (size {size} bytes)")
    return engine_path


def read_foreign_engine(engine_path: str | Path) -> tuple[bytes, list[str]]:
    """(engine bytes, the warning) for an engine without a sidecar: read with the same size limits, never checked
    against anything (TensorRT's own deserialization is the only check left)."""
    engine_path = _engine_file(engine_path)
    warning = FOREIGN_WARNING.format(path=engine_path, name=sidecar_path(engine_path).name)
    return engine_path.read_bytes(), [warning]


def verify_engine_file(
    engine_path: str | Path,
    running: TrtInfo | None,
    gpu: GpuInfo | None,
    sidecar: str | Path | None = None,
) -> tuple[bytes, dict[str, Any], list[str]]:
    """Read ``engine_path`` and check it against its sidecar and the running TensorRT/GPU.

    Returns (engine bytes, validated sidecar, warnings). ``running=None`` skips the TensorRT check (inspection
    on a machine without TensorRT); the sha256 check always runs.
    """
    engine_path = _engine_file(engine_path)
    side = Path(sidecar) if sidecar is not None else sidecar_path(engine_path)
    if not side.is_file():
        raise UserError(
            f"{engine_path} has no sidecar {side.name}: resnet-deploy only loads engines it built (an interrupted "
            "build can leave an engine without one; rebuild with `resnet-deploy build --backend tensorrt`)"
        )
    meta = read(side)
    data = engine_path.read_bytes()
    if len(data) != meta["engine"]["size"] or sha256_bytes(data) != meta["engine"]["sha256"]:
        if is_stale(engine_path, side):
            raise UserError(
                f"{engine_path} does not match its sidecar {side.name}, which is older: the sidecar is stale (a build "
                "was interrupted before writing it, or the engine was replaced); rebuild it"
            )
        raise UserError(
            f"{engine_path} does not match its sidecar {side.name} (sha256 differs): the engine was modified "
            "or the sidecar belongs to another engine; rebuild it"
        )
    warnings: list[str] = []
    if running is not None:
        check_tensorrt(meta, running, str(engine_path))
        warnings += check_gpu(meta, gpu, str(engine_path))
    return data, meta, warnings
