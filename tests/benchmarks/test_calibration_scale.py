"""benchmarks/calibration_scale.py end to end on tiny settings: ours and ONNX Runtime's quantize_static (the peers'
venv is not part of CI), each child's own peak RSS, the JSON/Markdown/plot it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "calibration_scale.py"


@pytest.mark.slow
def test_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "scale"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "resnet18", "--size", "64", "--images", "2,4"]
        + ["--tools", "ours,ours_npy,ort", "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["machine"]["cpu"] and report["settings"]["images"] == [2, 4]
    runs = report["runs"]
    assert len(runs) == 6 and all(r["rc"] == 0 for r in runs), runs
    # each child's own peak, not the parent's (which has exported the model and is far larger than a tiny build)
    assert all(50 < r["peak_rss_mb"] < 2000 for r in runs)
    ours = [r for r in runs if r["tool"] == "ours"]
    assert [r["batch_size"] for r in ours] == [2, 4] and all(r["calibration_seconds"] > 0 for r in ours)
    md = out.with_suffix(".md").read_text()
    assert "| images | ours | ours_npy | ort |" in md and "our peak at 4 images is" in md
    assert out.with_suffix(".png").stat().st_size > 10_000
