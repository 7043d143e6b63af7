"""A local Triton Inference Server: the ``nvidia-pytriton`` wheel's ``tritonserver`` as a child process.

:class:`TritonServer` starts the binary on a model repository with a backend folder it assembles (the wheel's
python backend and its stub, plus :mod:`resnet_deploy.serve.triton`'s python-based backends for
``onnxruntime_onnx`` and ``tensorrt_plan``), waits for ``/v2/health/ready`` with a bound, and stops it by its PID.
:func:`triton_server` writes the repository to a temporary folder first and removes everything afterwards;
:func:`serve` (the ``serve`` command) runs one until it is interrupted.

Never left running: the child gets ``SIGTERM`` when the process (thread) that started it dies
(``PR_SET_PDEATHSIG``), ``stop`` escalates to ``SIGKILL`` of the child's own process group (the server and its
stubs) when the server does not exit in time, and every wait has a bound. It binds 127.0.0.1 unless told otherwise
(the binary alone binds 0.0.0.0). Each server gets its own shared-memory prefix for the python backend, so servers
of several users or tests never share regions.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UserError
from .environment import ServerEnvironment, find_server_environment
from .repository import CPU_CONFIG, DEFAULT_QUEUE_DELAY_US, RepoResult, triton_repo

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORTS = (8000, 8001, 8002)  # Triton's HTTP, gRPC, metrics
START_TIMEOUT_S = 120.0  # seen: 0.2 s empty, 1-6 s with a few models; a stub that cannot load hangs forever
STOP_TIMEOUT_S = 20.0  # seen: 1-4 s after SIGTERM
_BACKENDS = {"onnxruntime": "onnxruntime_backend.py", "tensorrt": "tensorrt_backend.py"}


def free_port(address: str = DEFAULT_ADDRESS) -> int:
    """A port nothing listens on now (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def gpu_visible() -> bool:
    """Whether the NVIDIA driver shows a GPU (no CUDA import: /proc/driver/nvidia/gpus lists one folder each)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send the child SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork: the child only calls it

    def set_pdeathsig() -> None:
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    return set_pdeathsig


def prepare_backends(env: ServerEnvironment, folder: Path) -> Path:
    """A backend folder: ``python/`` (the wheel's python backend + the stub for the environment's Python) and the
    python-based ``onnxruntime/model.py`` and ``tensorrt/model.py``."""
    python = folder / "python"
    python.mkdir(parents=True)
    for item in env.python_backend.iterdir():
        if item.is_file():
            shutil.copy2(item, python / item.name)
    shutil.copy2(env.stub, python / "triton_python_backend_stub")
    package = resources.files("resnet_deploy.serve.triton")
    for backend, source in _BACKENDS.items():
        (folder / backend).mkdir()
        (folder / backend / "model.py").write_bytes(package.joinpath(source).read_bytes())
    return folder


@dataclass(frozen=True)
class Endpoints:
    address: str
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def _host(self) -> str:
        return "127.0.0.1" if self.address in ("0.0.0.0", "") else self.address

    @property
    def http(self) -> str:
        """``host:port`` as tritonclient's HTTP client takes it."""
        return f"{self._host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{self._host}:{self.grpc_port}"

    @property
    def metrics(self) -> str:
        return f"http://{self._host}:{self.metrics_port}/metrics"


class TritonServer:
    """One ``tritonserver`` process on a repository: :meth:`start` (bounded wait until ready), :meth:`stop` (by
    PID). A context manager: leaving the ``with`` block stops it whatever happened inside."""

    def __init__(
        self,
        repository: str | Path,
        *,
        env: ServerEnvironment | None = None,
        server_env: str | Path | None = None,
        address: str = DEFAULT_ADDRESS,
        http_port: int = DEFAULT_PORTS[0],
        grpc_port: int = DEFAULT_PORTS[1],
        metrics_port: int = DEFAULT_PORTS[2],
        config_name: str | None = "auto",
        work_dir: str | Path | None = None,
        start_timeout: float = START_TIMEOUT_S,
        stop_timeout: float = STOP_TIMEOUT_S,
        repo: RepoResult | None = None,
    ) -> None:
        self.repo = repo  # what triton_repo wrote there, when it did
        self.repository = Path(repository).resolve()
        if not self.repository.is_dir():
            raise UserError(f"model repository {self.repository} is not a folder")
        self.env = env or find_server_environment(server_env)
        self._asked = (http_port, grpc_port, metrics_port)
        self.endpoints = self._choose_ports(address)
        # Without a GPU, Triton refuses KIND_GPU instances: read each model's configs/cpu.pbtxt where it has one.
        self.config_name = (CPU_CONFIG if not gpu_visible() else None) if config_name == "auto" else config_name
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "resnet-deploy-triton.unstarted"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.work_dir / "tritonserver.log"

    def _choose_ports(self, address: str) -> Endpoints:
        """The ports asked for, with a free one for each 0."""
        probe_at = address if address not in ("0.0.0.0", "") else DEFAULT_ADDRESS
        ports = [p if p else free_port(probe_at) for p in self._asked]
        if len(set(ports)) != 3 or not all(0 < p < 65536 for p in ports):
            raise UserError(f"the HTTP, gRPC and metrics ports must be three different ports in 1..65535: {ports}")
        return Endpoints(address, *ports)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self, backends: Path) -> list[str]:
        e = self.endpoints
        cmd = [
            str(self.env.tritonserver),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--http-address={e.address}",
            f"--http-port={e.http_port}",
            f"--grpc-address={e.address}",
            f"--grpc-port={e.grpc_port}",
            f"--metrics-address={e.address}",
            f"--metrics-port={e.metrics_port}",
            "--model-control-mode=none",
            "--exit-on-error=true",
            "--strict-readiness=true",
            "--disable-auto-complete-config",
            # open keep-alive connections hold the server this long after SIGTERM (then it unloads the models)
            f"--exit-timeout-secs={max(1, int(self.stop_timeout / 4))}",
            # one shared-memory namespace per server: several servers on one machine never share regions
            f"--backend-config=python,shm-region-prefix-name=resnet_deploy_{os.getpid()}_{secrets.token_hex(4)}_",
        ]
        if self.config_name:
            cmd.append(f"--model-config-name={self.config_name}")
        if not gpu_visible():
            cmd.append("--allow-gpu-metrics=false")
        return cmd

    def start(self) -> TritonServer:
        """Start the server and wait (at most ``start_timeout`` s) until every model is ready. A port picked
        free (0) that another process took meanwhile is picked again, twice at most."""
        if self.process is not None:
            raise UserError("this server was started already")
        if self._own_work_dir:  # made only now: a server that never starts leaves nothing behind
            self.work_dir = Path(tempfile.mkdtemp(prefix="resnet-deploy-triton."))
        backends = prepare_backends(self.env, self.work_dir / "backends")
        for attempt in range(3):
            try:
                return self._start(backends)
            except UserError as exc:
                # "Socket 'host:port' already in use" (HTTP, metrics); "... resolved for 'host:port' {" (gRPC)
                busy = re.search(r":(\d+)'? (?:already in use)|:(\d+)' \{", str(exc))
                e = self.endpoints
                ports = (e.http_port, e.grpc_port, e.metrics_port)
                picked = {p for p, asked in zip(ports, self._asked, strict=True) if not asked}
                if busy is None or int(busy.group(1) or busy.group(2)) not in picked or attempt == 2:
                    raise
                self.process = None
                self.endpoints = self._choose_ports(self.endpoints.address)
        raise AssertionError("unreachable")

    def _start(self, backends: Path) -> TritonServer:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(backends),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env.server_env(),
                cwd=self.work_dir,
                start_new_session=True,  # its own process group: Ctrl-C reaches us, and we stop it in order
                preexec_fn=_die_with_parent(),
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        """One bounded probe of ``/v2/health/ready`` (HTTP 200 when every model is ready)."""
        url = f"http://{self.endpoints.http}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise UserError(f"tritonserver exited with code {code} before it was ready: {self.log_problem()}")
            if self.ready():
                failed = self._log_lines("failed to start")  # e.g. the metrics port: the server runs without it
                if failed:
                    raise UserError(f"tritonserver {failed[0]} (log: {self.log_path})")
                return
            time.sleep(0.1)
        raise UserError(f"tritonserver was not ready after {self.start_timeout:.0f} s: {self.log_problem()}")

    def _log_lines(self, needle: str) -> list[str]:
        """Error lines of the server log that contain ``needle``, without Triton's prefix."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        errors = [ln for ln in lines if ln[:1] == "E" and ln[1:5].isdigit() and needle in ln]
        return [ln.split("] ", 1)[-1].strip().strip('"').strip() for ln in errors]

    def log_problem(self) -> str:
        """The server log's most telling error: why a model failed to load, else its first error, else its last
        line (Triton's error lines start with E and the date; CPU-only machines always log a harmless CUDA one)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [ln for ln in lines if ln[:1] == "E" and ln[1:5].isdigit() and "CudaDriverHelper" not in ln]
        failed = [ln for ln in errors if "failed to load '" in ln]  # names the model and says why
        pick = failed or errors or [ln for ln in reversed(lines) if ln.strip()] or ["(empty log)"]
        text = pick[0].split("] ", 1)[-1].strip().strip('"').split("\\n")[0]  # drop the escaped traceback
        return f"{text[:500]} (log: {self.log_path})"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """Stop the server by its PID: SIGTERM, then SIGKILL to its process group if it outlives ``stop_timeout``.
        Returns its exit code (None if it was never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)  # its group: the server and its stubs
                self.process.wait(timeout=10)
        return self.process.returncode

    def close(self) -> None:
        """Stop, then remove the work folder this server made."""
        self.stop()
        if self._own_work_dir and self.process is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> TritonServer:
        if self.process is None:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def triton_server(
    models: Sequence[str | Path],
    *,
    server_env: str | Path | None = None,
    address: str = DEFAULT_ADDRESS,
    http_port: int = 0,
    grpc_port: int = 0,
    metrics_port: int = 0,
    max_batch: int | None = None,
    instances: int = 1,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    image_input: bool = False,
    start_timeout: float = START_TIMEOUT_S,
) -> Iterator[TritonServer]:
    """A running server on a repository written by :func:`triton_repo` for ``models`` into a temporary folder;
    stopped and removed on leaving the block. Port 0 = a free port (the default here)."""
    work = Path(tempfile.mkdtemp(prefix="resnet-deploy-serve."))
    try:
        repo = triton_repo(  # first: the user's files are the likeliest thing to be wrong
            models,
            work / "repository",
            max_batch=max_batch,
            instances=instances,
            queue_delay_us=queue_delay_us,
            image_input=image_input,
        )
        if any(m.platform == "tensorrt_plan" for m in repo.models) and not gpu_visible():
            raise UserError("TensorRT plans need an NVIDIA GPU, and none is visible here: serve the .onnx instead")
        env = find_server_environment(server_env)
        platforms = {m.platform for m in repo.models}
        if "onnxruntime_onnx" in platforms and env.onnxruntime_version is None:
            raise UserError(f"{env.prefix} has no onnxruntime, which the server's ONNX backend runs on: pip install it")
        if "tensorrt_plan" in platforms and env.resnet_deploy_version is None:
            raise UserError(
                f"{env.prefix} has no resnet-deploy, which loads plans there: pip install 'resnet-deploy[serve]'"
            )
        server = TritonServer(
            repo.path,
            env=env,
            address=address,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            work_dir=work,
            start_timeout=start_timeout,
            repo=repo,
        )
        with server:
            yield server
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class ServeReport:
    """What :func:`serve` ran."""

    endpoints: Endpoints
    repo: RepoResult
    pid: int
    exit_code: int | None
    reason: str


def serve(
    models: Sequence[str | Path],
    *,
    address: str = DEFAULT_ADDRESS,
    http_port: int = DEFAULT_PORTS[0],
    grpc_port: int = DEFAULT_PORTS[1],
    metrics_port: int = DEFAULT_PORTS[2],
    server_env: str | Path | None = None,
    max_batch: int | None = None,
    instances: int = 1,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    image_input: bool = False,
    start_timeout: float = START_TIMEOUT_S,
    on_ready: Callable[[TritonServer], Any] | None = None,
    duration: float | None = None,
) -> ServeReport:
    """Serve ``models`` with Triton until interrupted (Ctrl-C or SIGTERM), the server exits, or ``duration`` s pass.

    The repository is the one :func:`triton_repo` writes, in a temporary folder; ``on_ready(server)`` is called
    once every model is ready. Binds ``address`` (127.0.0.1 by default: only this machine reaches it).
    """
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM ends the wait like Ctrl-C does
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with triton_server(
            models,
            server_env=server_env,
            address=address,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            max_batch=max_batch,
            instances=instances,
            queue_delay_us=queue_delay_us,
            image_input=image_input,
            start_timeout=start_timeout,
        ) as server:
            if on_ready is not None:
                on_ready(server)
            reason = _wait(server, stop, duration)
            code = server.stop()
            problem = server.log_problem() if reason == "exited" else ""
            assert server.repo is not None
            report = ServeReport(server.endpoints, server.repo, int(server.pid or 0), code, reason)
        if reason == "exited":
            raise UserError(f"tritonserver stopped by itself (exit code {code}): {problem}")
        return report
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _wait(server: TritonServer, stop: threading.Event, duration: float | None) -> str:
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while True:
            if stop.wait(0.2):
                return "terminated"
            if not server.running():
                return "exited"
            if deadline is not None and time.monotonic() >= deadline:
                return "duration"
    except KeyboardInterrupt:
        return "interrupted"
