"""A real Triton server (the nvidia-pytriton binary, loopback only, every wait bounded, stopped by PID) on the
repository triton_repo writes for both bundled checkpoints, FP32 and INT8, with their image ensembles; queried with
tritonclient over HTTP and gRPC."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resnet_deploy
from resnet_deploy.errors import UserError
from resnet_deploy.serve import TritonServer, triton_repo, triton_server

http = pytest.importorskip("tritonclient.http", reason="tritonclient is not installed; setup.sh installs it")
grpc = pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed; setup.sh installs it")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODELS = ("fmnist_resnet20_fp32", "fmnist_resnet20_int8", "fmnist_resnet50_small_fp32", "fmnist_resnet50_small_int8")
TIMEOUT_S = 60.0  # every client call is bounded: an error must come back, not a hang


@pytest.fixture(scope="module")
def server(server_env: Any, bundled_onnx: dict[str, Path]) -> Iterator[TritonServer]:
    with triton_server([bundled_onnx[m] for m in MODELS], server_env=server_env.prefix, image_input=True) as s:
        yield s


@pytest.fixture(scope="module")
def local(bundled_onnx: dict[str, Path]) -> dict[str, Any]:
    """The same files on ONNX Runtime in this process, as resnet_deploy.load runs them."""
    return {m: resnet_deploy.load(bundled_onnx[m]) for m in MODELS}


@contextlib.contextmanager
def _clients(server: TritonServer) -> Iterator[tuple[Any, Any]]:
    """An HTTP and a gRPC client, closed afterwards (an open connection holds a stopping server for its timeout)."""
    e = server.endpoints
    h = http.InferenceServerClient(e.http, connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S)
    g = grpc.InferenceServerClient(e.grpc)
    try:
        yield h, g
    finally:
        h.close()
        g.close()


def _infer(client: Any, model: str, x: np.ndarray, name: str = "input", class_count: int = 0) -> np.ndarray:
    proto = http if isinstance(client, http.InferenceServerClient) else grpc
    inp = proto.InferInput(
        name, list(x.shape), {np.float32: "FP32", np.uint8: "UINT8", np.float64: "FP64"}[x.dtype.type]
    )
    inp.set_data_from_numpy(x)
    out = proto.InferRequestedOutput("logits", class_count=class_count)
    kwargs = {"client_timeout": TIMEOUT_S} if proto is grpc else {}
    return client.infer(model, [inp], outputs=[out], **kwargs).as_numpy("logits")  # type: ignore[no-any-return]


def _images(fmnist_images: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Fashion-MNIST test images as the models take them: float32 N x 1 x 28 x 28 in [0, 1]."""
    return (fmnist_images[start : start + n].astype(np.float32) / np.float32(255.0))[:, None]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_logits_over_http_and_grpc_are_bit_identical_to_onnx_runtime(
    server: TritonServer, local: dict[str, Any], fmnist_images: np.ndarray, model: str
) -> None:
    for batch in (1, 5):
        x = _images(fmnist_images, batch, start=batch)
        expected = local[model].predict(x)
        with _clients(server) as clients:
            got_all = [(c, _infer(c, model, x)) for c in clients]
        for client, got in got_all:
            assert got.dtype == np.float32 and got.shape == (batch, 10)
            assert np.array_equal(got, expected), (model, type(client).__module__)


@pytest.mark.slow
def test_classification_returns_the_class_names(
    server: TritonServer, local: dict[str, Any], fmnist_images: np.ndarray
) -> None:
    model = "fmnist_resnet50_small_int8"
    x = _images(fmnist_images, 3)
    logits = local[model].predict(x)
    labels = local[model].info.labels
    with _clients(server) as clients:
        tops = [_infer(client, model, x, class_count=2) for client in clients]  # "value:index:label", best first
    for top in tops:
        for row in range(3):
            best = [int(i) for i in np.argsort(-logits[row], kind="stable")[:2]]
            parsed = [entry.decode().split(":") for entry in top[row]]
            assert [int(p[1]) for p in parsed] == best and [p[2] for p in parsed] == [labels[i] for i in best]


