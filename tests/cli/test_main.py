"""The command line as a process: one line on stderr for bad input, fast help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_real_process_one_line_on_stderr(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: exit 2, one line, no traceback, no file."""
    out = tmp_path / "x.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "resnet_deploy", "export", "--arch", "resnet99", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("resnet-deploy export: error: unknown architecture 'resnet99'")
    assert not out.exists()


def test_help_is_fast_and_lists_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "resnet_deploy", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for cmd in ("models", "export", "infer", "inspect", "build", "eval", "bench"):
        assert cmd in proc.stdout
