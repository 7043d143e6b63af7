"""The first step of a ``<name>_image`` ensemble: uint8 H x W x C images in, the model's C x H x W input out.

Copied by ``triton-repo --image-input`` to ``<name>_preprocess/1/model.py`` and run by Triton's python backend. It
does what ``resnet_deploy.data.preprocess.preprocess_pil`` does (torchvision's resize-shorter-side + centre-crop for
inputs of at least ``crop_min_size``, a plain resize below; bilinear; /255, then mean/std in float32), and it must run
where resnet-deploy is not installed (NVIDIA's containers), so it stands alone:

- with Pillow (``serve``'s environment has it) it makes the same Pillow calls as ``preprocess_pil``: bit-identical
  to a local run with the same Pillow;
- without Pillow (NVIDIA's containers have numpy there, not Pillow) it runs Pillow's algorithm in numpy: the RGB -> L
  luma in 16-bit fixed point (``Convert.c``), the bilinear filter with 22-bit fixed-point coefficients, horizontal
  pass then vertical (``Resample.c``: ``precompute_coeffs``, ``normalize_coeffs_8bpc``,
  ``ImagingResample{Horizontal,Vertical}_8bpc``). Pillow 13 may run the vertical pass first for some shapes, which
  moves a pixel by 1/255 here and there; each single pass is bit-identical.

``tests/serve/triton/test_preprocess.py`` checks both paths against Pillow and ``preprocess_pil``.

What the model needs comes from the config's ``parameters`` (written by ``triton-repo`` from the model's
metadata): ``input_size``, ``channels``, ``crop_min_size``, ``crop_ratio``, ``mean`` and ``std`` (JSON lists, or
``null`` when the model normalises inside its graph), ``dtype`` (the model input's numpy dtype, plain text).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

PRECISION_BITS = 32 - 8 - 2  # Pillow: 8 bits of result, 2 of headroom
MAX_SIDE = 16384  # refuse absurd images before allocating for them


@dataclass(frozen=True)
class Preprocessing:
    """What one model's input needs (the config's ``parameters``)."""

    input_size: int
    channels: int
    crop_min_size: int = 128
    crop_ratio: float = 0.875
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    dtype: str = "float32"

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> Preprocessing:
        """From a Triton model config's ``parameters`` ({key: {"string_value": text}})."""

        def value(key: str) -> Any:
            return json.loads(params[key]["string_value"])

        mean, std = value("mean"), value("std")
        return cls(
            input_size=int(value("input_size")),
            channels=int(value("channels")),
            crop_min_size=int(value("crop_min_size")),
            crop_ratio=float(value("crop_ratio")),
            mean=None if mean is None else tuple(float(v) for v in mean),
            std=None if std is None else tuple(float(v) for v in std),
            dtype=params["dtype"]["string_value"],
        )


def resize_plan(width: int, height: int, size: int, crop_min_size: int = 128, crop_ratio: float = 0.875) -> Any:
    """((resized width, height), crop box or None): torchvision's Resize(round(size / 0.875)) + CenterCrop(size)
    for ``size >= crop_min_size``, a plain resize to size x size below (as ``resnet_deploy.data.preprocess``)."""
    if size < crop_min_size:
        return (size, size), None
    short_target = int(round(size / crop_ratio))
    if width <= height:
        new_w, new_h = short_target, int(short_target * height / width)
    else:
        new_w, new_h = int(short_target * width / height), short_target
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return (new_w, new_h), (left, top, left + size, top + size)


def _bilinear(x: float) -> float:
    x = -x if x < 0.0 else x
    return 1.0 - x if x < 1.0 else 0.0


