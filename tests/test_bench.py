"""Benchmark core: trtexec statistics, MAC counting, the report schema, and small real runs on ONNX Runtime.

No assertion here is about how fast anything is: timings only have to exist, be ordered and be consistent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
from resnet_deploy.backends.torch_eager import TorchModel
from resnet_deploy.benchmark import (
    BenchConfig,
    BenchmarkInterrupted,
    HostRunner,
    LatencyStats,
    Target,
    count_macs_onnx,
    count_macs_torch,
    load_json,
    parse_batches,
    percentile,
    plot,
    run_benchmark,
    to_markdown,
    validate_report,
    write_json,
    write_markdown,
)
from resnet_deploy.benchmark.core import check_batches
from resnet_deploy.benchmark.machine import cpu_peak_gflops, gpu_peak_gops, machine_info
from resnet_deploy.benchmark.stats import median
from resnet_deploy.build import export_onnx
from resnet_deploy.errors import UserError
from resnet_deploy.export import torch_to_onnx
from resnet_deploy.models.weights import load_model
from resnet_deploy.onnx_io import save_onnx

FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")

# ---------------------------------------------------------------------------------------------- statistics


def test_percentile_matches_trtexec_definition_by_hand() -> None:
    ten = [float(v) for v in range(1, 11)]
    # n=10: p90 excludes floor(0.1*10)=1 sample -> sorted[10-1-1] = 9; p95/p99 exclude 0 -> the max
    assert percentile(ten, 90) == 9.0
    assert percentile(ten, 95) == 10.0
    assert percentile(ten, 99) == 10.0
    assert percentile(ten, 50) == 5.0  # excludes 5 -> sorted[4]
    hundred = [float(v) for v in range(1, 101)]
    assert (percentile(hundred, 90), percentile(hundred, 95), percentile(hundred, 99)) == (90.0, 95.0, 99.0)
    seven = [float(v) for v in range(1, 8)]
    assert percentile(seven, 90) == 7.0  # floor(0.7) = 0 excluded
    assert percentile(seven, 50) == 4.0  # floor(3.5) = 3 excluded -> sorted[3]
    assert percentile([3.0], 99) == 3.0
    assert percentile(ten, 0) == 1.0  # excludes all 10 -> clamped to the first


def test_percentile_floor_is_exact_at_boundaries() -> None:
    # In binary floating point (1 - 0.9) * 10 = 0.9999999999999998, whose floor would drop nothing (index 9).
    assert math.floor((1 - 0.9) * 10) == 0
    assert percentile([float(v) for v in range(10)], 90) == 8.0


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile([], 90)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        median([])


def test_median_odd_and_even() -> None:
    assert median([1.0, 2.0, 9.0]) == 2.0
    assert median([1.0, 2.0, 4.0, 9.0]) == 3.0


def test_stats_on_a_known_list() -> None:
    s = LatencyStats.of([float(v) for v in [20, 1, 19, 2, 18, 3, 17, 4, 16, 5, 15, 6, 14, 7, 13, 8, 12, 9, 11, 10]])
    assert s.min == 1.0 and s.max == 20.0
    assert s.mean == 10.5
    assert s.median == 10.5
    assert s.p90 == 18.0  # n=20: excludes 2 -> sorted[17]
    assert s.p95 == 19.0  # excludes 1 -> sorted[18]
    assert s.p99 == 20.0  # excludes floor(0.2) = 0
    assert LatencyStats.of([5.0, 1.0, 3.0, 2.0, 4.0]).to_dict() == {
        "min": 1.0,
        "mean": 3.0,
        "median": 3.0,
        "p90": 5.0,
        "p95": 5.0,
        "p99": 5.0,
        "max": 5.0,
    }
    with pytest.raises(ValueError):
        LatencyStats.of([])


# ------------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("text,want", [("1,8,32", [1, 8, 32]), ("8, 1,8", [1, 8]), ("4", [4])])
def test_parse_batches(text: str, want: list[int]) -> None:
    assert parse_batches(text) == want


@pytest.mark.parametrize("text", ["", "0", "1,a", "1,,2", "-1", "1.5", "8;16"])
def test_parse_batches_rejects(text: str) -> None:
    with pytest.raises(UserError, match="bad batch list"):
        parse_batches(text)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"duration_s": 0.0}, "--duration"),
        ({"duration_s": -1.0}, "--duration"),
        ({"duration_s": float("nan")}, "--duration"),
        ({"duration_s": float("inf")}, "--duration"),
        ({"warmup_ms": -5.0}, "--warmup"),
        ({"min_iterations": 0}, "--min-iterations"),
        ({"threads": 0}, "--threads"),
        ({"batches": []}, "no batch sizes"),
        ({"batches": [0]}, "positive"),
    ],
)
def test_config_rejects(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UserError, match=match):
        BenchConfig(**kwargs).validate()  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- MACs


def _tiny_graph(batch: int | str = "N") -> onnx.ModelProto:
    """Grouped 3x3 conv (2 -> 4 channels, group 2, 8x8) then flatten and Gemm(transB) to 10 classes."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 1, 3, 3], rng.standard_normal(36).astype(np.float32))
    fc = helper.make_tensor("fc", TensorProto.FLOAT, [10, 256], rng.standard_normal(2560).astype(np.float32))
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], group=2, pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Flatten", ["c"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 2, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        [w, fc],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_mac_count_by_hand() -> None:
    c = count_macs_onnx(_tiny_graph())
    # conv: 4 x 8 x 8 outputs x (2/2 x 3 x 3) = 2304; gemm: 10 outputs x 256 = 2560
    assert c.by_op == {"Conv": 2304, "Gemm": 2560}
    assert c.total == 4864 and c.nodes == 2


