"""``triton-repo``: a Triton Inference Server model repository from ``.onnx`` files and engines.

One folder per model, NVIDIA's layout, so the folder runs as it is in NVIDIA's Triton containers (native ONNX
Runtime and TensorRT backends) and under ``resnet-deploy serve`` (the same configs on python-based backends)::

    REPO/<name>/config.pbtxt            platform onnxruntime_onnx (KIND_GPU) or tensorrt_plan (KIND_GPU)
    REPO/<name>/configs/cpu.pbtxt       ONNX only: the same on KIND_CPU, for tritonserver --model-config-name=cpu
    REPO/<name>/labels.txt              class names, for Triton's classification extension (class_count)
    REPO/<name>/1/model.onnx | model.plan (+ model.plan.json, the engine's sidecar, for resnet_deploy.load)
    REPO/<name>_preprocess/, REPO/<name>_image/   with image_input: uint8 H x W x C images -> the model

Everything is described, rendered and checked (:func:`resnet_deploy.serve.config.check_config`) before the first
byte is written; the repository is then written to a temporary folder beside ``out`` and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..info import describe_or_shape
from .config import Enum, check_config, comment, parameters, render
from .served import NUMPY_TYPES, ServedModel, describe

# Half a millisecond: the dynamic batcher waits at most this long for more requests to fill a preferred batch, a
# small part of a batch-1 request's own time on the bundled models (about 1-5 ms on a 2-core CPU) yet long enough
# for concurrent clients' requests to meet. Triton's guide: start small, raise it while latency allows.
DEFAULT_QUEUE_DELAY_US = 500
LABELS_FILE = "labels.txt"
IMAGE_INPUT = "IMAGE"
CPU_CONFIG = "cpu"  # tritonserver --model-config-name=cpu reads <model>/configs/cpu.pbtxt, else config.pbtxt


@dataclass
class RepoModel:
    """One model folder of the repository."""

    name: str
    platform: str
    max_batch: int
    preferred_batches: list[int]
    source: str | None  # the model file it came from (None for ensembles and preprocessing)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "platform": self.platform,
            "max_batch_size": self.max_batch,
            "preferred_batch_sizes": self.preferred_batches,
            "source": self.source,
            "files": self.files,
        }


@dataclass
class RepoResult:
    """What :func:`triton_repo` wrote."""

    path: Path
    models: list[RepoModel]
    queue_delay_us: int
    instances: int

    def model(self, name: str) -> RepoModel:
        return next(m for m in self.models if m.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "queue_delay_us": self.queue_delay_us,
            "instances": self.instances,
            "models": [m.to_dict() for m in self.models],
        }


def triton_repo(
    models: Sequence[str | Path],
    out: str | Path,
    *,
    max_batch: int | None = None,
    instances: int = 1,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    image_input: bool = False,
    warmup: bool = True,
) -> RepoResult:
    """Write a Triton model repository for ``models`` (``.onnx`` files and resnet-deploy engines) to ``out``.

    ``max_batch``: ``max_batch_size`` for ONNX models (default 32); for an engine it may only lower the profile's
    maximum, which is its default. ``instances``: model instances per model. ``queue_delay_us``: how long the
    dynamic batcher may hold a request to form a preferred batch. ``image_input``: add ``<name>_image`` ensembles
    that take uint8 H x W x C images. ``out`` must not exist, or be an empty folder.
    """
    out = Path(out)
    _check_destination(out)
    if not models:
        raise UserError("no models given")
    if not 1 <= instances <= 64:
        raise UserError(f"--instances must be in [1, 64], got {instances}")
    if not 0 <= queue_delay_us <= 10_000_000:
        raise UserError(f"--queue-delay-us must be in [0, 10000000] (10 s), got {queue_delay_us}")
    served = [describe(m, max_batch) for m in models]
    names = [m.name for m in served]
    taken = set(names) | ({f"{n}_preprocess" for n in names} | {f"{n}_image" for n in names} if image_input else set())
    if len(taken) != len(names) * (3 if image_input else 1):
        raise UserError(f"two models would share a folder name ({', '.join(names)}): rename the files")
    files: dict[str, bytes] = {}
    parsed: dict[str, Any] = {}
    result = RepoResult(out, [], queue_delay_us, instances)
    for m in served:
        result.models.append(_add_model(m, files, parsed, instances, queue_delay_us, warmup))
    if image_input:
        for m in served:
            result.models += _add_ensemble(m, files, parsed, instances, queue_delay_us)
    _write(out, files)
    return result


def _check_destination(out: Path) -> None:
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise UserError(f"{out} already exists: give a new folder (or an empty one)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {out}: folder {parent} is not writable")


def _tensor(t: Any, labels: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"name": t.name, "data_type": Enum(f"TYPE_{t.dtype}"), "dims": list(t.dims)}
    if labels:
        d["label_filename"] = LABELS_FILE
    return d


def _model_fields(m: ServedModel, kind: str, instances: int, queue_delay_us: int, warmup: bool) -> dict[str, Any]:
    labels = m.labels is not None
    fields: dict[str, Any] = {
        "name": m.name,
        "platform": m.platform,
        "max_batch_size": m.max_batch,
        "input": [_tensor(t) for t in m.inputs],
        "output": [_tensor(t, labels) for t in m.outputs],
        "dynamic_batching": {
            "preferred_batch_size": m.preferred_batches,
            "max_queue_delay_microseconds": queue_delay_us,
        },
        "instance_group": [{"count": instances, "kind": Enum(kind)}],
    }
    if warmup and all(d > 0 for t in m.inputs for d in t.dims):  # warm-up data needs concrete dims
        zeros = {"zero_data": True}
        fields["model_warmup"] = [
            {
                "name": f"zeros_batch_{b}",
                "batch_size": b,
                "inputs": [
                    {"key": t.name, "value": {"data_type": Enum(f"TYPE_{t.dtype}"), "dims": list(t.dims)} | zeros}
                    for t in m.inputs
                ],
            }
            for b in sorted({1, m.max_batch})
        ]
    return fields


def _header(m: ServedModel, queue_delay_us: int, variant: str) -> str:
    lines = [f"{m.name}: {m.path.name} ({m.precision}), written by resnet-deploy triton-repo ({variant})."]
    if m.profile is not None:
        lo, opt, hi = m.profile
        lines.append(f"max_batch_size = the engine profile's maximum ({hi}); profile batch {lo}..{hi}, optimum {opt}.")
        lines.append(
            f"Built with {m.built_with}: a plan runs only on that GPU model with that TensorRT version, so keep "
            "one plan (one repository) per GPU model and TensorRT version."
        )
    lines.append(
        f"Dynamic batching: preferred batch sizes {m.preferred_batches}; a request waits at most "
        f"{queue_delay_us} us for others to fill one."
    )
    return comment("\n".join(lines))


def _add_model(
    m: ServedModel, files: dict[str, bytes], parsed: dict[str, Any], instances: int, queue_delay_us: int, warmup: bool
) -> RepoModel:
    folder_files = [f"1/{m.filename}"]
    files[f"{m.name}/1/{m.filename}"] = m.data
    if m.sidecar is not None:  # resnet_deploy.load checks the plan against it; Triton's own backend ignores it
        folder_files.append(f"1/{m.filename}.json")
        files[f"{m.name}/1/{m.filename}.json"] = (json.dumps(m.sidecar, indent=2) + "\n").encode()
    if m.labels is not None:
        if any("\n" in label or "\r" in label for label in m.labels):
            raise UserError(f"{m.path}: a class name holds a line break, which a Triton label file cannot")
        folder_files.append(LABELS_FILE)
        files[f"{m.name}/{LABELS_FILE}"] = "".join(f"{label}\n" for label in m.labels).encode()
    variants = {"config.pbtxt": "KIND_GPU"}
    if m.platform == "onnxruntime_onnx":
        variants[f"configs/{CPU_CONFIG}.pbtxt"] = "KIND_CPU"
    for rel, kind in variants.items():
        text = _header(m, queue_delay_us, kind) + render(_model_fields(m, kind, instances, queue_delay_us, warmup))
        config = check_config(text, m.name, source=f"{m.name}/{rel}", files=folder_files)
        if rel == "config.pbtxt":
            parsed[m.name] = config
        folder_files.append(rel)
        files[f"{m.name}/{rel}"] = text.encode()
    return RepoModel(m.name, m.platform, m.max_batch, m.preferred_batches, str(m.path), sorted(folder_files))


def _add_ensemble(
    m: ServedModel, files: dict[str, bytes], parsed: dict[str, Any], instances: int, queue_delay_us: int
) -> list[RepoModel]:
    """``<name>_preprocess`` (python backend, numpy) and ``<name>_image`` (ensemble: preprocess -> model)."""
    from ..data.preprocess import CROP_MIN_SIZE, CROP_RATIO, normalization

    inp = m.inputs[0]
    info = describe_or_shape(m.info, [None, *(d if d > 0 else None for d in inp.dims)])
    if len(m.inputs) != 1 or info is None or info.in_channels not in (1, 3) or len(inp.dims) != 3:
        raise UserError(
            f"{m.path}: --image-input needs one image input (C x H x W, 1 or 3 channels, square, known size); "
            f"the model takes {[(t.name, list(t.dims)) for t in m.inputs]}"
        )
    if tuple(inp.dims) != (info.in_channels, info.input_size, info.input_size) or inp.dtype not in NUMPY_TYPES:
        raise UserError(f"{m.path}: its input {list(inp.dims)} does not match its metadata ({info.in_channels} x "
                        f"{info.input_size} x {info.input_size})")  # fmt: skip
    norm = normalization(info)
    pre, ens = f"{m.name}_preprocess", f"{m.name}_image"
    how = "resize the shorter side + centre crop" if info.input_size >= CROP_MIN_SIZE else "resize"
    scale = "ImageNet mean/std" if norm is not None else "[0, 1]" + (" (the model normalises)" if info.mean else "")
    about = (
        f"{pre}: uint8 H x W x C images (1 or 3 channels) -> {info.in_channels} x {info.input_size} x "
        f"{info.input_size} {inp.dtype} for {m.name}, as resnet-deploy preprocesses images: {how} (bilinear), {scale}."
    )
    pre_fields = {
        "name": pre,
        "backend": "python",
        "max_batch_size": m.max_batch,
        "input": [{"name": IMAGE_INPUT, "data_type": Enum("TYPE_UINT8"), "dims": [-1, -1, -1]}],
        "output": [_tensor(inp)],
        # Only same-sized images batch together; the delay lets equal ones (a camera's frames) meet.
        "dynamic_batching": {"max_queue_delay_microseconds": queue_delay_us},
        "instance_group": [{"count": instances, "kind": Enum("KIND_CPU")}],
        "parameters": parameters(
            {
                "input_size": info.input_size,
                "channels": info.in_channels,
                "crop_min_size": CROP_MIN_SIZE,
                "crop_ratio": CROP_RATIO,
                "mean": None if norm is None else [float(v) for v in norm[0].ravel()],
                "std": None if norm is None else [float(v) for v in norm[1].ravel()],
                "dtype": NUMPY_TYPES[inp.dtype],
            }
        ),
    }
    pre_text = comment(about) + render(pre_fields)
    script = resources.files("resnet_deploy.serve.triton").joinpath("preprocess.py").read_bytes()
    files[f"{pre}/1/model.py"] = script
    parsed[pre] = check_config(pre_text, pre, files=["1/model.py"])
    files[f"{pre}/config.pbtxt"] = pre_text.encode()

    labels = m.labels is not None
    ens_files = [LABELS_FILE] if labels else []
    ens_fields = {
        "name": ens,
        "platform": "ensemble",
        "max_batch_size": m.max_batch,
        "input": [{"name": IMAGE_INPUT, "data_type": Enum("TYPE_UINT8"), "dims": [-1, -1, -1]}],
        "output": [_tensor(t, labels) for t in m.outputs],
        "ensemble_scheduling": {
            "step": [
                {
                    "model_name": pre,
                    "model_version": -1,
                    "input_map": [{"key": IMAGE_INPUT, "value": IMAGE_INPUT}],
                    "output_map": [{"key": inp.name, "value": "preprocessed"}],
                },
                {
                    "model_name": m.name,
                    "model_version": -1,
                    "input_map": [{"key": inp.name, "value": "preprocessed"}],
                    "output_map": [{"key": t.name, "value": t.name} for t in m.outputs],
                },
            ]
        },
    }
    ens_text = comment(f"{ens}: send uint8 images (batch x H x W x C) as {IMAGE_INPUT!r}; {pre} -> {m.name}.")
    ens_text += render(ens_fields)
    check_config(ens_text, ens, files=ens_files, models=parsed)
    files[f"{ens}/config.pbtxt"] = ens_text.encode()
    files[f"{ens}/1/"] = b""  # an ensemble has no files, but Triton loads only versions that have a folder
    if labels:
        files[f"{ens}/{LABELS_FILE}"] = files[f"{m.name}/{LABELS_FILE}"]
    return [
        RepoModel(pre, "python", m.max_batch, [], None, ["1/model.py", "config.pbtxt"]),
        RepoModel(ens, "ensemble", m.max_batch, [], None, sorted(["1/", "config.pbtxt", *ens_files])),
    ]


def _write(out: Path, files: dict[str, bytes]) -> None:
    """All files into a temporary folder beside ``out``, renamed to ``out`` only when every one is written."""
    parent = out.parent if str(out.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        for rel, data in files.items():
            dest = tmp / rel
            if rel.endswith("/"):  # a folder
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a repository is read by the server's user too
        if out.is_dir():
            out.rmdir()  # empty (checked); replaced by the complete repository
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
