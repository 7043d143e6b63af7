"""The H x W that trtexec-style ``--shapes`` / ``--min/--opt/--max-shapes`` ask for, and what it means for a build.

A ResNet export traces one input size; another fixed size needs another export, and a range of sizes an export
with dynamic H and W axes (our ResNets end in adaptive average pooling, so any size at or above the network's total
stride works). The batch part of the flags is :func:`~.stages.apply_shapes`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .options import SHAPE_FLAGS, BuildOptions, parse_shape

HW = tuple[int, int]


@dataclass(frozen=True)
class SpatialProfile:
    """The min/opt/max H x W of the shape flags, broadcast as trtexec does for the ones not given."""

    min: HW
    opt: HW
    max: HW
    channels: int  # the C every flag gave (they must agree)

    @property
    def fixed(self) -> bool:
        return self.min == self.opt == self.max

    def as_tuple(self) -> tuple[HW, HW, HW]:
        return (self.min, self.opt, self.max)

    def describe(self) -> str:
        """``32x32`` when fixed, else ``min 16x16, opt 32x32, max 64x64``."""
        if self.fixed:
            return _hw(self.opt)
        return f"min {_hw(self.min)}, opt {_hw(self.opt)}, max {_hw(self.max)}"


def _hw(hw: HW) -> str:
    return f"{hw[0]}x{hw[1]}"


def spatial_profile(options: BuildOptions) -> SpatialProfile | None:
    """The H x W profile of ``options.shapes`` (None without shape flags). A profile point not given is filled as
    trtexec fills it (``processShapes`` in NVIDIA/TensorRT samples/common/sampleOptions.cpp): min from opt, else
    max; opt from max, else min; max from opt, else min. Refuses C that differ between flags and H/W ranges that
    are not min <= opt <= max."""
    if not options.shapes:
        return None
    given = {key: parse_shape(spec, SHAPE_FLAGS[key])[1] for key, spec in options.shapes.items()}
    channels = {dims[1] for dims in given.values()}
    if len(channels) > 1:
        raise UserError(f"the shape flags give different channel counts {sorted(channels)}: C cannot vary")
    hw = {key: (dims[2], dims[3]) for key, dims in given.items()}
    mn = hw.get("min") or hw.get("opt") or hw["max"]
    opt = hw.get("opt") or hw.get("max") or mn
    mx = hw.get("max") or hw.get("opt") or mn
    for axis, name in ((0, "H"), (1, "W")):
        if not mn[axis] <= opt[axis] <= mx[axis]:
            raise UserError(
                f"the shape flags' {name} must satisfy min <= opt <= max; got {mn[axis]}/{opt[axis]}/{mx[axis]} "
                f"({', '.join(f'{SHAPE_FLAGS[k]} {v}' for k, v in options.shapes.items())})"
            )
    return SpatialProfile(mn, opt, mx, channels.pop())


def check_for_export(profile: SpatialProfile, in_channels: int, min_size: int, arch: str) -> None:
    """One line when an export from PyTorch cannot take ``profile``: another C (the weights fix it), an H or W
    below the architecture's minimum, or a non-square opt size (images are resized to one square input size)."""
    if profile.channels != in_channels:
        raise UserError(f"the shape flags give C = {profile.channels}, but {arch} takes {in_channels} input channel(s)")
    small = [d for hw in profile.as_tuple() for d in hw if d < min_size]
    if small:
        raise UserError(
            f"the shape flags ask for H x W down to {min(small)}, but {arch} takes at least {min_size}x{min_size} "
            "(its total stride)"
        )
    check_square(profile)


def check_square(profile: SpatialProfile) -> None:
    """One line when the opt H x W, the size calibration and evaluation images are resized to, is not square."""
    if profile.opt[0] != profile.opt[1]:
        raise UserError(
            f"the opt shape's H x W {_hw(profile.opt)} is not square: images are resized to one square input size, "
            "so the opt (or fixed) H and W must be equal"
        )