@pytest.mark.slow
@pytest.mark.parametrize("arch,gmac", [("resnet18", 1.81), ("resnet50", 4.09)])
def test_mac_count_resnets_at_224(arch: str, gmac: float) -> None:
    model, info = load_model(arch)
    proto = torch_to_onnx(model, info)
    count = count_macs_onnx(proto)
    assert abs(count.gmac - gmac) / gmac < 0.01, count.gmac
    # An independent count from forward hooks on the torch modules gives the same number exactly.
    assert count.total == count_macs_torch(model, (1, 3, 224, 224)).total


def test_mac_count_of_a_qdq_graph_equals_float() -> None:
    """Q/DQ in front of Conv and Gemm (as the INT8 build writes them) does not change the count."""
    base = _tiny_graph()
    qdq = onnx.ModelProto()
    qdq.CopyFrom(base)
    g = qdq.graph
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zp = helper.make_tensor("z", TensorProto.INT8, [], [0])
    g.initializer.extend([scale, zp])
    new_nodes = [
        helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
    ]
    conv = g.node[0]
    conv.input[0], conv.input[1] = "xd", "wd"
    nodes = [*new_nodes, *g.node]
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(qdq)
    assert count_macs_onnx(qdq).total == count_macs_onnx(base).total


# ---------------------------------------------------------------------------------------------- machine


def test_cpu_peak_estimate_states_its_basis() -> None:
    peak, basis = cpu_peak_gflops({"avx2", "fma"}, 2, 2445.408)
    assert peak == pytest.approx(2 * 2.445408 * 32, abs=0.1)
    assert "32 FLOP/cycle" in basis and "2 cores" in basis
    assert cpu_peak_gflops({"avx512f", "avx2", "fma"}, 4, 2000.0)[0] == pytest.approx(4 * 2.0 * 64)
    assert cpu_peak_gflops({"sse4_2"}, 2, 2000.0)[0] is None
    assert cpu_peak_gflops({"avx2", "fma"}, 2, None)[0] is None


def test_gpu_peaks_from_anchors() -> None:
    assert gpu_peak_gops("NVIDIA H100 80GB HBM3", "int8")[0] == 1_979_000.0
    assert gpu_peak_gops("NVIDIA H100 80GB HBM3", "fp16")[0] == 989_000.0
    assert gpu_peak_gops("NVIDIA GeForce GTX 1080", "fp16")[0] is None


