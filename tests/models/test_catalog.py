"""`resnet-deploy models` data: architectures with counts, bundled checkpoints described from their metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from resnet_deploy.models import bundled
from resnet_deploy.models.catalog import list_architectures, list_checkpoints, models_catalog
from resnet_deploy.models.registry import parameter_count


def test_architectures_carry_their_counts() -> None:
    entries = {a.name: a for a in list_architectures()}
    assert entries["resnet50"].parameters == 25_557_032 == parameter_count("resnet50")
    assert entries["resnet20"].num_classes == 10 and entries["resnet18"].input_size == 224


def test_bundled_checkpoints_are_described_without_loading_tensors() -> None:
    entries = {c.name: c for c in list_checkpoints()}
    assert entries["fmnist_resnet20"].arch == "resnet20" and entries["fmnist_resnet20"].dataset == "fashion-mnist"
    assert entries["fmnist_resnet20"].top1 is not None and entries["fmnist_resnet20"].error is None
    assert set(models_catalog()) == {"architectures", "checkpoints"}


def test_a_damaged_checkpoint_is_listed_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(bundled.bundled_checkpoints()["fmnist_resnet20"], tmp_path / "good.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{nonsense")
    monkeypatch.setattr(bundled, "BUNDLED_DIR", tmp_path)
    entries = {c.name: c for c in list_checkpoints()}
    assert entries["good"].arch == "resnet20"
    assert entries["broken"].arch is None and entries["broken"].error
