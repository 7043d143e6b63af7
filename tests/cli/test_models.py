"""`resnet-deploy models`: the catalogue as JSON and as a table."""

from __future__ import annotations

import json

import pytest

from resnet_deploy.api import parameter_count
from resnet_deploy.cli import main
from resnet_deploy.models import ARCHITECTURES


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    archs = {a["name"]: a for a in data["architectures"]}
    assert set(archs) == set(ARCHITECTURES)
    assert archs["resnet18"]["parameters"] == 11_689_512 and archs["resnet18"]["num_classes"] == 1000
    assert archs["resnet152"]["parameters"] == 60_192_808 and archs["resnet152"]["block"] == "bottleneck"
    assert archs["resnet20"]["parameters"] == 269_722 and archs["resnet20"]["input_size"] == 32
    assert all(a["parameters"] == parameter_count(a["name"], a["num_classes"]) for a in archs.values())
    assert isinstance(data["checkpoints"], list)
    for c in data["checkpoints"]:  # bundled ones (trained while this was written) must describe themselves
        assert c["error"] is None and c["arch"] in ARCHITECTURES and c["dataset"]


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet50_small" in out and "25,557,032" in out and "11,689,512" in out
    assert ("Bundled checkpoints" in out) != ("No bundled checkpoints" in out)