def test_machine_block_names_the_machine() -> None:
    m = machine_info(threads=2, note="shared")
    for key in ("cpu", "cores", "isa", "ram_gib", "os", "python", "onnxruntime", "torch"):
        assert key in m
    assert set(m["isa"]) >= {"avx2", "avx512_vnni"}
    assert m["note"] == "shared" and m["threads_used"] == 2


# ------------------------------------------------------------------------------------------------ runs


@pytest.fixture(scope="module")
def resnet20(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """resnet20 (CIFAR, 3 x 32 x 32, 10 classes, random weights): ONNX file plus the torch module and info."""
    module, info = load_model("resnet20", num_classes=10)
    proto, _ = export_onnx(module, info)
    path = tmp_path_factory.mktemp("bench") / "resnet20.onnx"
    save_onnx(proto, path)
    return path, module, info


def _targets(resnet20: tuple[Path, object, object]) -> list[Target]:
    path, module, info = resnet20
    ort = OnnxRuntimeModel(path, threads=1)
    macs = count_macs_onnx(onnx.load(str(path))).total
    return [
        Target("resnet20 fp32 onnxruntime", ort, str(path), group="r20", macs_per_image=macs),
        Target("resnet20 fp32 pytorch", TorchModel(module, info), "module", role="baseline", group="r20"),  # type: ignore[arg-type]
    ]


def test_tiny_real_run_writes_valid_json_markdown_plot(resnet20: tuple, tmp_path: Path) -> None:
    cfg = BenchConfig(batches=[1, 2], duration_s=0.2, warmup_ms=20, min_iterations=3, threads=1)
    updates: list[int] = []
    report = run_benchmark(_targets(resnet20), cfg, on_update=lambda r: updates.append(len(r.results)))
    assert updates == [2, 4]  # saved after each batch size
    rows = report.results
    assert [(r["model"], r["batch"]) for r in rows] == [
        ("resnet20 fp32 onnxruntime", 1),
        ("resnet20 fp32 pytorch", 1),
        ("resnet20 fp32 onnxruntime", 2),
        ("resnet20 fp32 pytorch", 2),
    ]
    for r in rows:
        assert r["iterations"] >= 3 and r["wall_s"] >= 0.2
        assert r["chunks"] >= 3  # interleaved: three rounds
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
    assert ort_row["vs_reference"]["median_latency_ratio"] == 1.0

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


def test_back_to_back_mode(resnet20: tuple) -> None:
    cfg = BenchConfig(batches=[1], duration_s=0.1, warmup_ms=0, min_iterations=2, interleave=False)
    report = run_benchmark(_targets(resnet20), cfg)
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


def test_batch_above_engine_max_and_fixed_batch_are_refused(resnet20: tuple, tmp_path: Path) -> None:
    model = OnnxRuntimeModel(resnet20[0])
    model.max_batch = 4  # what a TensorRT engine's profile sets; the ONNX model itself has none
    with pytest.raises(UserError, match="above the maximum batch 4"):
        check_batches([Target("engine-like", model)], [1, 8])
    model.min_batch = 2  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="below the minimum batch 2"):
        check_batches([Target("engine-like", model)], [1, 4])
    check_batches([Target("engine-like", model)], [2, 4])
    fixed_path = tmp_path / "fixed.onnx"
    onnx.save(_tiny_graph(batch=1), fixed_path)
    fixed = OnnxRuntimeModel(fixed_path)
    with pytest.raises(UserError, match="fixed batch of 1"):
        run_benchmark([Target("fixed", fixed)], BenchConfig(batches=[1, 2], duration_s=0.01))


def test_duplicate_labels_and_empty_runs_refused(resnet20: tuple) -> None:
    t = _targets(resnet20)[0]
    with pytest.raises(UserError, match="share a label"):
        run_benchmark([t, t], BenchConfig(duration_s=0.01))
    with pytest.raises(UserError, match="nothing to benchmark"):
        run_benchmark([], BenchConfig(duration_s=0.01))


