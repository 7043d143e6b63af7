"""Accuracy-aware mixed precision: keep the fewest Conv/Gemm layers out of int8 that bring the accuracy drop
within a budget.

1. measure FP32 and all-int8 top-1 on an evaluation subset (ONNX Runtime CPU);
2. if the drop exceeds the budget, measure each layer's sensitivity: top-1 with only that layer left in float;
3. greedily return layers to float, most sensitive first, until the drop is within budget.
4. if the budget is still missed with every layer but one in float, refuse (one-line :class:`UserError`): keeping
   every layer is not an INT8 build, and in the ONNX Runtime placement such a graph would still carry the Q/DQ
   pairs of its pooling inputs while claiming "every layer is in float". So ``build`` exits with status 2 and
   writes nothing; the message gives the measured accuracies so the user can choose a budget or precision.

A layer "kept in float" has float32 weights (and bias) and an unquantized input, or float16 weights between two
Casts where the graph is for TensorRT (``keep_dtype`` "fp16"; ONNX Runtime's CPU kernels gain nothing from FP16).
In the TensorRT placement its residual Q/DQ goes too; in the ONNX Runtime placement its output stays uint8,
because its int8 neighbours read it, and pooling inputs stay uint8 whatever is kept, so there even an all-float
search result is not exactly FP32. A strongly typed TensorRT engine runs the layer in the graph's type, so the
accuracy measured here on ONNX Runtime is what TensorRT computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..errors import UserError
from ..passes.qdq import QuantPlan, insert_qdq

EVAL_BATCH = 250


def top1(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray, batch: int = EVAL_BATCH) -> float:
    """Top-1 accuracy in percent of ``model`` on ONNX Runtime CPU."""
    from ..backends.onnxruntime import OnnxRuntimeModel

    m = OnnxRuntimeModel(model)
    try:
        correct = 0
        for i in range(0, len(x), batch):
            logits = m.predict(np.ascontiguousarray(x[i : i + batch], dtype=m.input_dtype))
            correct += int((logits.argmax(axis=1) == y[i : i + batch]).sum())
    finally:
        m.close()
    return 100.0 * correct / len(x)


@dataclass
class MixedPrecisionResult:
    """The layers kept in float and the measurements that chose them (accuracies in percent on the subset)."""

    max_drop: float
    samples: int
    fp32_top1: float
    int8_top1: float
    final_top1: float
    keep_float: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)  # layer -> top-1 gain when left in float
    evaluations: int = 0
    within_budget: bool = True  # always True for a returned result: a missed budget is refused
    keep_dtype: str = "fp32"

    def to_dict(self) -> dict[str, object]:
        return {
            "max_drop": self.max_drop,
            "samples": self.samples,
            "fp32_top1": self.fp32_top1,
            "int8_top1": self.int8_top1,
            "final_top1": self.final_top1,
            "keep_float": list(self.keep_float),
            "keep_dtype": self.keep_dtype,
            "sensitivity": dict(self.sensitivity),
            "evaluations": self.evaluations,
            "within_budget": self.within_budget,
        }


def search_keep_float(
    model: onnx.ModelProto,
    plan: QuantPlan,
    amax: dict[str, float],
    x: np.ndarray,
    y: np.ndarray,
    max_drop: float,
    on_step: Callable[[str], None] | None = None,
    keep_dtype: str = "fp32",
) -> MixedPrecisionResult:
    """Choose the layers to keep in float so that top-1 on (x, y) drops by at most ``max_drop`` points."""
    if max_drop < 0:
        raise UserError(f"--max-accuracy-drop must be >= 0, got {max_drop}")
    if len(x) == 0:
        raise UserError("accuracy-aware mixed precision needs evaluation data with at least one image")

    def say(msg: str) -> None:
        if on_step is not None:
            on_step(msg)

    def measure(keep: set[str]) -> float:
        q, _ = insert_qdq(model, plan, amax, keep, keep_dtype)
        result.evaluations += 1
        return top1(q, x, y)

    result = MixedPrecisionResult(max_drop, len(x), 0.0, 0.0, 0.0, keep_dtype=keep_dtype)
    say("evaluating FP32")
    result.fp32_top1 = top1(model, x, y)
    say("evaluating INT8")
    result.int8_top1 = result.final_top1 = measure(set())
    target = result.fp32_top1 - max_drop
    if result.int8_top1 >= target:
        return result
    for k, layer in enumerate(plan.layers):
        say(f"sensitivity {k + 1}/{len(plan.layers)}: {layer}")
        result.sensitivity[layer] = measure({layer}) - result.int8_top1
    order = sorted(plan.layers, key=lambda name: -result.sensitivity[name])  # stable: graph order breaks ties
    keep: set[str] = set()
    for layer in order[:-1]:  # all of them in float would be no INT8 build at all: refused below instead
        keep.add(layer)
        result.keep_float.append(layer)
        say(f"keeping {len(keep)} layer(s) in float")
        result.final_top1 = measure(keep)
        if result.final_top1 >= target:
            return result
    result.within_budget = False
    raise UserError(
        f"--max-accuracy-drop {max_drop:g} cannot be met with any layer in int8: on {len(x)} evaluation images FP32 "
        f"scores {result.fp32_top1:.2f} %, all-INT8 {result.int8_top1:.2f} %, and with {len(keep)} of "
        f"{len(plan.layers)} layers in {keep_dtype} still {result.final_top1:.2f} %; nothing written (raise the "
        "budget, calibrate on other data, or build --precision fp16)"
    )
