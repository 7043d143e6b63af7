"""Progress and logs of long commands (issue 16): one line per stage for CI logs, the libraries' logs on --verbose,
and nothing on stderr by default when it is not a terminal (a failing command's stderr is its one error line)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from resnet_deploy.cli import main


def test_build_lines_one_per_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-o", str(tmp_path / "m.onnx"), "--progress", "lines"]) == 0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    stages = [re.match(r"resnet-deploy build: \[(\w+)\] ", line) for line in lines[:-1]]
    assert all(stages), lines
    names = [m.group(1) for m in stages if m]
    assert names[0] == "export" and "simplify" in names and names[-1] == "write"
    assert len(names) == len(set(names))  # one line per stage, not one per update
    assert re.fullmatch(r"resnet-deploy build: done in \d+\.\d s", lines[-1])
    assert "wrote ONNX" in out  # the summary is still on stdout


def test_no_stderr_by_default_when_piped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-o", str(tmp_path / "m.onnx")]) == 0
    assert capsys.readouterr().err == ""
    assert main(["export", "--weights", "fmnist_resnet20", "-o", str(tmp_path / "e.onnx"), "--progress", "lines"]) == 0
    err = capsys.readouterr().err
    assert "resnet-deploy export: [export] loading fmnist_resnet20" in err and "[simplify]" in err


def test_verbose_shows_the_tensorrt_builder_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet_deploy.backends.tensorrt import compat

    if compat.available() is None:
        pytest.skip("neither TensorRT nor TensorRT-RTX is installed")
    out = tmp_path / "m.engine"
    assert main(["build", "--backend", "tensorrt", "-o", str(out), "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "TensorRT [VERBOSE]" in err and "TensorRT [INFO]" in err  # the builder's own log, every severity
    assert main(["build", "--backend", "tensorrt", "-o", str(tmp_path / "q.engine")]) == 0
    assert "TensorRT [" not in capsys.readouterr().err  # without --verbose: only the summary's warnings


def test_tensorrt_warnings_are_summarised() -> None:
    from resnet_deploy.build.result import MAX_TENSORRT_WARNINGS, BuildResult

    class Engine:
        warnings = [f"warning {i}" for i in range(MAX_TENSORRT_WARNINGS + 4)]
        sidecar_path = "m.engine.json"

    result = BuildResult(output=Path("m.engine"), backend="tensorrt", precision="fp32", info=None, source="x")
    result.engine = Engine()  # type: ignore[assignment]
    lines = [line for line in result.summary_lines() if line.startswith("WARNING: TensorRT")]
    assert len(lines) == MAX_TENSORRT_WARNINGS + 1 and "4 more warning(s)" in lines[-1] and "--verbose" in lines[-1]


def test_verbose_shows_onnxruntime_log_of_every_session(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # ONNX Runtime logs from C++ to file descriptor 2: capfd, not capsys
    argv = ["build", "--weights", "fmnist_resnet20", "--precision", "int8", "--calib-samples", "16"]
    argv += ["--calib-check", "16", "-o", str(tmp_path / "v.onnx")]
    assert main([*argv, "--verbose"]) == 0
    err = capfd.readouterr().err
    # calibration, the INT8 check on calibration images, the final load of the result
    assert err.count("Initializing session.") == 3, err[-2000:]
    assert main(argv) == 0
    assert "Initializing session." not in capfd.readouterr().err
