"""Atomic output: write to a temporary file beside the destination, rename only on success."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError


def check_writable(dest: str | Path) -> Path:
    """Fail early, with one line, when ``dest`` cannot be created (missing folder, no permission, a directory)."""
    dest = Path(dest)
    if dest.is_dir():
        raise UserError(f"cannot write {dest}: it is a directory")
    parent = dest.parent if str(dest.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UserError(f"cannot write {dest}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise UserError(f"cannot write {dest}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {dest}: folder {parent} is not writable")
    return dest


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``dest`` only if the block finishes without error."""
    dest = check_writable(dest)
    # The writer's pid is in the name, so a later run can tell a killed run's leftover from a live writer's file
    # (:func:`clean_stale_temps`).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
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
