"""Bundled checkpoint names resolve to files; anything else is a path that must exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.models.bundled import (
    bundled_checkpoints,
    is_bundled_name,
    read_safetensors_metadata,
    resolve_weights,
)


def test_names_and_paths(tmp_path: Path) -> None:
    path = resolve_weights("fmnist_resnet20")
    assert path == bundled_checkpoints()["fmnist_resnet20"] and path.is_file()
    assert is_bundled_name("fmnist_resnet20") and not is_bundled_name(Path("fmnist_resnet20"))
    assert read_safetensors_metadata(path)["arch"] == "resnet20"
    (tmp_path / "w.pth").write_bytes(b"x")
    assert resolve_weights(tmp_path / "w.pth") == tmp_path / "w.pth"
    with pytest.raises(UserError, match="not found .*fmnist_resnet20"):
        resolve_weights("no_such_model")
    with pytest.raises(UserError, match="is not a file"):
        resolve_weights(tmp_path)
