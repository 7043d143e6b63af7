"""`resnet-deploy bench`: one-line errors for bad arguments, real short runs, Ctrl-C leaving a valid partial report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from resnet_deploy.build import export_onnx
from resnet_deploy.cli import main
from resnet_deploy.models.weights import load_model, save_checkpoint
from resnet_deploy.onnx_io import save_onnx


@pytest.fixture(scope="module")
def r20(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """resnet20 (3 x 32 x 32, 10 classes, random weights) as ONNX, and the same weights as a checkpoint."""
    d = tmp_path_factory.mktemp("benchcli")
    module, info = load_model("resnet20", num_classes=10)
    proto, _ = export_onnx(module, info)
    save_onnx(proto, d / "r20.onnx")
    net = module.net if hasattr(module, "net") else module
    save_checkpoint(d / "r20.safetensors", net, info)
    return d / "r20.onnx", d / "r20.safetensors"


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--batch", "1,x"], "bad batch list"),
        (["--batch", "0"], "bad batch list"),
        (["--duration", "0"], "--duration must be a positive"),
        (["--duration", "-2"], "--duration must be a positive"),
        (["--min-iterations", "0"], "--min-iterations"),
        (["--warmup", "-1"], "--warmup"),
        (["--json", "/nonexistent-dir/x.json"], "does not exist"),
    ],
)
def test_bad_arguments_one_line(
    r20: tuple[Path, Path], capsys: pytest.CaptureFixture[str], extra: list[str], match: str
) -> None:
    assert main(["bench", str(r20[0]), *extra]) == 2
    assert match in _err(capsys)


def test_missing_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["bench", str(tmp_path / "nope.onnx"), "--duration", "0.1"]) == 2
    assert "not found" in _err(capsys)


def test_fixed_batch_model_refuses_other_batches(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    onnx.save(model, tmp_path / "fixed.onnx")
    assert main(["bench", str(tmp_path / "fixed.onnx"), "--batch", "1,2", "--duration", "0.1"]) == 2
    assert "fixed batch of 1" in _err(capsys)


def test_real_run_with_baselines_writes_all_outputs(r20: tuple[Path, Path], tmp_path: Path) -> None:
    onnx_path, ckpt = r20
    out = tmp_path / "b"
    code = main(
        [
            "bench",
            str(onnx_path),
            "--batch",
            "1,2",
            "--duration",
            "0.2",
            "--warmup",
            "20",
            "--min-iterations",
            "3",
            "--threads",
            "1",
            "--baselines",
            "--weights",
            str(ckpt),
            "--json",
            f"{out}.json",
            "--markdown",
            f"{out}.md",
            "--plot",
            f"{out}.png",
            "--quiet",
            "--note",
            "test run",
        ]
    )
    assert code == 0
    data = json.loads(Path(f"{out}.json").read_text())
    assert data["complete"] is True and data["machine"]["note"] == "test run"
    combos = {(r["backend"], r["precision"], r["batch"], r["role"]) for r in data["results"]}
    # the model itself (ONNX Runtime FP32, also the group's reference) plus the PyTorch eager baseline
    assert combos == {
        ("onnxruntime", "fp32", 1, "model"),
        ("onnxruntime", "fp32", 2, "model"),
        ("pytorch", "fp32", 1, "baseline"),
        ("pytorch", "fp32", 2, "baseline"),
    }
    assert all(r["macs_per_image"] == 40_551_040 for r in data["results"])
    assert "| resnet20 fp32 pytorch | pytorch | fp32 | 2 |" in Path(f"{out}.md").read_text()
    assert Path(f"{out}.png").read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_as_model(
    r20: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The terminal gets a table drawn for it (no Markdown), fitted to its width."""
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["bench", str(r20[1]), "--duration", "0.1", "--min-iterations", "2", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "resnet20 fp32 pytorch" in line)
    assert row.startswith("│") and "| pytorch |" not in out and "speed-up vs FP32" in out and "CV %" in out


BENCH = ["--duration", "0.2", "--min-iterations", "3", "--warmup", "0", "--threads", "1"]


