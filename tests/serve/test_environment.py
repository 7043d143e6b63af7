"""Which Python environment Triton's server runs from, and the ones it refuses (numpy 2: silently empty outputs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.serve.environment import ENV_VARIABLE, check, find_server_environment, probe


def test_the_server_environment_has_what_the_stub_needs(server_env: Any) -> None:
    assert server_env.tritonserver.is_file() and server_env.stub.is_file()
    assert server_env.stub.parent.name == server_env.python_version
    assert int(server_env.numpy_version.split(".")[0]) < 2 and server_env.onnxruntime_version
    env = server_env.server_env({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/x", "PYTHONPATH": "/y"})
    assert env["PATH"].split(":")[0] == str(server_env.bin)  # the stub finds python3 here
    assert env["LD_LIBRARY_PATH"].split(":")[0] == str(server_env.libs) and env["LD_LIBRARY_PATH"].endswith(":/x")
    assert "PYTHONPATH" not in env


def test_numpy_2_is_refused_before_the_server_starts(server_env: Any) -> None:
    facts = probe(server_env.prefix)
    check(server_env.prefix, facts)
    with pytest.raises(UserError, match="needs numpy < 2 .with numpy 2 every output comes back empty"):
        check(server_env.prefix, {**facts, "numpy": "2.1.0"})
    with pytest.raises(UserError, match="no python backend stub for Python 3.7"):
        check(server_env.prefix, {**facts, "python": "3.7"})


def test_an_environment_without_the_server_is_refused_in_one_line(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    with pytest.raises(UserError) as exc:
        find_server_environment(tmp_path)  # no Python there
    assert "no Python there" in str(exc.value) and "\n" not in str(exc.value)
    facts = probe(Path(sys.prefix))
    if facts.get("pytriton") is None:  # the project's .venv: numpy 2, no server (setup.sh keeps them apart)
        with pytest.raises(UserError, match="no nvidia-pytriton"):
            find_server_environment(sys.prefix)
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path))
    with pytest.raises(UserError, match=f"\\${ENV_VARIABLE}"):
        find_server_environment()
