"""The façade: every command's function is reachable from ``resnet_deploy.api``, and api holds no code of its own."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import resnet_deploy
from resnet_deploy import api
from resnet_deploy.cli import COMMANDS

# the function behind each CLI command (README's table)
COMMAND_FUNCTIONS = {
    "models": "models_catalog",
    "export": "export_model",
    "build": "build",
    "infer": "infer",
    "eval": "evaluate_model",
    "compare": "compare",
    "inspect": "inspect_model",
    "bench": "bench",
    "triton_repo": "triton_repo",
    "serve": "serve",
}


def test_every_command_has_its_function_in_the_api() -> None:
    assert set(COMMAND_FUNCTIONS) == set(COMMANDS)
    for name in COMMAND_FUNCTIONS.values():
        assert callable(getattr(api, name)), name


def test_api_only_re_exports() -> None:
    tree = ast.parse(Path(api.__file__).read_text())
    defined = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    assert not defined, [n.name for n in defined]
    for name in api.__all__:
        obj = getattr(api, name)
        home = importlib.import_module(obj.__module__)
        assert getattr(home, name) is obj and obj.__module__ != api.__name__


def test_each_cli_module_calls_the_api() -> None:
    """CLI modules parse and print: the work they start is an api function (no library module imported instead)."""
    for command, function in COMMAND_FUNCTIONS.items():
        source = inspect.getsource(importlib.import_module(f"resnet_deploy.cli.{command}"))
        assert "from ..api import" in source and function in source, command


def test_load_is_documented_on_the_package() -> None:
    assert "load" in resnet_deploy.__all__ and inspect.isfunction(resnet_deploy.load)
    assert "bundled" in (resnet_deploy.load.__doc__ or "")
