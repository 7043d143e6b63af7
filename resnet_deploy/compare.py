"""``resnet-deploy compare A B``: numeric comparison of two models on the same inputs, the way Polygraphy's
``run --validate`` / ``--atol --rtol`` compares two runners.

A is checked against B, the reference, as Polygraphy compares its first runner against its second: relative error is
``|A - B| / |B|`` (a zero in B counts as 2.2e-16, Polygraphy's epsilon), and an element fails only when it is
outside *both* tolerances (Polygraphy's default ``elemwise`` check, ``polygraphy/comparator/compare.py`` of
NVIDIA/TensorRT). Every statistic is accumulated batch by batch, so 10,000 images cost one batch of memory.

``--layers`` (two ONNX graphs of the same model: FP32 against INT8 or FP16, or the two Q/DQ placements) exposes
every intermediate tensor both graphs have, matched by name, and reports SQNR per tensor in B's pipeline order. Our
Q/DQ pass names a quantized tensor ``T_quantized`` (``passes/qdq/insert.py``); the value the next layer really sees
is then the DequantizeLinear output, so that is what stands for ``T`` (ONNX Runtime's placement replaces the ReLU
by the Q, and only the dequantized value exists).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_path, atomic_write_text, check_no_collisions, check_writable
from .backends.base import InferenceModel
from .backends.loader import load, model_files, model_kind
from .data.datasets import open_dataset
from .errors import UserError
from .evaluate import model_name
from .info import describe_or_shape

if TYPE_CHECKING:
    import onnx

DEFAULT_ATOL = 1e-5  # Polygraphy's defaults: a float32 runner against another float32 runner
DEFAULT_RTOL = 1e-5
DEFAULT_BATCH_SIZE = 256
LAYERS_BATCH_SIZE = 32  # every intermediate tensor of a batch is held at once
DEFAULT_JUMP_DB = 6.0  # 6 dB = the error's amplitude doubles relative to the signal
EPSILON = 2.220446049250313e-16  # Polygraphy's: a zero in the reference
REPORT_FORMAT = "resnet-deploy-compare/1"


# ------------------------------------------------------------------------------------------------ statistics


@dataclass
class OutputStats:
    """Error statistics of one output of A against the same output of B, accumulated over batches."""

    name: str
    atol: float
    rtol: float
    count: int = 0  # elements
    samples: int = 0
    max_abs: float = 0.0
    sum_abs: float = 0.0
    max_rel: float = 0.0
    sum_rel: float = 0.0
    mismatches: int = 0  # elements outside both tolerances (or NaN)
    sum_cosine: float = 0.0
    min_cosine: float = 1.0
    top1_agree: int = 0
    top5_agree: int = 0
    top_k: int = 0  # k of "top-5" (min(5, classes)); 0 for outputs that are not (batch, classes)
    non_finite: int = 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """Fold one batch of A's and B's output (same shape, batch first) into the statistics."""
        a64 = a.astype(np.float64, copy=False)
        b64 = b.astype(np.float64, copy=False)
        absdiff = np.abs(a64 - b64)
        base = np.abs(b64)
        reldiff = absdiff / np.where(base == 0, EPSILON, base)
        bad = ~np.isfinite(absdiff)
        self.non_finite += int(bad.sum())
        self.mismatches += int((((absdiff > self.atol) | bad) & ((reldiff > self.rtol) | bad)).sum())
        finite_abs, finite_rel = absdiff[~bad], reldiff[~bad]
        if finite_abs.size:
            self.max_abs = max(self.max_abs, float(finite_abs.max()))
            self.max_rel = max(self.max_rel, float(finite_rel.max()))
        self.sum_abs += float(finite_abs.sum())
        self.sum_rel += float(finite_rel.sum())
        self.count += absdiff.size
        n = a.shape[0]
        fa, fb = a64.reshape(n, -1), b64.reshape(n, -1)
        norms = np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1)
        dots = (fa * fb).sum(axis=1)
        # two zero vectors are the same vector; one zero vector against another is as far apart as it gets
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where((fa == fb).all(axis=1), 1.0, 0.0))
        cos = np.nan_to_num(cos, nan=0.0)
        self.sum_cosine += float(cos.sum())
        self.min_cosine = min(self.min_cosine, float(cos.min()))
        self.samples += n
        if a.ndim == 2 and a.shape[1] >= 2:
            k = min(5, a.shape[1])
            self.top_k = k
            # stable sort of -logits: ties go to the lower class index, as argmax and `eval` do
            top_a = np.argsort(-a64, axis=1, kind="stable")[:, :k]
            ref1 = np.argsort(-b64, axis=1, kind="stable")[:, 0]
            self.top1_agree += int((top_a[:, 0] == ref1).sum())
            self.top5_agree += int((top_a == ref1[:, None]).any(axis=1).sum())

    @property
    def passed(self) -> bool:
        return self.count > 0 and self.mismatches == 0

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / max(1, self.count - self.non_finite)

    @property
    def mean_rel(self) -> float:
        return self.sum_rel / max(1, self.count - self.non_finite)

    @property
    def cosine(self) -> float:
        return self.sum_cosine / max(1, self.samples)

    def to_dict(self) -> dict[str, Any]:
        def pct(v: int) -> float | None:
            return round(100.0 * v / self.samples, 4) if self.top_k and self.samples else None

        return {
            "name": self.name,
            "passed": self.passed,
            "elements": self.count,
            "mismatches": self.mismatches,
            "non_finite": self.non_finite,
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "max_rel": self.max_rel,
            "mean_rel": self.mean_rel,
            "cosine": self.cosine,
            "min_cosine": self.min_cosine,
            "top1_agreement": pct(self.top1_agree),
            "top5_agreement": pct(self.top5_agree),
            "top_k": self.top_k or None,
        }


@dataclass
class LayerStats:
    """SQNR of one intermediate tensor of A against B's: ``10 log10(sum B^2 / sum (A - B)^2)``."""

    name: str  # the tensor's name in B (the logical name)
    op: str  # the op of B's node that makes it
    name_in_a: str
    signal: float = 0.0
    noise: float = 0.0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        b64 = b.astype(np.float64, copy=False)
        self.signal += float(np.square(b64).sum())
        self.noise += float(np.square(a.astype(np.float64, copy=False) - b64).sum())

    @property
    def sqnr_db(self) -> float:
        if not math.isfinite(self.noise):
            return -math.inf
        if self.noise == 0:
            return math.inf
        if self.signal == 0:
            return -math.inf
        return 10.0 * math.log10(self.signal / self.noise)


