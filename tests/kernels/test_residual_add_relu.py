"""The kernels' per-element arithmetic (kernels/residual_add_relu_math.h), compiled for the CPU and run for real,
against numpy, PyTorch and ONNX Runtime's DequantizeLinear -> Add -> Relu -> QuantizeLinear.

INT8 must match ONNX QuantizeLinear exactly: v = max(sa*a + sb*b, 0) in float32, q = saturate(rint(v / sy)),
round half to even, saturate to [-128, 127]. Every (a, b) int8 pair is tried for each scale triple.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

KERNELS = Path(__file__).resolve().parents[2] / "kernels"


def _cuda_include() -> Path | None:
    nvcc = shutil.which("nvcc")
    candidates = [Path("/usr/local/cuda/include")]
    if nvcc:
        real = Path(nvcc).resolve()
        candidates.insert(0, real.parent.parent / "include")
        # /usr/local/bin/nvcc may be a wrapper script: ask the real one where it lives.
        out = subprocess.run([nvcc, "-dryrun", "-E", "-x", "cu", "/dev/null"], capture_output=True, text=True)
        for line in (out.stdout + out.stderr).splitlines():
            if "TOP=" in line:
                candidates.insert(0, Path(line.split("TOP=", 1)[1].strip()) / "include")
    return next((c for c in candidates if (c / "cuda_fp16.h").is_file()), None)


def _compile(source: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernels/ host program built with g++ and -ffp-contract=off, as CMakeLists.txt builds it."""
    gxx = shutil.which("g++")
    include = _cuda_include()
    if gxx is None:
        pytest.skip("g++ is not installed")
    if include is None:
        pytest.skip("CUDA headers (cuda_fp16.h) not found")
    exe = tmp_path_factory.mktemp("host_tools") / Path(source).stem
    cmd = [gxx, "-O2", "-std=c++17", "-ffp-contract=off", f"-I{KERNELS}", f"-I{include}", str(KERNELS / source)]
    subprocess.run([*cmd, "-o", str(exe)], check=True, capture_output=True)
    return exe


@pytest.fixture(scope="module")
def host_ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile("host_ref.cpp", tmp_path_factory)


def test_work_split_over_simulated_grids(tmp_path_factory: pytest.TempPathFactory) -> None:
    """kernels/host_grid_test.cpp runs every thread of many grids on the CPU: all elements right, nothing written
    outside y, and the 16-byte vector path taken exactly when a, b, y share their offset modulo 16."""
    exe = _compile("host_grid_test.cpp", tmp_path_factory)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ") and int(proc.stdout.split()[1]) > 5000


def _run(exe: Path, tmp: Path, mode: str, a: np.ndarray, b: np.ndarray, scales: tuple[float, ...] = ()) -> np.ndarray:
    (tmp / "a.bin").write_bytes(a.tobytes())
    (tmp / "b.bin").write_bytes(b.tobytes())
    args = [str(exe), mode, str(a.size), str(tmp / "a.bin"), str(tmp / "b.bin"), str(tmp / "y.bin")]
    args += [float(np.float32(s)).hex() for s in scales]  # hex floats: exact round trip of the float32 scales
    subprocess.run(args, check=True, capture_output=True)
    return np.frombuffer((tmp / "y.bin").read_bytes(), dtype=a.dtype)


# --- INT8 ------------------------------------------------------------------------------------------------------


def _all_int8_pairs() -> tuple[np.ndarray, np.ndarray]:
    grid = np.arange(-128, 128, dtype=np.int8)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    return a.ravel().copy(), b.ravel().copy()


def _numpy_int8(a: np.ndarray, b: np.ndarray, sa: float, sb: float, sy: float) -> np.ndarray:
    f32 = np.float32
    v = a.astype(f32) * f32(sa) + b.astype(f32) * f32(sb)  # float32 products and sum, no FMA
    v = np.maximum(v, f32(0))
    return np.clip(np.rint(v / f32(sy)), -128, 127).astype(np.int8)  # np.rint: half to even


def _ort_int8(a: np.ndarray, b: np.ndarray, sa: float, sb: float, sy: float) -> np.ndarray:
    """ONNX Runtime running the unfused Q/DQ pattern, graph optimisations off (no QLinearAdd rewrite)."""
    zp = numpy_helper.from_array(np.array(0, dtype=np.int8), "zp")
    inits = [numpy_helper.from_array(np.array(s, dtype=np.float32), n) for s, n in ((sa, "sa"), (sb, "sb"), (sy, "sy"))]
    nodes = [
        helper.make_node("DequantizeLinear", ["a", "sa", "zp"], ["fa"]),
        helper.make_node("DequantizeLinear", ["b", "sb", "zp"], ["fb"]),
        helper.make_node("Add", ["fa", "fb"], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "sy", "zp"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq_add_relu",
        [helper.make_tensor_value_info(n, TensorProto.INT8, [None]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [None])],
        [*inits, zp],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a, "b": b})[0]


INT8_SCALES = [
    pytest.param((0.5, 0.5, 1.0), id="halfway-ties"),  # v = (a+b)/2: every odd sum is an exact .5 tie
    pytest.param((0.25, 0.75, 0.5), id="quarter-ties"),
    pytest.param((1.0, 1.0, 0.5), id="saturate"),  # up to 508 -> 127
    pytest.param((0.02, 0.031, 0.047), id="inexact"),
    pytest.param((0.0123, 0.0456, 0.0101), id="inexact-saturating"),
    pytest.param((3e-3, 3e-3, 7e-3), id="small"),
    pytest.param((0.1, 0.1, 0.2), id="ties-after-rounding"),  # 0.1*a + 0.1*b vs 0.2*k: near-ties in float32
    pytest.param((0.037, 0.011, 0.0293), id="inexact-2"),
]


