"""The GPU runtime: its refusals run everywhere; the rest needs a TensorRT GPU and skips without one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resnet_deploy.backends.tensorrt import compat
from resnet_deploy.errors import UserError

needs_trt = pytest.mark.skipif(compat.available() is None, reason="neither TensorRT nor TensorRT-RTX is installed")


@needs_trt
@pytest.mark.skipif(compat.gpu_runtime_usable(), reason="this machine can run engines")
def test_runtime_refuses_without_a_gpu(built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any) -> None:
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    with pytest.raises(UserError, match=r"cannot run .*model\.engine: .*(GPU|TensorRT|CUDA)"):
        TensorRTModel(copy_engine(built, tmp_path))


@needs_trt
@pytest.mark.tensorrt_gpu
def test_engine_matches_onnxruntime_on_gpu(
    built: tuple[Path, bytes, bytes], tmp_path: Path, tiny_graph: Any, copy_engine: Any
) -> None:
    from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    x = np.random.default_rng(0).normal(size=(11, 3, 8, 8)).astype(np.float32)
    with TensorRTModel(copy_engine(built, tmp_path)) as model:
        assert model.max_batch == 4
        got = model.predict(x)  # 11 = 4 + 4 + 3: split by the base class
        np.testing.assert_allclose(got, OnnxRuntimeModel(tiny_graph()).predict(x), rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(model.predict(x[:4]), model.predict(x[:4]))  # CUDA-graph replay
        with pytest.raises(UserError, match="load_images"):
            model.predict(x.astype(np.uint8))
        np.testing.assert_array_equal(model.predict(x[:4].astype(np.float64)), model.predict(x[:4]))
        with pytest.raises(UserError, match="shape"):
            model.predict(x[:, :, :4])
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(model.predict, [x] * 8))
        for out in outs:
            np.testing.assert_array_equal(out, outs[0])


@needs_trt
@pytest.mark.tensorrt_gpu
def test_engine_with_an_h_w_range_runs_every_size_in_its_profile(tmp_path: Path, tiny_graph: Any) -> None:
    """build --min/--max-shapes with another H x W: predict binds each input's full shape (one CUDA graph per
    shape) and refuses sizes outside the profile; the results match ONNX Runtime at every size."""
    from onnx import TensorProto, helper

    from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
    from resnet_deploy.backends.tensorrt.builder import EngineBuildOptions, build_engine
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    graph = tiny_graph()
    graph.graph.input[0].CopyFrom(helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "h", "w"]))
    opts = EngineBuildOptions(max_batch=4, hw_profile=((4, 4), (8, 8), (16, 16)))
    report = build_engine(graph, tmp_path / "dyn.engine", opts)
    reference = OnnxRuntimeModel(graph)
    rng = np.random.default_rng(0)
    with TensorRTModel(report.engine_path) as model:
        assert model.input_shape == (None, 3, None, None) and model.hw_range == ((4, 4), (16, 16))
        for h, w in ((8, 8), (4, 16), (16, 16), (8, 8)):  # back to 8x8: its CUDA graph replays that shape
            x = rng.normal(size=(6, 3, h, w)).astype(np.float32)
            np.testing.assert_allclose(model.predict(x), reference.predict(x), rtol=1e-3, atol=1e-4)
        for h, w in ((2, 8), (8, 20)):
            with pytest.raises(UserError, match="profile takes H x W from 4x4 to 16x16"):
                model.predict(np.zeros((1, 3, h, w), np.float32))


@needs_trt
@pytest.mark.tensorrt_gpu
def test_torch_cuda_zero_copy_and_async(built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    x = torch.randn(6, 3, 8, 8, device="cuda")
    with TensorRTModel(copy_engine(built, tmp_path)) as model:
        stream = torch.cuda.Stream()
        out = model.predict_async(x, stream=stream)
        stream.synchronize()
        assert out.is_cuda and tuple(out.shape) == (6, 4)
        np.testing.assert_allclose(out.cpu().numpy(), model.predict(x.cpu().numpy()), rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------------- what runs without a GPU (#13)


def _check_plan(n: int, max_batch: int, min_batch: int, rows: tuple[int, int], ptrs: tuple[int, int]) -> list:
    from resnet_deploy.backends.tensorrt.runtime import ALIGN, plan_chunks

    chunks = plan_chunks(n, max_batch, min_batch, rows, ptrs)
    covered = 0
    for c in chunks:
        assert c.start == covered and 1 <= c.rows <= max_batch
        covered += c.rows
        if not c.staged:  # bound in place: TensorRT's rule, both addresses 256-byte aligned, a legal batch
            assert (ptrs[0] + c.start * rows[0]) % ALIGN == 0 and (ptrs[1] + c.start * rows[1]) % ALIGN == 0
            assert c.rows >= min_batch
    assert covered == n
    return chunks


def test_chunks_bound_in_place_are_256_byte_aligned() -> None:
    """Item 8: the issue's case, 1000 fp32 logits (4000 B rows): chunks of 32 at i * 4000 B are misaligned for
    every i not a multiple of 16; the plan either keeps them aligned or stages them through aligned buffers."""
    rng = np.random.default_rng(0)
    image = 3 * 224 * 224 * 4
    for rows in [(image, 4000), (image, 40), (1 * 28 * 28 * 4, 40), (3136, 4000), (12, 2), (256, 256)]:
        for max_batch, min_batch in [(32, 1), (8, 1), (7, 3), (1, 1), (256, 16)]:
            for base in [(0, 0), (256, 512), (4, 0), (0, 40), (16, 16)]:
                ptrs = (0x7F0000000000 + base[0], 0x7F1000000000 + base[1])
                for n in [1, 2, max_batch, max_batch + 1, 3 * max_batch + 5, int(rng.integers(1, 600))]:
                    _check_plan(n, max_batch, min_batch, rows, ptrs)


def test_aligned_tensors_stay_in_place_when_the_row_sizes_allow() -> None:
    from resnet_deploy.backends.tensorrt.runtime import aligned_step

    assert aligned_step(32, (3 * 224 * 224 * 4, 4000)) == 32  # 4000 B rows realign every 8 rows (32000 = 125 * 256)
    assert aligned_step(12, (3 * 224 * 224 * 4, 4000)) == 8  # chunks of 8, not 12, keep every chunk aligned
    assert aligned_step(6, (3 * 224 * 224 * 4, 4000)) == 0  # ... which a profile of 6 never reaches
    assert aligned_step(256, (28 * 28 * 4, 40)) == 256
    chunks = _check_plan(100, 32, 1, (3 * 224 * 224 * 4, 4000), (0, 0))
    assert [c.rows for c in chunks] == [32, 32, 32, 4] and not any(c.staged for c in chunks)
    chunks = _check_plan(20, 12, 1, (3 * 224 * 224 * 4, 4000), (0, 0))
    assert [c.rows for c in chunks] == [8, 12] and not any(c.staged for c in chunks)  # the last chunk takes the rest
    chunks = _check_plan(20, 6, 1, (3 * 224 * 224 * 4, 4000), (0, 0))
    assert chunks[0].staged is False and all(c.staged for c in chunks[1:])  # 6 * 4000 B is not a multiple of 256
    # a tail below the profile minimum is staged (and padded), never refused
    assert _check_plan(9, 8, 4, (256, 256), (0, 0))[-1].staged


def test_static_check_every_tensorrt_bool_result_is_used() -> None:
    """Items 8/12: set_input_shape, set_tensor_address, execute_async_v3 and set_timing_cache report failure as
    False. No call of theirs may stand alone as a statement (its result dropped), in any module that calls them."""
    import ast

    root = Path(__file__).resolve().parents[3] / "resnet_deploy"
    checked = ("set_input_shape", "set_tensor_address", "execute_async_v3", "set_timing_cache", "register_creator")
    dropped, seen = [], 0
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in checked:
                seen += 1
            if (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr in checked
            ):
                dropped.append(f"{path.relative_to(root)}:{node.lineno} {node.value.func.attr}")
    assert seen >= 8  # the check looks at real calls
    assert not dropped, "bool results dropped:\n" + "\n".join(dropped)


@needs_trt
def test_runtime_allows_host_code_only_for_version_compatible_engines() -> None:
    """Item 3 on TensorRT-RTX's real IRuntime (constructible without a GPU): trtexec's sampleEngines.cpp sets
    engine_host_code_allowed for version-compatible engines, which embed the lean runtime."""
    from resnet_deploy.backends.tensorrt.runtime import make_runtime

    assert make_runtime(version_compatible=True).engine_host_code_allowed is True
    assert make_runtime(version_compatible=False).engine_host_code_allowed is False


@needs_trt
def test_deserializing_garbage_is_one_line() -> None:
    from resnet_deploy.backends.tensorrt.runtime import deserialize_engine_bytes

    with pytest.raises(UserError, match="could not deserialize the engine"):
        deserialize_engine_bytes(b"\x00" * 64, version_compatible=True)


def test_runtime_module_imports_without_cuda_or_tensorrt() -> None:
    import subprocess
    import sys

    code = (
        "import sys, resnet_deploy.backends.tensorrt.runtime as r\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'tensorrt_rtx_bindings', 'cuda', 'pycuda')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------------------- GPU: graphs, streams, devices


@needs_trt
@pytest.mark.tensorrt_gpu
def test_cuda_graph_replay_and_zero_copy_with_unaligned_views(
    built: tuple[Path, bytes, bytes], tmp_path: Path, copy_engine: Any
) -> None:
    """Items 8, 9, 11 on a TensorRT GPU: a view at an odd row offset is staged, results match the numpy path,
    the default stream is our own (torch's current stream waits on it), close() waits for every stream."""
    torch = pytest.importorskip("torch")
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    base = torch.randn(12, 3, 8, 8, device="cuda")
    x = base[1:]  # 11 rows at a 768-byte offset: 3 * 8 * 8 * 4 B rows
    with TensorRTModel(copy_engine(built, tmp_path)) as model:
        want = model.predict(x.cpu().numpy())
        got = model.predict_async(x)  # stream=None: ordered on torch's current stream, no sync needed
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-3, atol=1e-4)
        s = torch.cuda.Stream()
        got2 = model.predict_async(x, stream=s)
        s.synchronize()
        np.testing.assert_allclose(got2.cpu().numpy(), want, rtol=1e-3, atol=1e-4)
        assert model._graphs.warnings == []  # the tiny engine captures
        if torch.cuda.device_count() > 1:
            with pytest.raises(UserError, match="is on cuda:1, the model on cuda:0"):
                model.predict_async(x.to("cuda:1"))