def _db(v: float) -> float | None:
    """JSON has no infinity: identical tensors (inf dB) and broken ones (-inf) are None beside a flag."""
    return round(v, 4) if math.isfinite(v) else None


@dataclass
class LayerReport:
    """Per-layer SQNR in pipeline order, and where the error enters and jumps."""

    layers: list[LayerStats]
    jump_db: float
    only_in_b: int  # B's tensors with no match in A
    notes: list[str] = field(default_factory=list)

    def drops(self) -> list[float | None]:
        """SQNR lost from the previous layer (None where either is not finite)."""
        out: list[float | None] = [None]
        for prev, cur in zip(self.layers, self.layers[1:], strict=False):
            p, c = prev.sqnr_db, cur.sqnr_db
            out.append(p - c if math.isfinite(p) and math.isfinite(c) else None)
        return out

    @property
    def first_error(self) -> LayerStats | None:
        """The first tensor on which A and B differ at all."""
        return next((s for s in self.layers if s.sqnr_db != math.inf), None)

    @property
    def first_jump(self) -> LayerStats | None:
        """The first tensor whose SQNR is at least ``jump_db`` below the previous tensor's."""
        for s, d in zip(self.layers, self.drops(), strict=True):
            if d is not None and d >= self.jump_db:
                return s
        return None

    @property
    def largest_drop(self) -> tuple[LayerStats, float] | None:
        best = max(((s, d) for s, d in zip(self.layers, self.drops(), strict=True) if d is not None),
                   key=lambda sd: sd[1], default=None)  # fmt: skip
        return best if best is not None and best[1] > 0 else None

    def to_dict(self) -> dict[str, Any]:
        def name(s: LayerStats | None) -> str | None:
            return None if s is None else s.name

        largest = self.largest_drop
        return {
            "jump_db": self.jump_db,
            "first_error": name(self.first_error),
            "first_jump": name(self.first_jump),
            "largest_drop": None if largest is None else {"layer": largest[0].name, "db": round(largest[1], 4)},
            "unmatched_in_reference": self.only_in_b,
            "layers": [
                {
                    "index": i,
                    "name": s.name,
                    "op": s.op,
                    "name_in_a": s.name_in_a,
                    "sqnr_db": _db(s.sqnr_db),
                    "identical": s.sqnr_db == math.inf,
                    "drop_db": None if d is None else round(d, 4),
                }
                for i, (s, d) in enumerate(zip(self.layers, self.drops(), strict=True))
            ],
            "notes": list(self.notes),
        }