@pytest.mark.parametrize("scales", INT8_SCALES)
def test_int8_matches_numpy_and_onnxruntime_exactly(host_ref: Path, tmp_path: Path, scales: tuple) -> None:
    a, b = _all_int8_pairs()
    got = _run(host_ref, tmp_path, "i8", a, b, scales)
    want_np = _numpy_int8(a, b, *scales)
    want_ort = _ort_int8(a, b, *scales)
    np.testing.assert_array_equal(want_np, want_ort)  # the reference itself is ONNX's semantics
    np.testing.assert_array_equal(got, want_np)


def test_int8_cases_cover_ties_and_saturation(host_ref: Path, tmp_path: Path) -> None:
    """The test data above is not vacuous: ties round to even, both ways, and 127 saturates."""
    a = np.array([1, 3, 5, 7, 127, 127, -128, -5, 0], dtype=np.int8)
    b = np.array([0, 0, 0, 0, 127, 1, -128, 2, 0], dtype=np.int8)
    got = _run(host_ref, tmp_path, "i8", a, b, (0.5, 0.5, 1.0))
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4, 127 -> 127, 64 -> 64, relu(-128) -> 0, relu(-1.5) -> 0, 0 -> 0
    np.testing.assert_array_equal(got, [0, 2, 2, 4, 127, 64, 0, 0, 0])
    sat = _run(host_ref, tmp_path, "i8", a, b, (1.0, 1.0, 0.5))
    assert sat[4] == 127 and sat[5] == 127


def test_int8_rejects_bad_arguments(host_ref: Path, tmp_path: Path) -> None:
    a = np.zeros(4, dtype=np.int8)
    (tmp_path / "a.bin").write_bytes(a.tobytes())
    proc = subprocess.run(
        [str(host_ref), "i8", "4", str(tmp_path / "a.bin"), str(tmp_path / "a.bin"), str(tmp_path / "y.bin")],
        capture_output=True,
    )
    assert proc.returncode == 2
    proc = subprocess.run(  # one element more than the file holds
        [str(host_ref), "f32", "2", str(tmp_path / "a.bin"), str(tmp_path / "a.bin"), str(tmp_path / "y.bin")],
        capture_output=True,
    )
    assert proc.returncode == 1


# --- FP16 / FP32 --------------------------------------------------------------------------------------------------


def _relu_keep_nan(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, np.where(np.isnan(v), v, np.zeros_like(v)))


def _fp16_inputs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    specials = np.array(
        [0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0, np.inf, -np.inf, 6.0e-8, -6.0e-8, 6.1e-5, 2049.0, 0.1],
        dtype=np.float16,
    )
    sa, sb = np.meshgrid(specials, specials, indexing="ij")
    # Random bit patterns cover every exponent, subnormals and NaNs; scaled normals cover typical activations.
    bits_a = rng.integers(0, 1 << 16, 200_000, dtype=np.uint16).view(np.float16)
    bits_b = rng.integers(0, 1 << 16, 200_000, dtype=np.uint16).view(np.float16)
    norm_a = (rng.standard_normal(100_000) * 4).astype(np.float16)
    norm_b = (rng.standard_normal(100_000) * 4).astype(np.float16)
    a = np.concatenate([sa.ravel(), bits_a, norm_a])
    b = np.concatenate([sb.ravel(), bits_b, norm_b])
    return a, b


def test_fp16_matches_numpy_bit_for_bit(host_ref: Path, tmp_path: Path) -> None:
    a, b = _fp16_inputs(np.random.default_rng(0))
    got = _run(host_ref, tmp_path, "f16", a.view(np.uint16), b.view(np.uint16)).view(np.float16)
    with np.errstate(invalid="ignore", over="ignore"):
        want = _relu_keep_nan(a.astype(np.float32) + b.astype(np.float32)).astype(np.float16)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint16), want[~nan].view(np.uint16))


def test_fp16_matches_torch_add_relu(host_ref: Path, tmp_path: Path) -> None:
    """What the GPU benchmark checks against: torch.relu(a + b) in half (finite inputs; PyTorch rounds once)."""
    a, b = _fp16_inputs(np.random.default_rng(1))
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    got = _run(host_ref, tmp_path, "f16", a.view(np.uint16), b.view(np.uint16)).view(np.float16)
    want = torch.relu(torch.from_numpy(a) + torch.from_numpy(b)).numpy()
    np.testing.assert_array_equal(got, want)  # by value: torch keeps relu(-0) = -0, the kernel writes +0


def test_fp32_matches_numpy_and_torch(host_ref: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal(300_000).astype(np.float32)
    b = rng.standard_normal(300_000).astype(np.float32)
    a[:4] = [np.nan, -0.0, np.inf, -np.inf]
    b[:4] = [1.0, -0.0, 1.0, 1.0]
    got = _run(host_ref, tmp_path, "f32", a, b)
    want = _relu_keep_nan(a + b)
    np.testing.assert_array_equal(got.view(np.uint32)[1:], want.view(np.uint32)[1:])  # -0 + -0 -> +0, bitwise
    assert np.isnan(got[0])
    torch_want = torch.relu(torch.from_numpy(a[1:]) + torch.from_numpy(b[1:])).numpy()
    np.testing.assert_array_equal(got[1:], torch_want)
