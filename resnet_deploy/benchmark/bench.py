"""``resnet-deploy bench`` as one function: load the models, add baselines, measure, write the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._io import check_no_collisions, check_writable
from ..backends.loader import model_files
from ..errors import UserError
from .core import run_benchmark
from .gpu import cuda_available, gpu_name
from .report import plot, write_json, write_markdown, write_times
from .spec import BenchConfig, BenchmarkInterrupted, BenchReport, Progress, Target
from .targets import add_baselines, load_target


@dataclass
class BenchOutputs:
    """Files to write: the JSON report (after every finished batch size too), a Markdown table, PNG plots, and
    every iteration's time (``times``, like trtexec's ``--exportTimes``)."""

    json: str | Path | None = None
    markdown: str | Path | None = None
    plot: str | Path | None = None
    times: str | Path | None = None
    json_flag: str = "--output"  # how errors name the JSON file (the CLI's deprecated form is --json FILE)

    def check(self, inputs: list[tuple[str, str | Path | None]] | None = None) -> None:
        """Every output writable, none the same file as another or as one of ``inputs`` ((flag, path) pairs)."""
        named = {
            self.json_flag: self.json,
            "--markdown": self.markdown,
            "--plot": self.plot,
            "--export-times": self.times,
        }
        for path in named.values():
            if path:
                check_writable(path)
        check_no_collisions({flag: path or None for flag, path in named.items()}, inputs)
        if self.plot:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise UserError("--plot needs matplotlib: pip install matplotlib") from None


@dataclass
class BenchResult:
    report: BenchReport
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; ``cuda`` without one is a one-line error."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise UserError("--device cuda: no CUDA device is visible to PyTorch")
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown device '{device}' (choose auto, cpu or cuda)")
    return device


def dedupe_labels(targets: list[Target]) -> None:
    """Give targets that would share a label their source in brackets."""
    seen: dict[str, int] = {}
    for t in targets:
        seen[t.label] = seen.get(t.label, 0) + 1
    for t in targets:
        if seen[t.label] > 1:
            t.label = f"{t.label} [{t.source}]"


def bench(
    models: list[str],
    config: BenchConfig,
    *,
    baselines: bool = False,
    weights: str | None = None,
    device: str = "auto",
    cuda_graphs: bool = True,
    outputs: BenchOutputs | None = None,
    progress: Progress | None = None,
    runtime: str | None = None,
) -> BenchResult:
    """Measure ``models`` (paths or bundled names) as ``config`` says, with same-weights baselines when asked.

    Ctrl-C ends the run early: the result is then marked ``interrupted`` and holds the batch sizes that finished
    (the files are written either way). ``runtime`` ("onnxruntime", "openvino") runs every ``.onnx`` MODEL; left
    None, each runs on what its ``build --backend auto`` recorded, else ONNX Runtime (:func:`resnet_deploy.load`).
    """
    outputs = outputs or BenchOutputs()
    config.validate()
    inputs = [pair for m in models for pair in model_files(m).items()]
    inputs += model_files(weights, "--weights").items() if weights else []
    if config.data is not None and Path(config.data).exists():
        inputs.append(("--data", config.data))
    outputs.check(inputs)
    device = resolve_device(device)
    targets = [load_target(m, config.threads, device, cuda_graphs, runtime) for m in models]
    dedupe_labels(targets)
    # what loading warned about (an engine without a sidecar: nothing verified) goes into the report's notes
    loaded = [f"WARNING: {w}" for t in targets for w in getattr(t.model, "warnings", [])]
    notes: list[str] = []
    if baselines:
        targets, notes = add_baselines(targets, weights, config.threads, device, cuda_graphs)
    notes = [*loaded, *notes]
    uses_gpu = any(t.device == "cuda" for t in targets)

    def save(report: BenchReport) -> None:
        if outputs.json:
            write_json(report, outputs.json)

    interrupted = False
    try:
        report = run_benchmark(targets, config, progress=progress, on_update=save, gpu=gpu_name() if uses_gpu else None)
    except BenchmarkInterrupted as exc:
        report, interrupted = exc.report, True
    report.notes.extend(notes)
    save(report)
    if outputs.markdown:
        write_markdown(report, outputs.markdown, title="resnet-deploy bench")
    if outputs.plot and report.results:
        plot(report, outputs.plot)
    if outputs.times:
        write_times(report, outputs.times)
    return BenchResult(report, interrupted, notes)
