"""``--labels FILE``: one class name per line, validated before use."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_deploy.data.labels import check_label_count, read_labels
from resnet_deploy.errors import UserError


def test_names_one_per_line(tmp_path: Path) -> None:
    f = tmp_path / "labels.txt"
    f.write_bytes("\ufeffT-shirt/top\r\n  Trouser \nPullover\n\n\n".encode())  # BOM, CRLF, padding, trailing blanks
    assert read_labels(f) == ["T-shirt/top", "Trouser", "Pullover"]
    check_label_count(read_labels(f), 3, f, "m")
    with pytest.raises(UserError, match="names 3 classes; m has 10 outputs"):
        check_label_count(read_labels(f), 10, f, "m")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "no class names"),
        (b"\n\n", "no class names"),
        (b"a\n\nb\n", "line 2 is blank"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * 600 + b"\n", "line 1 is not a class name"),
    ],
)
def test_bad_files_are_one_line(tmp_path: Path, content: bytes, match: str) -> None:
    f = tmp_path / "labels.txt"
    f.write_bytes(content)
    with pytest.raises(UserError, match=match):
        read_labels(f)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        read_labels(tmp_path / "missing.txt")
    with pytest.raises(UserError):
        read_labels(tmp_path)