def test_json_flag_prints_the_report(r20: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``--json`` means what it means for every other command: the JSON report on stdout, nothing else there."""
    assert main(["bench", str(r20[0]), "--json", *BENCH]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "resnet-deploy-bench/1" and [r["batch"] for r in data["results"]] == [1]
    assert isinstance(data["results"][0]["latency_cv_percent"], float) and isinstance(data["warnings"], list)


def test_old_json_path_form_still_writes_the_file(
    r20: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", str(r20[0]), "--json", str(out), "--quiet", *BENCH]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"--json {out} is deprecated: use --output {out}" in captured.err
    assert json.loads(out.read_text())["results"]
    assert main(["bench", str(r20[0]), "-o", str(tmp_path / "c.json"), "--quiet", *BENCH]) == 0
    assert "deprecated" not in capsys.readouterr().err and json.loads((tmp_path / "c.json").read_text())["results"]


def test_export_times(r20: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--export-times``: every measured iteration (trtexec's --exportTimes), as many as the report counts."""
    times, report = tmp_path / "times.json", tmp_path / "r.json"
    argv = ["bench", str(r20[0]), "--batch", "1,2", "--export-times", str(times), "-o", str(report), "--quiet"]
    assert main([*argv, *BENCH]) == 0
    data, rows = json.loads(times.read_text()), json.loads(report.read_text())["results"]
    assert data["format"] == "resnet-deploy-times/1" and data["unit"] == "ms"
    assert [(r["model"], r["batch"]) for r in data["runs"]] == [(r["model"], r["batch"]) for r in rows]
    for run, row in zip(data["runs"], rows, strict=True):
        assert len(run["times"]) == row["iterations"]
        starts = [t["startMs"] for t in run["times"]]
        assert starts[0] == 0.0 and starts == sorted(starts)
        lat = sorted(t["latencyMs"] for t in run["times"])
        assert lat[0] == pytest.approx(row["latency_ms"]["min"], abs=1e-3)
        assert lat[-1] == pytest.approx(row["latency_ms"]["max"], abs=1e-3)


@pytest.mark.slow
def test_ctrl_c_writes_partial_json_and_exits_130(r20: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "partial.json"
    cmd = [sys.executable, "-m", "resnet_deploy", "bench", str(r20[0]), "--batch", "1,2", "--duration", "6"]
    cmd += ["--min-iterations", "1", "--warmup", "0", "--json", str(out), "--quiet", "--threads", "1"]
    # A shell that starts a job in the background (`cmd &`) makes it ignore SIGINT, and Python then installs no
    # KeyboardInterrupt handler: restore the default so the test means the same wherever the suite is started.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # The report is first written when batch 1 finishes (6 s); interrupt during batch 2.
        deadline = time.monotonic() + 240
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert out.exists(), proc.stderr.read() if proc.stderr else ""
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted" in err
    data = json.loads(out.read_text())
    assert data["complete"] is False
    assert [r["batch"] for r in data["results"]] == [1]


def test_runtime_openvino_measures_the_onnx_beside_an_onnxruntime_baseline(
    r20: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    onnx_path, ckpt = r20
    out = tmp_path / "ov.json"
    argv = ["bench", str(onnx_path), "--runtime", "openvino", "--duration", "0.2", "--warmup", "20"]
    argv += ["--min-iterations", "3", "--baselines", "--weights", str(ckpt), "--json", str(out), "--quiet"]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    combos = {(r["backend"], r["role"]) for r in data["results"]}
    assert combos == {("openvino", "model"), ("onnxruntime", "baseline"), ("pytorch", "baseline")}
    # the report says how many threads the CPU runtimes got, and why
    assert data["machine"]["threads_used"] >= 1 and "affinity mask" in data["machine"]["cpu_budget"]
    assert data["machine"]["onnxruntime_spinning"] is False


def test_bench_runs_each_graph_where_auto_recorded_unless_runtime_says(r20: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from resnet_deploy.info import RUNTIME_KEY
    from resnet_deploy.onnx_io import load_onnx, set_metadata

    onnx_path, _ = r20
    auto = save_onnx(set_metadata(load_onnx(onnx_path), {RUNTIME_KEY: "openvino"}), tmp_path / "auto.onnx")
    base = ["--duration", "0.1", "--warmup", "10", "--min-iterations", "2", "--quiet"]
    out = tmp_path / "b.json"
    assert main(["bench", str(auto), str(onnx_path), *base, "-o", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["backend"], r["model"].split()[-1]) for r in rows] == [
        ("openvino", "openvino"),  # the row and its label name the runtime that ran
        ("onnxruntime", "onnxruntime"),
    ]
    assert main(["bench", str(auto), *base, "--runtime", "onnxruntime", "-o", str(out)]) == 0
    assert [r["backend"] for r in json.loads(out.read_text())["results"]] == ["onnxruntime"]
