"""The measuring loop on real ONNX Runtime and PyTorch models: interleaving, Ctrl-C, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.benchmark import (
    BenchConfig,
    BenchmarkInterrupted,
    HostRunner,
    Target,
    load_json,
    plot,
    run_benchmark,
    validate_report,
    write_json,
    write_markdown,
)
from resnet_deploy.benchmark.core import check_batches
from resnet_deploy.errors import UserError


def test_tiny_real_run_writes_valid_json_markdown_plot(resnet20: tuple, tmp_path: Path, make_targets: Any) -> None:
    cfg = BenchConfig(batches=[1, 2], duration_s=0.2, warmup_ms=20, min_iterations=3, threads=1)
    updates: list[int] = []
    report = run_benchmark(make_targets(resnet20), cfg, on_update=lambda r: updates.append(len(r.results)))
    assert updates == [2, 4]  # saved after each batch size
    rows = report.results
    assert [(r["model"], r["batch"]) for r in rows] == [  # grouped by model, batches ascending (issue 16)
        ("resnet20 fp32 onnxruntime", 1),
        ("resnet20 fp32 onnxruntime", 2),
        ("resnet20 fp32 pytorch", 1),
        ("resnet20 fp32 pytorch", 2),
    ]
    for r in rows:
        assert r["iterations"] >= 3 and r["wall_s"] >= 0.2
        assert r["chunks"] >= 1  # how many depends on the machine's speed: see the fake-clock test below
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        # throughput is images / summed chunk wall time, consistent with the iteration count
        assert r["throughput_ips"] == pytest.approx(r["iterations"] * r["batch"] / r["wall_s"], rel=1e-3)
        assert r["vs_reference"]["reference"] == "resnet20 fp32 onnxruntime"
    ort_row = rows[0]
    assert ort_row["macs_per_image"] == 40_550_400 + 64 * 10  # convs + fc
    assert ort_row["achieved_gops"] == pytest.approx(
        2 * ort_row["macs_per_image"] * ort_row["throughput_ips"] / 1e9, rel=1e-3
    )
    assert ort_row["vs_reference"]["median_latency_ratio"] == 1.0 and ort_row["vs_reference"]["speedup"] == 1.0
    for r in rows:  # the speed-up is the reference's median over the row's: 2.0 = twice as fast
        ref = next(x for x in rows if x["model"] == "resnet20 fp32 onnxruntime" and x["batch"] == r["batch"])
        assert r["vs_reference"]["speedup"] == pytest.approx(
            ref["latency_ms"]["median"] / r["latency_ms"]["median"], rel=1e-3
        )
        assert r["latency_cv_percent"] == pytest.approx(
            100
            * np.std([t["latencyMs"] for t in _times(report, r)])
            / np.mean([t["latencyMs"] for t in _times(report, r)]),
            rel=1e-2,
            abs=0.02,
        )
        assert len(_times(report, r)) == r["iterations"]

    out_json, out_md, out_png = tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png"
    write_json(report, out_json)
    data = load_json(out_json)
    assert data["complete"] is True and data["machine"]["cpu"]
    assert set(data["results"][0]["latency_ms"]) == {"min", "mean", "median", "p90", "p95", "p99", "max"}
    write_markdown(report, out_md)
    md = out_md.read_text()
    assert "| resnet20 fp32 pytorch | pytorch | fp32 | 2 |" in md and data["machine"]["cpu"] in md
    plot(report, out_png)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def _times(report: Any, row: dict[str, Any]) -> list[dict[str, float]]:
    run = next(t for t in report.times if (t["model"], t["batch"]) == (row["model"], row["batch"]))
    return run["times"]  # type: ignore[no-any-return]


def test_back_to_back_mode(resnet20: tuple, make_targets: Any) -> None:
    cfg = BenchConfig(batches=[1], duration_s=0.1, warmup_ms=0, min_iterations=2, interleave=False)
    report = run_benchmark(make_targets(resnet20), cfg)
    assert all(r["chunks"] == 1 and r["iterations"] >= 2 for r in report.results)
    assert "back to back" in report.notes[0]


class _InterruptAt(HostRunner):
    """A real ONNX Runtime runner whose n-th step (counted over all batches) raises KeyboardInterrupt."""

    calls = 0

    def __init__(self, model: OnnxRuntimeModel, at: int, batch_seen: list[int]) -> None:
        super().__init__(model)
        self.at = at
        self.batch_seen = batch_seen

    def prepare(self, x: np.ndarray) -> None:
        super().prepare(x)
        self.batch_seen.append(x.shape[0])

    def step(self) -> None:
        if self.batch_seen[-1] == 4:
            raise KeyboardInterrupt
        super().step()


def test_ctrl_c_keeps_finished_batches(resnet20: tuple, tmp_path: Path) -> None:
    path = resnet20[0]
    model = OnnxRuntimeModel(path, threads=1)
    seen: list[int] = []
    t = Target("r20", model, make_runner=lambda: _InterruptAt(model, 0, seen))
    cfg = BenchConfig(batches=[1, 4], duration_s=0.05, warmup_ms=0, min_iterations=2)
    with pytest.raises(BenchmarkInterrupted) as exc:
        run_benchmark([t], cfg)
    report = exc.value.report
    assert report.interrupted and [r["batch"] for r in report.results] == [1]
    write_json(report, tmp_path / "partial.json")
    data = json.loads((tmp_path / "partial.json").read_text())
    assert data["complete"] is False and len(data["results"]) == 1
    validate_report(data)


def test_batch_above_engine_max_and_fixed_batch_are_refused(resnet20: tuple, tmp_path: Path, tiny_graph: Any) -> None:
    model = OnnxRuntimeModel(resnet20[0])
    model.max_batch = 4  # what a TensorRT engine's profile sets; the ONNX model itself has none
    with pytest.raises(UserError, match="above the maximum batch 4"):
        check_batches([Target("engine-like", model)], [1, 8])
    model.min_batch = 2  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="below the minimum batch 2"):
        check_batches([Target("engine-like", model)], [1, 4])
    check_batches([Target("engine-like", model)], [2, 4])
    fixed_path = tmp_path / "fixed.onnx"
    onnx.save(tiny_graph(batch=1), fixed_path)
    fixed = OnnxRuntimeModel(fixed_path)
    with pytest.raises(UserError, match="fixed batch of 1"):
        run_benchmark([Target("fixed", fixed)], BenchConfig(batches=[1, 2], duration_s=0.01))


def test_duplicate_labels_and_empty_runs_refused(resnet20: tuple, make_targets: Any) -> None:
    t = make_targets(resnet20)[0]
    with pytest.raises(UserError, match="share a label"):
        run_benchmark([t, t], BenchConfig(duration_s=0.01))
    with pytest.raises(UserError, match="nothing to benchmark"):
        run_benchmark([], BenchConfig(duration_s=0.01))


class _Ticks:
    """A clock that advances 1 ms per reading: the measuring loop then behaves the same on any machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.001
        return self.now


