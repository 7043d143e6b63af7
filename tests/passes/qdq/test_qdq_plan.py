"""The Q/DQ plan data model: which tensors get calibrated, and the encoding each one's range gives."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.passes.qdq import ActivationSite, QuantPlan


def uint8_plan() -> QuantPlan:
    """conv reads x; pool reads r (non-negative); flatten's output f is tied to the pool's p, p to r."""
    return QuantPlan(
        activations=[
            ActivationSite("x", "conv", 0, "conv"),
            ActivationSite("r", "pool", 0, "other"),
            ActivationSite("f", "gemm", 0, "gemm"),
            ActivationSite("x", "add", 1, "residual", "conv"),
        ],
        activation_dtype="uint8",
        unsigned={"r"},
        tied={"f": "p", "p": "r"},
    )


def test_tensors_are_distinct_untied_and_in_graph_order() -> None:
    assert uint8_plan().tensors == ["x", "r"]


def test_tied_tensors_take_their_roots_range_and_sign() -> None:
    plan = uint8_plan()
    assert plan.root("f") == "r" and plan.root("x") == "x"
    scale, zp = plan.encoding("f", {"x": 1.0, "r": 2.55})
    assert float(scale) == pytest.approx(0.01) and zp.dtype == np.uint8 and int(zp) == 0
    scale, zp = plan.encoding("x", {"x": 1.27, "r": 2.55})
    assert float(scale) == pytest.approx(0.01) and int(zp) == 128


def test_default_plan_is_int8_and_a_missing_range_is_an_error() -> None:
    plan = QuantPlan(activations=[ActivationSite("x", "conv", 0, "conv")])
    scale, zp = plan.encoding("x", {"x": 1.27})
    assert float(scale) == pytest.approx(0.01) and zp.dtype == np.int8
    with pytest.raises(UserError, match="no calibration range for tensor 'r'"):
        uint8_plan().encoding("f", {"x": 1.0})