def test_schema_validation_catches_broken_reports() -> None:
    good = {
        "machine": {"cpu": "x"},
        "results": [
            {
                "model": "m",
                "backend": "onnxruntime",
                "precision": "fp32",
                "batch": 1,
                "latency_ms": dict(min=1, mean=2, median=2, p90=3, p95=3, p99=4, max=5),
                "throughput_ips": 10.0,
            }
        ],
    }
    validate_report(good)
    assert "| m | onnxruntime | fp32 | 1 |" in to_markdown(good)
    for broken in (
        {"results": []},
        {"machine": {}, "results": [{"model": "m"}]},
        {"machine": {}, "results": [{**good["results"][0], "latency_ms": {"min": 1}}]},  # type: ignore[dict-item]
        {"machine": {}, "results": [{**good["results"][0], "batch": 0}]},  # type: ignore[dict-item]
        {
            "machine": {},
            "results": [
                {**good["results"][0], "latency_ms": dict(min=3, mean=2, median=2, p90=3, p95=3, p99=4, max=5)}
            ],  # type: ignore[dict-item]
        },
    ):
        with pytest.raises(ValueError):
            validate_report(broken)


@pytest.mark.skipif(not FMNIST.exists(), reason="Fashion-MNIST (Debian dataset-fashion-mnist) not installed")
def test_accuracy_and_agreement_in_the_same_report(tmp_path: Path) -> None:
    module, info = load_model("resnet20", num_classes=10, in_channels=1, input_size=28)
    proto, _ = export_onnx(module, info)
    targets = [
        Target("r20 fp32 onnxruntime", OnnxRuntimeModel(proto, threads=1), group="g"),
        Target("r20 fp32 pytorch", TorchModel(module, info), group="g"),
    ]
    cfg = BenchConfig(batches=[1], duration_s=0.05, warmup_ms=0, min_iterations=2, data="fashion-mnist:test")
    cfg.data_limit = 200
    report = run_benchmark(targets, cfg)
    acc = {a["model"]: a for a in report.accuracy}
    assert acc["r20 fp32 onnxruntime"]["reference"] is None  # the reference itself
    assert acc["r20 fp32 pytorch"]["reference"] == "r20 fp32 onnxruntime"
    assert acc["r20 fp32 pytorch"]["agreement_top1"] >= 99.0  # same weights, two runtimes
    assert acc["r20 fp32 pytorch"]["count"] == 200
    assert all("accuracy" in r for r in report.results)
    plot(report, tmp_path / "acc.png")
    assert "Accuracy on fashion-mnist:test" in to_markdown(report)


# ---------------------------------------------------------------------------------------------- scripts

SCRIPTS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_gpu_baselines_script_exits_cleanly_without_gpu(tmp_path: Path) -> None:
    import subprocess
    import sys

    from resnet_deploy.benchmark.gpu import cuda_available

    if cuda_available():
        pytest.skip("a GPU is visible: the script would measure")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "gpu_baselines.py"), "--out", str(tmp_path / "gpu")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0
    assert "no CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "gpu").exists()


def test_check_timing_script_on_a_tiny_report(resnet20: tuple, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = resnet20[0]
    t = Target("resnet20 fp32 onnxruntime", OnnxRuntimeModel(path, threads=1), str(path))
    report = run_benchmark([t], BenchConfig(batches=[1], duration_s=0.1, warmup_ms=0, min_iterations=3, threads=1))
    write_json(report, tmp_path / "bench.json")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "check_timing.py"), "--report", str(tmp_path / "bench.json")]
        + ["--duration", "0.1", "--min-iterations", "3", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "check_timing.json").read_text())
    (check,) = data["checks"]
    assert check["batch"] == 1 and check["bare_median_ms"] > 0 and check["same_time"]["tool_median_ms"] > 0
    assert "| resnet20 fp32 onnxruntime | 1 |" in (tmp_path / "check_timing.md").read_text()