def _calls_on(tree: Any, owner: str) -> list[tuple[str, int, int]]:
    """(function, positional argument count, line) of every ``<owner>.f(...)`` call, ``owner`` like ``self.rt``."""
    import ast

    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and ast.unparse(node.func.value) == owner
        ):
            found.append((node.func.attr, len(node.args), node.lineno))
    return found


def test_cuda_python_calls_match_the_installed_bindings() -> None:
    """Every cuda-python runtime/driver call of the runtime and the plugin, checked against the signatures the
    installed ``cuda.bindings`` documents (its functions' first docstring line). Runs where cuda-python is
    installed (the lent GPU machine; anywhere after ``pip install cuda-bindings``): it imports without a GPU."""
    import ast
    import re

    try:
        from cuda.bindings import driver, runtime
    except ImportError:
        pytest.skip("cuda-python (cuda.bindings) is not installed")
    root = Path(__file__).resolve().parents[3] / "resnet_deploy" / "backends" / "tensorrt"
    sources = {
        "self.rt": (runtime, [root / "runtime.py"]),
        "cuda.rt": (runtime, [root.parents[2] / "benchmarks" / "device_checks.py"]),
        "drv": (driver, [root / "plugin" / "cuda.py", root / "plugin" / "timing.py"]),
    }
    wrong, checked = [], 0
    for owner, (module, paths) in sources.items():
        for path in paths:
            for name, nargs, line in _calls_on(ast.parse(path.read_text(encoding="utf-8")), owner):
                if name[0].isupper():  # types (CUstream(...)), not API calls
                    continue
                fn = getattr(module, name, None)
                if fn is None:
                    wrong.append(f"{path.name}:{line} {module.__name__}.{name} does not exist")
                    continue
                doc = (getattr(fn, "__doc__", "") or "").strip().splitlines()
                match = re.fullmatch(rf"{name}\((.*)\)", doc[0]) if doc else None
                if match is None:
                    continue
                params = [p for p in match.group(1).split(",") if p.strip()]
                checked += 1
                if nargs != len(params):
                    wrong.append(f"{path.name}:{line} {name} takes {len(params)} arguments ({doc[0]}), given {nargs}")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # enum members: rt.Enum.member
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute)
                    and ast.unparse(node.value.value) == owner
                ):
                    enum = getattr(module, node.value.attr, None)
                    if enum is None or not hasattr(enum, node.attr):
                        wrong.append(f"{path.name}:{node.lineno} {node.value.attr}.{node.attr} does not exist")
                    checked += 1
    assert checked >= 20
    assert not wrong, "\n".join(wrong)