@dataclass
class CompareReport:
    """What :func:`compare` measured: A against B (the reference) on the same inputs."""

    a: str
    b: str
    inputs: str
    samples: int
    atol: float
    rtol: float
    outputs: list[OutputStats]
    layers: LayerReport | None = None
    plot: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "a": self.a,
            "b": self.b,
            "inputs": self.inputs,
            "samples": self.samples,
            "atol": self.atol,
            "rtol": self.rtol,
            "passed": self.passed,
            "outputs": [o.to_dict() for o in self.outputs],
            "layers": None if self.layers is None else self.layers.to_dict(),
            "plot": self.plot,
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        lines = [f"A        {self.a}", f"B (ref)  {self.b}", f"inputs   {self.inputs} ({self.samples} samples)"]
        for o in self.outputs:
            verdict = "PASSED" if o.passed else "FAILED"
            lines.append(
                f"{verdict} output '{o.name}': {o.mismatches} of {o.count} elements outside atol={self.atol:g} "
                f"and rtol={self.rtol:g}"
            )
            lines.append(f"  abs error   max {o.max_abs:.6g}  mean {o.mean_abs:.6g}")
            lines.append(f"  rel error   max {o.max_rel:.6g}  mean {o.mean_rel:.6g}  (relative to B)")
            lines.append(f"  cosine      mean {o.cosine:.6f}  min {o.min_cosine:.6f}  (per sample)")
            if o.top_k and o.samples:
                lines.append(
                    f"  agreement   top-1 {100.0 * o.top1_agree / o.samples:.2f} %  ({o.top1_agree}/{o.samples}), "
                    f"B's top-1 in A's top-{o.top_k} {100.0 * o.top5_agree / o.samples:.2f} %"
                )
            if o.non_finite:
                lines.append(f"  {o.non_finite} elements NaN or infinite in A or B")
        if self.layers is not None:
            lines.extend(_layer_lines(self.layers))
        if self.plot is not None:
            lines.append(f"plot written to {self.plot}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _layer_lines(rep: LayerReport) -> list[str]:
    lines = [f"layers   {len(rep.layers)} tensors matched by name, SQNR of A against B in B's order:"]
    width = min(60, max((len(s.name) for s in rep.layers), default=4))
    jump = rep.first_jump
    for s, d in zip(rep.layers, rep.drops(), strict=True):
        db = s.sqnr_db
        text = "identical" if db == math.inf else ("broken" if db == -math.inf else f"{db:8.2f} dB")
        mark = "  <- first jump" if s is jump else ""
        drop = f"  (-{d:.1f})" if d is not None and d > 0 else ""
        lines.append(f"  {s.name[-width:]:<{width}} {s.op:<16} {text:>11}{drop}{mark}")
    first = rep.first_error
    lines.append(f"first difference: {first.name if first else 'none (all matched tensors are identical)'}")
    if jump is not None:
        lines.append(f"first jump of {rep.jump_db:g} dB or more: {jump.name} ({jump.op})")
    else:
        lines.append(f"no layer loses {rep.jump_db:g} dB or more from the one before it")
    largest = rep.largest_drop
    if largest is not None:
        lines.append(f"largest drop: {largest[0].name} ({largest[0].op}), {largest[1]:.1f} dB")
    if rep.only_in_b:
        lines.append(f"{rep.only_in_b} tensors of B have no tensor of the same name in A")
    lines.extend(f"note: {n}" for n in rep.notes)
    return lines


# ------------------------------------------------------------------------------------------------------ inputs


def _cast(x: np.ndarray, model: InferenceModel) -> np.ndarray:
    return x if x.dtype == model.input_dtype else x.astype(model.input_dtype)


def _check_same_input(a: InferenceModel, b: InferenceModel, sample_shape: tuple[int, ...], source: str) -> None:
    for role, m in (("A", a), ("B", b)):
        want = m.input_shape[1:]
        if len(want) != len(sample_shape) or any(
            w is not None and w != g for w, g in zip(want, sample_shape, strict=False)
        ):
            shape = "x".join(map(str, sample_shape))
            raise UserError(f"{source} has samples of shape {shape}; model {role} takes {m.describe_shape()}")


def _batches_from(
    a: InferenceModel, b: InferenceModel, data: str | None, input_npy: str | Path | None, limit: int | None,
    batch_size: int,
) -> tuple[str, int, Iterator[np.ndarray]]:  # fmt: skip
    """(description, sample count, float32 batches) from ``--input`` or ``--data`` (default: Fashion-MNIST test
    for Fashion-MNIST models)."""
    if data is not None and input_npy is not None:
        raise UserError("give --data or --input, not both")
    if input_npy is not None:
        from .infer import load_npy

        arr = load_npy(input_npy)
        n = arr.shape[0] if limit is None else min(limit, arr.shape[0])
        _check_same_input(a, b, tuple(arr.shape[1:]), str(input_npy))

        def from_array() -> Iterator[np.ndarray]:
            for i in range(0, n, batch_size):
                yield np.array(arr[i : min(n, i + batch_size)], dtype=np.float32)  # a copy: the memmap is read-only

        return str(input_npy), n, from_array()
    info = describe_or_shape(b.info, b.input_shape) or describe_or_shape(a.info, a.input_shape)
    spec = data
    if spec is None:
        if info is not None and info.dataset == "fashion-mnist":
            spec = "fashion-mnist:test"
        else:
            raise UserError("--data or --input is required: neither model names the dataset it was trained on")
    dataset = open_dataset(spec, info, need_labels=False)
    _check_same_input(a, b, tuple(dataset.sample_shape), dataset.spec)
    n = len(dataset.subset_indices(limit))
    if n == 0:
        raise UserError(f"{dataset.spec} holds no samples")

    def from_dataset() -> Iterator[np.ndarray]:
        for x, _ in dataset.batches(batch_size, limit):
            yield x

    return dataset.spec, n, from_dataset()


# ---------------------------------------------------------------------------------------------------- outputs


def compare_models(
    a: InferenceModel,
    b: InferenceModel,
    batches: Iterator[np.ndarray],
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> list[OutputStats]:
    """Run both models on every batch and accumulate the error statistics of A's output against B's."""
    stats = OutputStats(b.output_name, atol, rtol)
    for x in batches:
        out_a = np.asarray(a.predict(_cast(x, a)))
        out_b = np.asarray(b.predict(_cast(x, b)))
        if out_a.shape != out_b.shape:
            raise UserError(f"model A returned shape {out_a.shape}, model B {out_b.shape}: nothing to compare")
        stats.add(out_a, out_b)
    return [stats]


# ----------------------------------------------------------------------------------------------------- layers


def tensor_aliases(model: onnx.ModelProto) -> dict[str, str]:
    """Logical tensor name -> the tensor that carries its value in ``model``: every node output, with a
    quantized tensor ``T`` standing for the DequantizeLinear output of the ``T_quantized`` that our Q/DQ pass
    writes (the value the next layer sees). Weights' DequantizeLinear outputs are left out (no activation)."""
    initializers = {i.name for i in model.graph.initializer}
    constant = set(initializers)
    for node in model.graph.node:  # outputs computed from constants only (weights' DQ) are constants too
        if node.op_type == "Constant" or (node.input and all(i in constant or not i for i in node.input)):
            constant.update(node.output)
    q_base: dict[str, str] = {}  # "T_quantized" -> "T"
    first_dq: dict[str, str] = {}  # "T" -> the first DequantizeLinear output of T_quantized
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0].endswith("_quantized"):
            q_base[node.output[0]] = node.output[0][: -len("_quantized")]
        elif node.op_type == "DequantizeLinear" and node.input and node.input[0] in q_base:
            first_dq.setdefault(q_base[node.input[0]], node.output[0])
    dq_outputs = set(first_dq.values())
    aliases: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and (
            node.output[0] in dq_outputs or node.output[0] in q_base
        ):
            continue
        for out in node.output:
            if out and out not in constant:
                aliases[out] = out
    # a quantized tensor that also exists in float (TensorRT's placement quantizes a ReLU's output) is what the
    # next layer sees after its Q/DQ: the DQ output wins
    aliases.update(first_dq)
    return aliases


def _producers(model: onnx.ModelProto) -> dict[str, str]:
    return {out: node.op_type for node in model.graph.node for out in node.output}


def _expose(model: onnx.ModelProto, names: list[str]) -> bytes:
    """``model`` with ``names`` added as graph outputs (typed where shape inference knows the type)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(m)
        types = {v.name: v.type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    except Exception:  # a custom-domain node (the residual plugin) stops inference; ORT infers types itself
        types = {}
    present = {o.name for o in m.graph.output}
    for name in names:
        if name in present:
            continue
        vi = onnx.ValueInfoProto(name=name)
        if name in types:
            vi.type.CopyFrom(types[name])
        m.graph.output.append(vi)
        present.add(name)
    return m.SerializeToString()


def _session(data: bytes, source: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UserError(f"ONNX Runtime cannot run {source} with its tensors exposed: {' '.join(str(exc).split())}") \
            from None  # fmt: skip


def compare_layers(
    path_a: str | Path, path_b: str | Path, batches: Iterator[np.ndarray], jump_db: float = DEFAULT_JUMP_DB
) -> LayerReport:
    """SQNR of every tensor the two ONNX graphs share (by name) in B's node order, on ONNX Runtime (CPU)."""
    from .onnx_io import load_onnx

    models = [load_onnx(path_a), load_onnx(path_b)]
    alias_a, alias_b = (tensor_aliases(m) for m in models)
    op_b = _producers(models[1])
    matched = [name for name in alias_b if name in alias_a]
    only_in_b = len(alias_b) - len(matched)
    if not matched:
        raise UserError(f"{path_a} and {path_b} share no tensor names: --layers needs two graphs of the same model")
    sessions = [
        _session(_expose(models[0], [alias_a[n] for n in matched]), str(path_a)),
        _session(_expose(models[1], [alias_b[n] for n in matched]), str(path_b)),
    ]
    feeds = [s.get_inputs()[0] for s in sessions]
    # the op that makes the tensor; a ReLU that ONNX Runtime's placement replaced by its Q is only a Q/DQ pair
    layers = [LayerStats(n, op_b.get(n, "Q/DQ"), alias_a[n]) for n in matched]
    notes = [
        "tensors exposed as outputs keep ONNX Runtime from fusing the nodes that make them (QLinearConv from "
        "DQ-Conv-Q): per-layer values come from the unfused graphs, final outputs from the normal run"
    ]
    for x in batches:
        results = []
        for sess, feed, aliases in zip(sessions, feeds, (alias_a, alias_b), strict=True):
            dtype = np.float16 if feed.type == "tensor(float16)" else np.float32
            wanted = [aliases[n] for n in matched]
            try:
                values = sess.run(wanted, {feed.name: x.astype(dtype, copy=False)})
            except Exception as exc:
                raise UserError(f"ONNX Runtime failed to run: {' '.join(str(exc).split())}") from None
            results.append(values)
        for stats, va, vb in zip(layers, results[0], results[1], strict=True):
            va, vb = np.asarray(va), np.asarray(vb)
            if va.shape != vb.shape:
                raise UserError(f"tensor {stats.name} has shape {va.shape} in A and {vb.shape} in B")
            stats.add(va, vb)
    return LayerReport(layers=layers, jump_db=jump_db, only_in_b=only_in_b, notes=notes)


def _short_name(s: LayerStats) -> str:
    """An exporter's ``/net/layer1/layer1.0/bn1/BatchNormalization_output_0`` as ``layer1.0/bn1 Conv``."""
    parts = [p for p in s.name.split("/") if p]
    return f"{'/'.join(parts[-3:-1])} {s.op}" if len(parts) >= 2 else s.name


def plot_layers(rep: LayerReport, dest: str | Path, title: str) -> Path:
    """SQNR per layer as a PNG (written atomically): identical tensors drawn at the top edge, the first jump
    marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [s.sqnr_db for s in rep.layers]
    finite = [v for v in values if math.isfinite(v)]
    top = (max(finite) if finite else 60.0) + 10.0
    bottom = min(0.0, min(finite) - 5.0) if finite else 0.0
    shown = [top if v == math.inf else (bottom if v == -math.inf else v) for v in values]
    x = np.arange(len(values))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.18 * len(values)), 4.5))
    ax.plot(x, shown, marker="o", markersize=3, linewidth=1.2, color="#1f77b4", label="SQNR of A against B")
    same = [i for i, v in enumerate(values) if v == math.inf]
    if same:
        ax.scatter(same, [top] * len(same), marker="^", color="#2ca02c", zorder=3, label="identical")
    jump = rep.first_jump
    if jump is not None:
        j = rep.layers.index(jump)
        ax.axvline(j, color="#d62728", linestyle="--", linewidth=1, label=f"first jump (>= {rep.jump_db:g} dB)")
    ax.set_xlabel("tensor, in B's pipeline order")
    ax.set_ylabel("SQNR (dB)")
    ax.set_ylim(bottom, top + 5)
    ax.set_title(title, fontsize=10)
    if len(values) <= 80:
        ax.set_xticks(x, [_short_name(s) for s in rep.layers], rotation=90, fontsize=6)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(dest)


# -------------------------------------------------------------------------------------------------------- api


def compare(
    a: str | Path,
    b: str | Path,
    *,
    data: str | None = None,
    input_npy: str | Path | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    layers: bool = False,
    plot: str | Path | None = None,
    output: str | Path | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    jump_db: float = DEFAULT_JUMP_DB,
    arch_a: str | None = None,
    arch_b: str | None = None,
) -> CompareReport:
    """``resnet-deploy compare A B``: run A and B (checkpoint, ONNX or engine, any two) on the same inputs and
    measure A's outputs against B's: max/mean absolute and relative error, cosine similarity, top-1/top-5
    agreement, pass/fail against ``atol``/``rtol``. ``layers`` (two ONNX graphs) adds SQNR per matched tensor;
    ``plot`` writes it as a PNG, ``output`` the JSON report. Engines need a TensorRT GPU (a one-line refusal
    elsewhere)."""
    for flag, v in (("--atol", atol), ("--rtol", rtol)):
        if not (math.isfinite(v) and v >= 0):
            raise UserError(f"{flag} must be a finite number >= 0, got {v}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if not math.isfinite(jump_db) or jump_db <= 0:
        raise UserError(f"--jump-db must be a positive number of dB, got {jump_db}")
    kinds = (model_kind(a), model_kind(b))
    if plot is not None and not layers:
        raise UserError("--plot draws the per-layer SQNR: it needs --layers")
    if layers and kinds != ("onnx", "onnx"):
        which, kind = ("A", kinds[0]) if kinds[0] != "onnx" else ("B", kinds[1])
        what = "an engine" if kind == "engine" else "a checkpoint"
        raise UserError(f"--layers compares two ONNX graphs; {which} is {what}: compare its ONNX (export, --emit-onnx)")
    outputs = {k: v for k, v in (("-o", output), ("--plot", plot)) if v is not None}
    for dest in outputs.values():
        check_writable(dest)
    if outputs:
        inputs = [*model_files(a, "A").items(), *model_files(b, "B").items()]
        for flag, given in (("--input", input_npy), ("--data", data)):
            if given is not None and Path(given).exists():
                inputs.append((flag, Path(given)))
        check_no_collisions(outputs, inputs)
    step = batch_size or (LAYERS_BATCH_SIZE if layers else DEFAULT_BATCH_SIZE)
    model_a = load(a, arch=arch_a)
    model_b = None
    try:
        model_b = load(b, arch=arch_b)
        source, n, batches = _batches_from(model_a, model_b, data, input_npy, limit, step)
        stats = compare_models(model_a, model_b, batches, atol, rtol)
        layer_report = None
        if layers:
            _, _, batches = _batches_from(model_a, model_b, data, input_npy, limit, step)
            layer_report = compare_layers(a, b, batches, jump_db)
        report = CompareReport(
            a=model_name(model_a), b=model_name(model_b), inputs=source, samples=n, atol=atol, rtol=rtol,
            outputs=stats, layers=layer_report,
        )  # fmt: skip
    finally:
        model_a.close()
        if model_b is not None:
            model_b.close()
    if plot is not None and report.layers is not None:
        plot_layers(report.layers, plot, f"{report.a} against {report.b} ({n} samples)")
        report.plot = str(plot)
    if output is not None:
        atomic_write_text(output, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
