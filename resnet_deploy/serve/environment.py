"""The Python environment Triton's server runs from: the ``nvidia-pytriton`` wheel, and numpy < 2.

The wheel ships ``tritonserver`` 2.51 with only the python backend, the backend's stubs for Python 3.8-3.13 and the
libraries both link (``nvidia_pytriton.libs``). Facts seen on this project's machines, each handled here:

- the stub finds its Python environment through ``python3`` on ``PATH``: the server's ``PATH`` starts with the
  environment's ``bin``;
- the stub with numpy 2 answers every request with an empty output and no error: an environment with numpy >= 2
  is refused before the server starts;
- the stub copied out of the wheel needs the wheel's libraries on ``LD_LIBRARY_PATH`` (else it cannot load
  libcudart and the server hangs "loading"), and the ``libpython`` of the environment's own interpreter.

Which environment: ``server_env`` if given, else ``$RESNET_DEPLOY_SERVER_ENV``, else the running one (where
``pip install 'resnet-deploy[serve]'`` put everything), else ``.venv-serve`` beside the running one (what
``setup.sh`` makes next to a numpy-2 ``.venv``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

ENV_VARIABLE = "RESNET_DEPLOY_SERVER_ENV"
SIBLING = ".venv-serve"
PROBE_TIMEOUT_S = 60.0

# Run by the environment's own interpreter: finds packages without importing them, except numpy (its version).
_PROBE = r"""
import importlib.metadata as md, importlib.util as u, json, sys, sysconfig
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
spec = u.find_spec("pytriton")
out = {"python": "%d.%d" % sys.version_info[:2], "prefix": sys.prefix, "libdir": sysconfig.get_config_var("LIBDIR"),
       "ldlibrary": sysconfig.get_config_var("LDLIBRARY"),
       "pytriton": list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None,
       "numpy": version("numpy"), "onnxruntime": version("onnxruntime"), "resnet_deploy": version("resnet-deploy")}
print(json.dumps(out))
"""


@dataclass(frozen=True)
class ServerEnvironment:
    """A Python environment that can run Triton's server and its python backend stub."""

    prefix: Path
    python_version: str  # "3.11"
    numpy_version: str | None
    onnxruntime_version: str | None
    resnet_deploy_version: str | None
    pytriton: Path  # site-packages/pytriton
    libdir: Path | None  # where the interpreter's libpython lives (the stub links libpython3.X.so.1.0)

    @property
    def bin(self) -> Path:
        return self.prefix / "bin"

    @property
    def tritonserver(self) -> Path:
        return self.pytriton / "tritonserver" / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        """``libtriton_python.so`` and ``triton_python_backend_utils.py``."""
        return self.pytriton / "tritonserver" / "backends" / "python"

    @property
    def stub(self) -> Path:
        stubs = self.pytriton / "tritonserver" / "python_backend_stubs"
        return stubs / self.python_version / "triton_python_backend_stub"

    @property
    def libs(self) -> Path:
        return self.pytriton.parent / "nvidia_pytriton.libs"

    def server_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The server's environment variables: this environment's ``bin`` first on ``PATH``, the wheel's
        libraries (and libpython's folder) first on ``LD_LIBRARY_PATH``."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")]).rstrip(os.pathsep)
        libs = [str(self.libs), *([str(self.libdir)] if self.libdir else []), env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
        env.pop("PYTHONHOME", None)  # the stub's interpreter must find its own prefix
        env.pop("PYTHONPATH", None)
        return env


def candidates(explicit: str | Path | None = None) -> list[tuple[Path, str]]:
    """(environment prefix, why it is tried), in order."""
    if explicit is not None:
        return [(Path(explicit), "given")]
    if os.environ.get(ENV_VARIABLE):
        return [(Path(os.environ[ENV_VARIABLE]), f"${ENV_VARIABLE}")]
    here = Path(sys.prefix)
    return [(here, "the running environment"), (here.parent / SIBLING, f"{SIBLING} beside it")]


def probe(prefix: Path) -> dict[str, str | None]:
    """What the environment at ``prefix`` holds (runs its interpreter once, bounded in time)."""
    python = prefix / "bin" / "python3"
    if not python.exists():
        raise UserError(f"{prefix} is not a Python environment (no bin/python3)")
    try:
        proc = subprocess.run(
            [str(python), "-c", _PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=_clean_env()
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"{python} did not answer within {PROBE_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise UserError(f"{python} failed to describe its environment: {last}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONPATH", None)
    return env


def check(prefix: Path, facts: dict[str, str | None]) -> ServerEnvironment:
    """Refuse, with one line, an environment the server cannot run from."""
    if not facts.get("pytriton"):
        raise UserError(
            f"no Triton server in {prefix}: pip install 'resnet-deploy[serve]' there (nvidia-pytriton==0.7.0 ships "
            f"tritonserver), or name an environment that has it with --server-env or ${ENV_VARIABLE}"
        )
    numpy = facts.get("numpy")
    if numpy is None or int(numpy.split(".")[0]) >= 2:
        raise UserError(
            f"{prefix} has numpy {numpy or '(none)'}: Triton 2.51's python backend stub needs numpy < 2 (with "
            "numpy 2 every output comes back empty); use an environment made with pip install 'resnet-deploy[serve]'"
        )
    libdir = Path(str(facts["libdir"])) if facts.get("libdir") else None
    if libdir is not None and not (libdir / str(facts.get("ldlibrary") or "")).is_file():
        libdir = None  # a static interpreter: the stub finds the system's libpython
    env = ServerEnvironment(
        prefix=prefix,
        python_version=str(facts["python"]),
        numpy_version=numpy,
        onnxruntime_version=facts.get("onnxruntime"),
        resnet_deploy_version=facts.get("resnet_deploy"),
        pytriton=Path(str(facts["pytriton"])),
        libdir=libdir,
    )
    needed = ((env.tritonserver, "tritonserver"), (env.python_backend / "libtriton_python.so", "python backend"))
    for path, what in needed:
        if not path.is_file():
            raise UserError(f"{prefix}: the nvidia-pytriton install has no {what} ({path})")
    if not env.stub.is_file():
        raise UserError(f"{prefix}: nvidia-pytriton has no python backend stub for Python {env.python_version}")
    return env


def find_server_environment(explicit: str | Path | None = None) -> ServerEnvironment:
    """The environment to run Triton from (see the module's docstring for the order)."""
    tried = []
    for prefix, why in candidates(explicit):
        if not (prefix / "bin" / "python3").exists():
            tried.append(f"{prefix} ({why}): no Python there")
            continue
        facts = probe(prefix)
        if facts.get("pytriton"):
            return check(prefix, facts)
        tried.append(f"{prefix} ({why}): no nvidia-pytriton")
    raise UserError(
        f"no Triton server found ({'; '.join(tried)}): pip install 'resnet-deploy[serve]' into an environment "
        f"and name it with --server-env or ${ENV_VARIABLE}"
    )
