"""Class names from a text file, one per line (line i names class i), as ``--labels FILE`` takes them."""

from __future__ import annotations

from pathlib import Path

from .._io import check_input_file
from ..errors import UserError
from ..info import LIMITS

MAX_BYTES = 16 * 2**20  # ImageNet-21k's 21,841 names fit in 1 MB
MAX_LABEL_CHARS = 500


def read_labels(path: str | Path) -> list[str]:
    """The class names in ``path`` (UTF-8, a BOM allowed): surrounding whitespace stripped, trailing blank lines
    dropped; a blank line between names, a name over :data:`MAX_LABEL_CHARS` or more names than any supported class
    count is a one-line :class:`UserError`."""
    path = check_input_file(path, "--labels")
    if path.stat().st_size > MAX_BYTES:
        raise UserError(f"--labels {path} is over {MAX_BYTES // 2**20} MB: not a list of class names")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"--labels {path} is not UTF-8 text (byte {exc.start})") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise UserError(f"--labels {path} holds no class names (one per line)")
    for i, line in enumerate(lines, 1):
        if not line:
            raise UserError(f"--labels {path}: line {i} is blank; every class needs a name (line 1 names class 0)")
        if len(line) > MAX_LABEL_CHARS or "\x00" in line:
            raise UserError(f"--labels {path}: line {i} is not a class name (over {MAX_LABEL_CHARS} characters)")
    if len(lines) > LIMITS["num_classes"][1]:
        raise UserError(f"--labels {path}: {len(lines)} names, more than any supported class count")
    return lines


def check_label_count(labels: list[str], num_classes: int, path: str | Path, model: str) -> None:
    """One line when the file names a different number of classes than the model has outputs."""
    if len(labels) != num_classes:
        raise UserError(f"--labels {path} names {len(labels)} classes; {model} has {num_classes} outputs")
