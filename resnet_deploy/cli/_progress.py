"""Progress of a long command on stderr: a spinner on a terminal (gone when done), plain lines for logs.

``--progress auto`` (the default) draws a transient spinner with the current stage on a terminal and prints
nothing otherwise; ``--progress lines`` prints one line per stage as it starts (``resnet-deploy build: [export]
torch.onnx export``), for CI logs, where a spinner would leave frames behind; ``--progress none`` is silent. Plain
lines are opt-in because a failing command prints exactly one line on stderr: progress printed before the error
would break that for every script that reads it.
"""

from __future__ import annotations

import argparse
import sys
import time
from types import TracebackType
from typing import Any

MODES = ("auto", "lines", "none")


def add_progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=MODES,
        default="auto",
        help="auto (default: a spinner with the current stage on a terminal, nothing when piped), lines (one line "
        "per stage on stderr, for CI logs), none",
    )


class StageProgress:
    """``progress(stage, detail)`` for :func:`resnet_deploy.build` and friends, drawn as ``mode`` says."""

    def __init__(self, command: str, mode: str = "auto", enabled: bool = True) -> None:
        from rich.console import Console

        self.command = command
        self.err = Console(stderr=True)
        self.mode = mode if enabled else "none"
        self.spinner = self.mode == "auto" and self.err.is_terminal
        self.last: str | None = None
        self.started = time.perf_counter()
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> StageProgress:
        if self.spinner:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[stage]:>10}[/] {task.description}"),
                TimeElapsedColumn(),
                console=self.err,
                transient=True,  # no spinner frame left on screen
            )
            self.bar.start()
            self.task = self.bar.add_task("starting", stage=self.command)
        return self

    def __call__(self, stage: str, detail: str) -> None:
        if stage == "warning":
            self.err.print(f"[bold red]WARNING:[/] {detail}", highlight=False)
            return
        if self.bar is not None:
            self.bar.update(self.task, description=detail, stage=stage)
        elif self.mode == "lines" and stage != self.last:
            elapsed = time.perf_counter() - self.started
            print(f"resnet-deploy {self.command}: [{stage}] {detail} ({elapsed:.1f} s)", file=sys.stderr, flush=True)
        self.last = stage

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.mode == "lines" and kind is None:
            print(f"resnet-deploy {self.command}: done in {time.perf_counter() - self.started:.1f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