def test_interleaving_gives_every_target_its_rounds(
    resnet20: tuple, make_targets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round-robin chunks, checked against a fake clock: real models run, but no assertion depends on speed."""
    from resnet_deploy.benchmark import core

    monkeypatch.setattr(core, "time", _Ticks())
    cfg = BenchConfig(batches=[1], duration_s=0.3, warmup_ms=0, min_iterations=3, rounds=3, threads=1)
    report = run_benchmark(make_targets(resnet20), cfg)
    for r in report.results:
        assert r["chunks"] == 3 and r["wall_s"] >= 0.3 and r["iterations"] >= 3
    cfg.interleave = False
    assert all(r["chunks"] == 1 for r in run_benchmark(make_targets(resnet20), cfg).results)


def test_a_batch_this_machine_cannot_hold_is_refused_before_it_runs(resnet20: tuple, tiny_graph: Any) -> None:
    from resnet_deploy.benchmark.core import ACTIVATION_FACTOR, estimate_bytes
    from resnet_deploy.benchmark.targets import load_target

    target = load_target(str(resnet20[0]), threads=1)
    # resnet20 at 32x32: the first stage's 16 x 32 x 32 outputs are its largest activation
    assert target.activation_values == 16 * 32 * 32
    per_image = 3 * 32 * 32 * 4 + ACTIVATION_FACTOR * 16 * 32 * 32 * 4
    assert estimate_bytes(target, 1000) == 1000 * per_image
    gib = 1024**3  # a machine with 1 GiB available: 0.8 GiB may be planned
    check_batches([target], [1, 8, 1000], available=gib)
    with pytest.raises(UserError, match=r"batch 100000 needs about 27\.4 GB .* 0\.9 GB this machine can spare; use a "
                       r"smaller --batch \(about 3\d\d\d at most\)"):  # fmt: skip
        check_batches([target], [1, 100_000], available=gib)
    # two models measured together keep their memory at once
    check_batches([target], [3000], available=gib)
    with pytest.raises(UserError, match="of 2 model"):
        check_batches([target, target], [3000], available=gib)
    check_batches([target], [10**9], available=None)  # unknown memory: no estimate to refuse by


def _row(model: str, batch: int, median: float, cv: float = 1.0, group: str | None = "g") -> dict[str, Any]:
    lat = dict.fromkeys(("min", "mean", "median", "p90", "p95", "p99", "max"), median)
    return {"model": model, "batch": batch, "precision": "fp32" if "fp32" in model else "int8",
            "backend": "onnxruntime", "group": group, "latency_ms": lat, "throughput_ips": batch / median,
            "latency_cv_percent": cv}  # fmt: skip


def test_speedup_reads_the_usual_way_and_rows_group_by_model() -> None:
    from resnet_deploy.benchmark.groups import add_ratios, group_rows

    rows = [_row("a fp32", 1, 10.0), _row("a int8", 1, 5.0), _row("b fp32", 1, 3.0, group=None),
            _row("a fp32", 8, 40.0), _row("a int8", 8, 10.0), _row("b fp32", 8, 9.0, group=None)]  # fmt: skip
    add_ratios(rows)
    group_rows(rows, ["a fp32", "b fp32", "a int8"])  # the order the models were given
    assert [(r["model"], r["batch"]) for r in rows] == [
        ("a fp32", 1), ("a fp32", 8), ("a int8", 1), ("a int8", 8), ("b fp32", 1), ("b fp32", 8),
    ]  # fmt: skip  # a's group together (its int8 beside its fp32), then b
    speed = {(r["model"], r["batch"]): r["vs_reference"]["speedup"] for r in rows if "vs_reference" in r}
    assert speed == {("a fp32", 1): 1.0, ("a fp32", 8): 1.0, ("a int8", 1): 2.0, ("a int8", 8): 4.0}
    from resnet_deploy.benchmark.report import speedup_cell

    assert [speedup_cell(r) for r in rows[:4]] == ["1.00x (ref)", "1.00x (ref)", "2.00x", "4.00x"]
    old = {"model": "x", "vs_reference": {"reference": "y", "median_latency_ratio": 0.5}}  # a report from before
    assert speedup_cell(old) == "2.00x"


def test_noisy_runs_are_flagged() -> None:
    from resnet_deploy.benchmark.core import HOST_CV_WARN_PERCENT, noise_warnings

    quiet = {"loadavg_at_start": [0.1, 0.2, 0.2], "cores": 2}
    assert noise_warnings([_row("a", 1, 1.0, cv=HOST_CV_WARN_PERCENT)], quiet) == []
    busy = noise_warnings([_row("a", 1, 1.0)], {"loadavg_at_start": [1.5, 1.0, 1.0], "cores": 2})
    assert len(busy) == 1 and "load average 1.50 on 2 cores" in busy[0]
    noisy = noise_warnings([_row("a", 1, 1.0, cv=25.0), _row("b", 1, 1.0, cv=40.0), _row("c", 1, 1.0)], quiet)
    assert len(noisy) == 1 and "2 of 3 rows, worst b batch 1: 40.0 %" in noisy[0]
    gpu = _row("e", 4, 1.0)
    gpu["gpu"] = {"compute_cv_percent": 3.0}
    assert "GPU compute time is unstable" in noise_warnings([gpu], quiet)[0]
