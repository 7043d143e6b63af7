"""Files in and out, as untrusted input and as outputs that can never destroy anything.

- Outputs (:func:`atomic_path`) are written to a temporary file beside the destination and renamed only on success.
  A destination must be absent or a regular file: a device node, FIFO, socket or directory is refused with one line
  and never replaced (``-o /dev/null`` run as root would otherwise turn the device into a regular file). A symlink
  is written through: its target is replaced, the link stays.
- Inputs (:func:`check_input_file`) must be regular files: reading a FIFO blocks forever and a device is not a file.
- No output may be an input or another output (:func:`check_no_collisions`), compared after resolving symlinks and
  by inode (hard links).
- JSON from files is parsed by :func:`parse_json`/:func:`read_json`: bounded size, nesting and integer length, no
  NaN or Infinity, one line for anything wrong instead of ``RecursionError`` or ``ValueError``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import UserError

MAX_JSON_DEPTH = 64  # our files nest 4 levels; a deeper document is not one of them
MAX_JSON_INT_DIGITS = 64  # far above any count or size we store, far below Python's 4300-digit conversion limit
MAX_JSON_BYTES = 64 * 1024**2


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, for messages."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # a path through a file: its parent check says so
        return None
    except OSError as exc:  # e.g. a symlink loop
        raise UserError(f"cannot use {path}: {exc.strerror or exc}") from None


def _resolved(path: str | Path) -> Path:
    """``path`` with every symlink resolved (also when it does not exist yet)."""
    return Path(os.path.realpath(path))


def check_writable(dest: str | Path) -> Path:
    """Fail early, with one line, when ``dest`` cannot be created or must not be replaced (missing folder, no
    permission, a directory, a device, a FIFO). Returns ``dest`` as a Path, as given."""
    dest = Path(dest)
    real = _resolved(dest)
    st = _stat(real)
    via = f" (a link to {real})" if real != dest.absolute() and dest.is_symlink() else ""
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UserError(f"cannot write {dest}{via}: it is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UserError(f"cannot write {dest}{via}: it is {_kind(st.st_mode)}, not a regular file")
    parent = real.parent
    pst = _stat(parent)
    if pst is not None and not stat.S_ISDIR(pst.st_mode):
        raise UserError(f"cannot write {dest}: {parent} is a file, not a folder")
    if pst is None:
        raise UserError(f"cannot write {dest}: folder {dest.parent if str(dest.parent) else '.'} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {dest}: folder {parent} is not writable")
    return dest


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``dest`` (a symlink's target) only if the block finishes
    without error and ``dest`` is then still absent or a regular file."""
    check_writable(dest)
    real = _resolved(dest)
    # The writer's pid is in the name, so a later run can tell a killed run's leftover from a live writer's file
    # (:func:`clean_stale_temps`).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{real.name}.{os.getpid()}.", suffix=".tmp", dir=real.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        # Checked again just before the rename: something may have appeared at ``real`` during a long build.
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            st = None
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise UserError(f"cannot write {dest}: it is now {_kind(st.st_mode)}, not a regular file; left it alone")
        os.replace(tmp, real)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(dest: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically."""
    return atomic_write_bytes(dest, text.encode("utf-8"))


# ------------------------------------------------------------------------------------------------------- inputs


def check_input_file(path: str | Path, what: str = "input") -> Path:
    """``path`` as a Path, after checking it names an existing regular file (through symlinks): one line for a
    missing file, a directory, a device or a FIFO (which would block the read forever)."""
    path = Path(path)
    st = _stat(path)
    if st is None:
        raise UserError(f"{what} {path} not found")
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file")
    return path


def _same_file(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


Named = Mapping[str, str | Path | None] | Iterable[tuple[str, str | Path | None]]


def _pairs(named: Named | None) -> list[tuple[str, Path]]:
    items = named.items() if isinstance(named, Mapping) else (named or [])
    return [(flag, Path(p)) for flag, p in items if p is not None]


def check_no_collisions(outputs: Named, inputs: Named | None = None) -> None:
    """Refuse, with one line naming both, an output that is the same file as another output or as an input
    (resolved symlinks, hard links). Names are what the user typed (``-o``, ``--save-logits``), as a mapping or
    (name, path) pairs; None paths are skipped. Inputs may name the same file as each other (``--calib-data`` and
    ``--eval-data`` may agree)."""
    outs, ins = _pairs(outputs), _pairs(inputs)
    for i, (flag, path) in enumerate(outs):
        for other, other_path in ins:
            if _same_file(path, other_path):
                raise UserError(
                    f"{flag} {path} is the same file as the input {other} {other_path}: refusing to overwrite an "
                    "input; write the output elsewhere"
                )
        for other, other_path in outs[:i]:
            if _same_file(path, other_path):
                raise UserError(f"{other} {other_path} and {flag} {path} name the same file: give each output its own")


# --------------------------------------------------------------------------------------------------------- JSON


class _BadJson(Exception):
    pass


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise _BadJson(f"an integer of {digits} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJson(f"number {text[:24]}{'...' if len(text) > 24 else ''} is out of range")
    return value


def _parse_constant(name: str) -> float:
    raise _BadJson(f"{name} is not a JSON number")


def _depth(doc: Any) -> int:
    """Nesting depth of a parsed document, without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in value)
    return deepest


def parse_json(text: str | bytes, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for untrusted text, with one-line :class:`UserError` s naming ``what`` (e.g. "calibration
    cache c.json") for malformed JSON, nesting deeper than ``max_depth``, integers longer than
    :data:`MAX_JSON_INT_DIGITS` digits, and NaN, Infinity or numbers beyond float range."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        doc = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except UnicodeDecodeError:
        raise UserError(f"{what} is not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise UserError(f"{what}: JSON nested deeper than {max_depth} levels") from None
    except _BadJson as exc:
        raise UserError(f"{what}: JSON holds {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if _depth(doc) > max_depth:
        raise UserError(f"{what}: JSON nested deeper than {max_depth} levels")
    return doc


def read_json(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Read and :func:`parse_json` a regular file of at most ``max_bytes``; ``what`` names it in messages
    ("calibration cache" -> "calibration cache c.json not found")."""
    path = check_input_file(path, what)
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError(f"{what} {path} is too large to be one ({size} bytes; at most {max_bytes})")
    return parse_json(path.read_bytes(), f"{what} {path}", max_depth)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def clean_stale_temps(dest: str | Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left beside ``dest`` in runs that were killed (their writer's
    pid no longer exists); returns what was removed. A live writer's temporary file is never touched."""
    dest = Path(dest)
    folder = dest.parent if str(dest.parent) else Path(".")
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.(\d+)\.[^/]+\.tmp")
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        try:
            if entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed.append(entry)
        except OSError:
            pass
    return removed
