"""Loading and saving weights safely: torchvision-style state dicts (.pth/.pt) and .safetensors.

Checkpoints are untrusted input: .pth files load with ``torch.load(weights_only=True)`` and every value must be
a tensor; .safetensors holds only tensors and string metadata.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_path
from ..errors import UserError
from ..info import CHECKPOINT_FORMAT, LIMITS, ModelInfo
from .bundled import resolve_weights
from .registry import ARCHITECTURES, build_model, get_arch
from .resnet import NormalizedModel

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{path} holds no state dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: entry {key!r} is not a tensor; expected a state dict of tensors")
        state[key.removeprefix("module.")] = value
    return state


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a state dict and its metadata (empty for .pth) without executing anything from the file."""
    path = resolve_weights(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                state = {k.removeprefix("module."): f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot read {path}: corrupt or not a safetensors file ({exc})") from None
        if not state:
            raise UserError(f"{path} holds no tensors")
        return state, metadata
    if path.suffix not in _TORCH_SUFFIXES:
        raise UserError(f"{path}: unsupported weights format (use .pth, .pt or .safetensors)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says enough
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe pickles
        raise UserError(f"cannot read {path}: {_load_refusal(exc)}") from None
    return _unwrap(obj, path), {}


def _load_refusal(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in our words. torch's own message is a paragraph that
    advises re-running with ``weights_only=False`` (which would run the file's code) and buries the reason, e.g.
    "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"."""
    text = str(exc)
    blocked = re.search(r"GLOBAL\s+([\w.]+)", text)
    if blocked:
        return (
            f"it asks to import and call {blocked.group(1)} while loading, which a file of plain tensors never does; "
            "blocked (do not load this file: it may be malicious)"
        )
    lines = [
        line.strip().removeprefix("WeightsUnpickler error:").strip()
        for line in text.splitlines()
        if line.strip() and "weights_only" not in line and not line.startswith("Check the documentation")
    ]
    reason = lines[0] if lines else type(exc).__name__
    return f"corrupt, or not a plain state dict ({reason})"


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], arch: str, source: str) -> None:
    """``load_state_dict(strict=True)`` with one message naming missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    # Older torchvision checkpoints predate BatchNorm's num_batches_tracked buffer; it does not affect inference.
    state = dict(state)
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or misshaped:

        def _few(items: list[str]) -> str:
            return ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_few(unexpected)}")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped: {_few(misshaped)}")
        raise UserError(f"weights {source} do not fit {arch}: " + "; ".join(parts))
    check_tensors(state, expected, source)
    model.load_state_dict(state, strict=True)


def check_tensors(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights that would load without error and compute nonsense: integer (quantized) tensors where the
    network holds floats (``load_state_dict`` would silently convert them), NaN or infinite values, and a negative
    BatchNorm variance (its square root is NaN)."""
    for key, want in expected.items():
        got = state.get(key)
        if got is None or not want.is_floating_point():
            continue
        if not got.is_floating_point():
            raise UserError(
                f"weights {source}: tensor '{key}' is {str(got.dtype).removeprefix('torch.')}, not floating point "
                "(quantized or corrupt checkpoints are not loaded)"
            )
        if not bool(torch.isfinite(got).all()):
            raise UserError(f"weights {source}: tensor '{key}' holds NaN or infinite values")
        if key.endswith("running_var") and bool((got < 0).any()):
            raise UserError(
                f"weights {source}: BatchNorm variance '{key}' is negative (min {float(got.min()):.3g}): the "
                "checkpoint is corrupt"
            )


def _guess_num_classes(state: dict[str, torch.Tensor]) -> int | None:
    fc = state.get("fc.weight")
    return int(fc.shape[0]) if fc is not None and fc.ndim == 2 else None


def _guess_in_channels(state: dict[str, torch.Tensor]) -> int | None:
    conv = state.get("conv1.weight")
    return int(conv.shape[1]) if conv is not None and conv.ndim == 4 else None


def load_model(
    arch: str | None = None,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: int | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Build a network in eval mode, load its weights, and return it with its :class:`ModelInfo`.

    A resnet-deploy checkpoint names its architecture, so ``arch`` may be omitted; for other files the class
    count and input channels are read off the weights when not given.
    """
    for what, value in (("num_classes", num_classes), ("in_channels", in_channels), ("input_size", input_size)):
        low, high = LIMITS[what]
        if value is not None and value < low:  # checked here: 0 would otherwise fall back to a default below
            raise UserError(f"{what} must be >= {low}, got {value}")
        if value is not None and value > high:  # 10^12 classes would be a giant allocation, not an error
            raise UserError(f"{what} {value} is out of range ({low}..{high})")
    state: dict[str, torch.Tensor] | None = None
    info: ModelInfo | None = None
    source = str(weights)
    if weights is not None:
        path = resolve_weights(weights)
        source = path.name
        state, meta = read_checkpoint(path)
        if meta.get("format") == CHECKPOINT_FORMAT:
            info = ModelInfo.from_metadata(meta, source)
            if arch is not None and arch != info.arch:
                raise UserError(f"weights {source} are for {info.arch}, not {arch}")
    if info is None:
        if arch is None:
            raise UserError("--arch is required unless the weights are a resnet-deploy checkpoint")
        spec = get_arch(arch)
        info = ModelInfo(arch=arch, input_size=input_size or spec.default_input_size)
        info.num_classes = num_classes or (state is not None and _guess_num_classes(state)) or 1000
        info.in_channels = in_channels or (state is not None and _guess_in_channels(state)) or 3
    elif num_classes is not None and num_classes != info.num_classes:
        raise UserError(f"weights {source} have {info.num_classes} classes, not {num_classes}")
    if input_size is not None:
        info.input_size = input_size
    info.validate(source)
    net = build_model(info.arch, info.num_classes, info.in_channels)
    if state is not None:
        load_state_dict_strict(net, state, info.arch, source)
    model: nn.Module = net
    if info.mean is not None and info.std is not None:
        model = NormalizedModel(net, info.mean, info.std)
    return model.eval(), info


def save_checkpoint(path: str | Path, net: nn.Module, info: ModelInfo) -> Path:
    """Save the bare network's state dict (torchvision keys) with ``info`` as safetensors metadata, atomically."""
    from safetensors.torch import save_file

    if info.arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{info.arch}'")
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=info.to_metadata())
    return Path(path)


def randomize_batchnorm(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm of ``net`` plausible statistics and affine parameters, in place (a fresh network has
    mean 0 / variance 1, which makes BN folding and per-channel quantization trivially exact). For tests and speed
    benchmarks with random weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(n, generator=g) * 0.8 + 0.4)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                if m.num_batches_tracked is not None:
                    m.num_batches_tracked.fill_(1000)
    return net