def _coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(first source index per output pixel, fixed-point weights (out_size, ksize)): Pillow's ``precompute_coeffs``
    and ``normalize_coeffs_8bpc`` for the bilinear filter over the whole axis, in the same double arithmetic."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    starts = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, ksize), dtype=np.int64)
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C's cast
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [_bilinear((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:  # a plain loop: sum() rounds differently from C's running sum on Python >= 3.12
            ww += w
        if ww != 0.0:
            k = [w / ww for w in k]
        one = float(1 << PRECISION_BITS)
        weights[xx, :xmax] = [int(-0.5 + w * one) if w < 0 else int(0.5 + w * one) for w in k]
        starts[xx] = xmin
    return starts, weights


def _resample_axis(image: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One of Pillow's 8-bit passes along ``axis`` (0 rows, 1 columns) of an H x W x C uint8 array."""
    in_size = image.shape[axis]
    starts, weights = _coefficients(in_size, out_size)
    shape = list(image.shape)
    shape[axis] = out_size
    acc = np.full(shape, 1 << (PRECISION_BITS - 1), dtype=np.int64)
    for j in range(weights.shape[1]):
        index = np.minimum(starts + j, in_size - 1)  # past xmax the weight is 0, any index will do
        taken = np.take(image, index, axis=axis).astype(np.int64)
        w = weights[:, j].reshape((-1, 1, 1) if axis == 0 else (1, -1, 1))
        acc += taken * w
    return np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``PIL.Image.resize((width, height), BILINEAR)`` of an H x W x C uint8 array, bit for bit."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    out = image
    if width != w:  # Pillow's need_horizontal, then need_vertical, in that order
        out = _resample_axis(out, 1, width)
    if height != h:
        out = _resample_axis(out, 0, height)
    return out


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Pillow's ``convert("L")`` (ITU-R 601-2 luma, 16-bit fixed point) or ``convert("RGB")`` of H x W x C."""
    have = image.shape[2]
    if have == channels:
        return image
    if have == 3 and channels == 1:
        rgb = image.astype(np.uint32)
        luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
        return luma.astype(np.uint8)[..., None]
    return np.repeat(image, 3, axis=2)  # L -> RGB


def _check(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"expected uint8 images of shape (H, W, C), got {image.dtype} {tuple(image.shape)}")
    h, w, c = image.shape
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise ValueError(f"image of {w} x {h} pixels: each side must be 1 to {MAX_SIDE}")
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (H x W x C), got {c}")


def preprocess_numpy(image: np.ndarray, p: Preprocessing) -> np.ndarray:
    """One uint8 H x W x C image -> the model's C x H x W input, without Pillow."""
    _check(image)
    h, w, _ = image.shape
    image = to_channels(image, p.channels)
    (new_w, new_h), box = resize_plan(w, h, p.input_size, p.crop_min_size, p.crop_ratio)
    image = resize_bilinear(image, new_w, new_h)
    if box is not None:
        left, top, right, bottom = box
        image = image[top:bottom, left:right]
    return _to_input(image, p)


def preprocess_pillow(image: np.ndarray, p: Preprocessing) -> np.ndarray:
    """The same through Pillow, call for call as ``resnet_deploy.data.preprocess.preprocess_pil``."""
    from PIL import Image

    _check(image)
    pil = Image.fromarray(np.ascontiguousarray(image[..., 0] if image.shape[2] == 1 else image))  # L or RGB
    mode = "L" if p.channels == 1 else "RGB"
    if pil.mode != mode:
        pil = pil.convert(mode)
    (new_w, new_h), box = resize_plan(pil.width, pil.height, p.input_size, p.crop_min_size, p.crop_ratio)
    if (new_w, new_h) != pil.size:
        pil = pil.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if box is not None:
        pil = pil.crop(box)
    arr = np.asarray(pil, dtype=np.uint8)
    return _to_input(arr[:, :, None] if arr.ndim == 2 else arr, p)


def pillow_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def _to_input(image: np.ndarray, p: Preprocessing) -> np.ndarray:
    """H x W x C uint8 -> C x H x W in [0, 1], normalised when the model does not normalise itself."""
    arr = image.astype(np.float32) / np.float32(255.0)
    arr = arr.transpose(2, 0, 1)
    if p.mean is not None and p.std is not None:
        mean = np.asarray(p.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(p.std, dtype=np.float32).reshape(-1, 1, 1)
        arr = (arr - mean) / std
    return np.ascontiguousarray(arr, dtype=np.float32).astype(p.dtype, copy=False)


class TritonPythonModel:
    """Triton's python-backend interface: each request holds a batch of same-sized images (B, H, W, C)."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils  # exists only inside Triton's python backend

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        self.p = Preprocessing.from_parameters(config["parameters"])
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        self.preprocess = preprocess_pillow if pillow_available() else preprocess_numpy

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            images = self.pb.get_input_tensor_by_name(request, self.input).as_numpy()
            try:
                batch = np.stack([self.preprocess(image, self.p) for image in images])
            except ValueError as exc:  # the client's error: answered, the model stays up
                responses.append(self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(str(exc))))
                continue
            responses.append(self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(self.output, batch)]))
        return responses