@pytest.mark.slow
def test_concurrent_clients_form_batches(
    server: TritonServer, local: dict[str, Any], fmnist_images: np.ndarray
) -> None:
    model, threads, per_thread = "fmnist_resnet20_fp32", 8, 20
    with _clients(server) as (h, _):
        stats = h.get_inference_statistics(model)["model_stats"][0]
    before = (int(stats["inference_count"]), int(stats["execution_count"]))
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def client(k: int) -> None:
        try:
            with _clients(server) as (c, _):  # one client per thread: tritonclient's HTTP client is not thread-safe
                for j in range(per_thread):
                    i = k * per_thread + j
                    results[i] = _infer(c, model, _images(fmnist_images, 1, start=i % 64))[0]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not [w for w in workers if w.is_alive()] and not errors, errors
    with _clients(server) as (h, _):
        stats = h.get_inference_statistics(model)["model_stats"][0]
    requests = int(stats["inference_count"]) - before[0]
    executions = int(stats["execution_count"]) - before[1]
    assert requests == threads * per_thread
    assert executions < requests, f"{requests} requests ran as {executions} executions: the batcher formed no batch"
    expected = local[model].predict(_images(fmnist_images, 64))
    for i, logits in results.items():  # batched with others, each image still gets its own answer
        assert int(np.argmax(logits)) == int(np.argmax(expected[i % 64]))
        np.testing.assert_allclose(logits, expected[i % 64], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_batch_above_max_batch_size_or_a_wrong_input_gets_triton_s_error(server: TritonServer) -> None:
    model = "fmnist_resnet20_int8"
    cases = [
        (np.zeros((33, 1, 28, 28), np.float32), "input", "batch-size must be <= 32"),
        (np.zeros((1, 1, 27, 28), np.float32), "input", "unexpected shape for input 'input'"),
        (np.zeros((1, 1, 28, 28), np.float64), "input", "data-type is 'FP64', but model"),
        (np.zeros((1, 1, 28, 28), np.float32), "pixels", "unexpected inference input 'pixels'"),
    ]
    with _clients(server) as clients:
        for client in clients:
            for x, name, expected in cases:
                with pytest.raises(InferenceServerException) as exc:
                    _infer(client, model, x, name=name)
                assert expected in str(exc.value), (type(client).__module__, str(exc.value))
        assert clients[0].is_model_ready(model) and server.running()  # refused requests, not a broken server


@pytest.mark.slow
def test_the_image_ensemble_takes_uint8_images(
    server: TritonServer, local: dict[str, Any], fmnist_images: np.ndarray
) -> None:
    from PIL import Image

    from resnet_deploy.data.preprocess import preprocess_pil

    model = "fmnist_resnet20_int8"
    info = local[model].info
    pictures = fmnist_images[:6, :, :, None]  # batch x H x W x C, as a camera would send them
    expected = local[model].predict(np.stack([preprocess_pil(Image.fromarray(p[..., 0]), info) for p in pictures]))
    colour = np.random.default_rng(2).integers(0, 256, (1, 40, 33, 3), dtype=np.uint8)  # resized, made grey
    expected_colour = local[model].predict(preprocess_pil(Image.fromarray(colour[0]), info)[None])
    with _clients(server) as clients:
        for client in clients:
            assert np.array_equal(_infer(client, f"{model}_image", pictures, name="IMAGE"), expected)
            assert np.array_equal(_infer(client, f"{model}_image", colour, name="IMAGE"), expected_colour)
            top = _infer(client, f"{model}_image", pictures[:1], name="IMAGE", class_count=1)[0][0].decode()
            assert top.split(":")[2] == info.labels[int(np.argmax(expected[0]))]
        with pytest.raises(InferenceServerException, match="1 or 3 channels"):
            _infer(clients[0], f"{model}_image", np.zeros((1, 28, 28, 4), np.uint8), name="IMAGE")


@pytest.mark.slow
def test_metrics_expose_the_queue_time_to_autoscale_on(server: TritonServer) -> None:
    with urllib.request.urlopen(server.endpoints.metrics, timeout=TIMEOUT_S) as response:
        text = response.read().decode()
    assert 'nv_inference_queue_duration_us{model="fmnist_resnet20_fp32",version="1"}' in text


def _listening(port: int) -> list[str]:
    """The addresses sockets listen on at ``port`` (from /proc/net/tcp and tcp6: little-endian hex words)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(local.rsplit(":", 1)[0])
                packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                address = ipaddress.ip_address(packed)
                mapped = getattr(address, "ipv4_mapped", None)
                found.append(str(mapped or address))
    return found


@pytest.mark.slow
def test_it_listens_on_loopback_only(server: TritonServer) -> None:
    e = server.endpoints
    assert e.address == "127.0.0.1"
    for port in (e.http_port, e.grpc_port, e.metrics_port):
        assert _listening(port) == ["127.0.0.1"], (port, _listening(port))  # not 0.0.0.0


# ------------------------------------------------------------------------------------- starting and stopping


def _processes_under(pid: int) -> set[int]:
    """PIDs whose parent is ``pid`` (the server's python backend stubs)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.slow
def test_stopping_by_pid_leaves_nothing_running_or_on_disk(
    server_env: Any, bundled_onnx: dict[str, Path], tmp_path: Path
) -> None:
    with triton_server([bundled_onnx["fmnist_resnet20_int8"]], server_env=server_env.prefix) as s:
        pid, stubs, work = s.pid, _processes_under(int(s.pid or 0)), s.work_dir
        assert pid is not None and _alive(pid) and stubs and work.is_dir()
    assert not _alive(pid) and not [p for p in stubs if _alive(p)]
    assert not work.exists()


@pytest.mark.slow
def test_a_model_that_fails_to_load_is_one_line_and_the_server_is_gone(
    server_env: Any, bundled_onnx: dict[str, Path], tmp_path: Path
) -> None:
    repo = triton_repo([bundled_onnx["fmnist_resnet20_fp32"]], tmp_path / "repo")
    (repo.path / "fmnist_resnet20_fp32" / "1" / "model.onnx").write_bytes(b"truncated")  # after the writer's checks
    server = TritonServer(repo.path, env=server_env, http_port=0, grpc_port=0, metrics_port=0)
    with pytest.raises(UserError) as exc:
        server.__enter__()
    text = str(exc.value)
    assert "\n" not in text and "exited with code 1 before it was ready" in text
    assert "fmnist_resnet20_fp32" in text and not _alive(int(server.pid or 0))


@pytest.mark.slow
def test_a_server_that_never_gets_ready_is_stopped_after_the_bound(server_env: Any, tmp_path: Path) -> None:
    """A model whose initialize never returns (as a stub without its libraries hangs 'loading')."""
    folder = tmp_path / "repo" / "stuck"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(
        "import time\n\nclass TritonPythonModel:\n    def initialize(self, args):\n        time.sleep(600)\n"
    )
    (folder / "config.pbtxt").write_text(
        'name: "stuck"\nbackend: "python"\nmax_batch_size: 1\n'
        'input [ { name: "x" data_type: TYPE_FP32 dims: [1] } ]\n'
        'output [ { name: "y" data_type: TYPE_FP32 dims: [1] } ]\n'
        "instance_group [ { kind: KIND_CPU } ]\n"
    )
    server = TritonServer(tmp_path / "repo", env=server_env, http_port=0, grpc_port=0, metrics_port=0, start_timeout=5)
    with pytest.raises(UserError, match="was not ready after 5 s"):
        server.__enter__()
    assert not _alive(int(server.pid or 0)) and not server.work_dir.exists()


@pytest.mark.slow
def test_the_python_based_tensorrt_backend_loads_plans_with_resnet_deploy_load(
    server_env: Any, handwritten_engine: Callable[..., Path], tmp_path: Path
) -> None:
    """No machine here runs TensorRT engines: what is checked is that a tensorrt_plan model reaches
    ``resnet_deploy.load`` inside the server and its one-line refusal comes back as the reason."""
    repo = triton_repo([handwritten_engine(tmp_path, "r20.engine")], tmp_path / "repo")
    config = repo.path / "r20" / "config.pbtxt"  # KIND_CPU: this machine has no GPU for Triton to place it on
    config.write_text(config.read_text().replace("KIND_GPU", "KIND_CPU"))
    server = TritonServer(repo.path, env=server_env, http_port=0, grpc_port=0, metrics_port=0)
    with pytest.raises(UserError) as exc:
        server.__enter__()
    text = str(exc.value)
    # resnet_deploy.backends.tensorrt.runtime's refusal (no TensorRT runtime in the server's environment, or no GPU)
    assert "failed to load 'r20'" in text and "TritonModelException: cannot run " in text and "model.plan: " in text


def test_serving_a_plan_without_a_gpu_is_refused_before_starting(
    server_env: Any, handwritten_engine: Callable[..., Path], tmp_path: Path
) -> None:
    from resnet_deploy.serve.server import gpu_visible

    if gpu_visible():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match="TensorRT plans need an NVIDIA GPU"):
        with triton_server([handwritten_engine(tmp_path)], server_env=server_env.prefix):
            pass


def test_busy_or_repeated_ports_are_refused(server_env: Any, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="three different ports"):
        TritonServer(tmp_path, env=server_env, http_port=9000, grpc_port=9000, metrics_port=0)
    with pytest.raises(UserError, match="is not a folder"):
        TritonServer(tmp_path / "missing", env=server_env)


@pytest.mark.slow
def test_a_port_in_use_is_one_line_even_where_triton_would_run_without_it(
    server_env: Any, bundled_onnx: dict[str, Path], tmp_path: Path
) -> None:
    """Triton starts without its metrics service when that port is taken: refused here, not half served."""
    import socket

    repo = triton_repo([bundled_onnx["fmnist_resnet20_fp32"]], tmp_path / "repo")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for ports in (
            {"http_port": port, "grpc_port": 0, "metrics_port": 0},
            {"http_port": 0, "grpc_port": 0, "metrics_port": port},
        ):
            server = TritonServer(repo.path, env=server_env, **ports)
            with pytest.raises(UserError, match=f"127.0.0.1:{port}' already in use"):
                server.__enter__()
            assert not _alive(int(server.pid or 0))
