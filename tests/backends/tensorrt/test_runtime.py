"""The GPU runtime: its refusals run everywhere; the rest needs a TensorRT GPU and skips without one."""

from __future__ import annotations

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
        with pytest.raises(UserError, match="dtype"):
            model.predict(x.astype(np.float64))
        with pytest.raises(UserError, match="shape"):
            model.predict(x[:, :, :4])
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(model.predict, [x] * 8))
        for out in outs:
            np.testing.assert_array_equal(out, outs[0])


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