@needs_trt
@pytest.mark.skipif(compat.gpu_runtime_usable(), reason="this machine can run engines")
def test_an_engine_without_a_sidecar_is_refused_for_the_gpu_not_the_sidecar(
    built: tuple[Path, bytes, bytes], tmp_path: Path
) -> None:
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel

    path = tmp_path / "trtexec.plan"
    path.write_bytes(built[1])
    with pytest.raises(UserError, match=r"cannot run .*trtexec\.plan: .*(GPU|TensorRT|CUDA)"):
        TensorRTModel(path)


@needs_trt
@pytest.mark.tensorrt_gpu
def test_an_engine_without_a_sidecar_runs_with_a_warning(
    built: tuple[Path, bytes, bytes], tmp_path: Path, tiny_graph: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """trtexec/Polygraphy engines: infer and bench run them, saying that nothing could be verified."""
    from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel
    from resnet_deploy.backends.tensorrt.runtime import TensorRTModel
    from resnet_deploy.cli import main

    path = tmp_path / "trtexec.plan"
    path.write_bytes(built[1])
    x = np.random.default_rng(0).normal(size=(6, 3, 8, 8)).astype(np.float32)
    with TensorRTModel(path) as model:
        assert model.info is None and model.sidecar is None and model.precision == "unknown"
        assert any("nothing could be verified" in w for w in model.warnings)
        np.testing.assert_allclose(model.predict(x), OnnxRuntimeModel(tiny_graph()).predict(x), rtol=1e-3, atol=1e-4)
    npy = tmp_path / "x.npy"
    np.save(npy, x)
    assert main(["infer", str(path), "--input", str(npy)]) == 0
    assert "WARNING" in capsys.readouterr().err
    report = tmp_path / "bench.json"
    assert main(["bench", str(path), "--batch", "1", "--json", str(report)]) == 0
    assert any("nothing could be verified" in n for n in json.loads(report.read_text())["notes"])
