"""Every ``--help`` says each option's default and unit (issue 16: users coming from trtexec read help first)."""

from __future__ import annotations

import argparse

import pytest

from resnet_deploy.cli import COMMANDS, make_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = make_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.option_strings[-1]: a for a in p._actions if a.option_strings and a.help != argparse.SUPPRESS}


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in COMMANDS])
def test_every_option_with_a_default_states_it(command: str) -> None:
    for flag, action in _options(_subparsers()[command]).items():
        if flag in ("--help", "--version") or isinstance(action, argparse._StoreTrueAction):
            continue
        assert action.help, f"{command} {flag} has no help"
        if action.default is not None and not action.required:
            assert "default" in action.help, f"{command} {flag}: default {action.default!r} not stated"


@pytest.mark.parametrize(
    "flag, words",
    [
        ("--precision", ["fp32 (default)"]),
        ("--backend", ["default: from -o", "onnxruntime", "openvino"]),
        ("--calib-method", ["default: percentile"]),
        ("--calib-percentile", ["default 99.99", "percent"]),
        ("--residual-fusion", ["native (default"]),
        ("--min-batch", ["default 1"]),
        ("--opt-batch", ["default: max"]),
        ("--max-batch", ["default 32"]),
        ("--opt-level", ["default 3"]),
        ("--workspace", ["MiB", "default"]),
        ("--max-accuracy-drop", ["percentage points", "--eval-data"]),
        ("--eval-data", ["default: fashion-mnist:test for bundled checkpoints"]),
        ("--shapes", ["H x W exports a checkpoint at that size", "dynamic H and W", "opt size", "dynamic H/W axes"]),
        ("--max-shapes", ["max H x W", "as trtexec fills it"]),
    ],
)
def test_build_help_names_defaults_and_units(flag: str, words: list[str]) -> None:
    help_text = " ".join(_options(_subparsers()["build"])[flag].help.split())  # type: ignore[union-attr]
    for word in words:
        assert word in help_text, f"{flag}: {word!r} missing from {help_text!r}"


def test_help_renders_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command, p in _subparsers().items():
        text = p.format_help()
        assert "%" not in text.replace("%%", "") or "% " in text, command  # argparse formatting did not break
        assert text.startswith(f"usage: resnet-deploy {command}"), command
