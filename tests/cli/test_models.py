"""`resnet-deploy models`: the catalogue as JSON and as a table."""

from __future__ import annotations

import json
import re

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


@pytest.mark.parametrize("columns", [80, 60, 40])
def test_models_table_fits_narrow_consoles(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    """Issue 16: at 80 columns (and narrower) every name and parameter count is printed whole, no line too long."""
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= columns
    words = set(re.split(r"[\s:│,]+", out))  # whole names, in a table cell or heading a record
    for name in ARCHITECTURES:
        assert name in words, name
        assert f"{parameter_count(name, ARCHITECTURES[name].default_num_classes):,}" in out, name
    for c in json.loads(_json_catalog(capsys))["checkpoints"]:
        assert c["name"] in words and f"{c['top1']:.2f} %" in out


def _json_catalog(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["models", "--json"]) == 0
    return capsys.readouterr().out


def test_wide_console_keeps_every_column(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "description" in out and "fashion-mnist" in out and "left out" not in out
