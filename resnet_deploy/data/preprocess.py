"""Image preprocessing: decode an untrusted image file into the (C, H, W) float32 array a model expects.

For ImageNet-sized inputs (``input_size >= CROP_MIN_SIZE``) this is torchvision's standard evaluation transform:
``Resize(round(size / 0.875))`` (shorter side, bilinear) -> ``CenterCrop(size)`` -> ``ToTensor()`` ->
``Normalize(IMAGENET_MEAN, IMAGENET_STD)``, reproducing torchvision's size and crop arithmetic exactly. Small inputs
(28x28 Fashion-MNIST, 32x32 CIFAR, 64x64 test models) are resized straight to ``size x size``: cropping a border
off a 28x28 picture would drop part of the object.

Mean/std normalisation is applied only when the model does not normalise inside its graph (``info.mean is None``):
3-channel models then get the ImageNet statistics, other channel counts none (values stay in [0, 1]). Arrays of
pixels (``.npz``, Fashion-MNIST) go through the same :func:`normalize`, so the same images give the same input
whatever file they come in.

16-bit greyscale PNGs (Pillow mode ``I;16``) are scaled to the 8-bit range by 1/257 (65535 -> 255) and resized in
float, never clipped at 255; 16-bit colour PNGs are read by Pillow as 8-bit ``RGB`` already.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..info import ModelInfo

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_RATIO = 0.875  # 224 / 256: the classic ImageNet evaluation crop
CROP_MIN_SIZE = 128  # inputs at least this large get resize-shorter-side + center-crop; smaller ones a plain resize
#: the image files a data folder is read from (any case); Pillow decodes each of them
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: image formats a folder may hold that are refused rather than skipped: a silently smaller data set is worse
UNSUPPORTED_IMAGE_SUFFIXES = (
    ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".heic", ".heif", ".avif", ".jp2", ".jxl", ".ico",
    ".dng", ".cr2", ".nef", ".exr", ".hdr",
)  # fmt: skip
_MODES = {1: "L", 3: "RGB"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def resize_plan(width: int, height: int, size: int) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """((resized width, height), crop box (left, top, right, bottom) or None) for an image of ``width x height``.

    Matches torchvision: the shorter side becomes ``round(size / 0.875)`` and the longer one is truncated
    (``int(short * long / short_orig)``); the crop offsets are ``int(round((dim - size) / 2))``.
    """
    if size < CROP_MIN_SIZE:
        return (size, size), None
    short_target = int(round(size / CROP_RATIO))
    if width <= height:
        new_w, new_h = short_target, int(short_target * height / width)
    else:
        new_w, new_h = int(short_target * width / height), short_target
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return (new_w, new_h), (left, top, left + size, top + size)


def normalization(info: ModelInfo) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, std) as (C, 1, 1) float32 arrays to apply outside the model, or None when it needs none."""
    if info.mean is not None:
        return None  # the model normalises inside its graph
    if info.in_channels == 3:
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)
        return mean, std
    return None


def normalize(x: np.ndarray, info: ModelInfo | None) -> np.ndarray:
    """``x`` (N x C x H x W or C x H x W, float32 in [0, 1]) with the model's outside-the-graph normalisation
    applied in place (see :func:`normalization`); unchanged when the model needs none or ``info`` is None."""
    norm = normalization(info) if info is not None else None
    if norm is not None:
        mean, std = norm
        x -= mean
        x /= std
    return x


def _sixteen_bit(image: object) -> object:
    """A 16-bit greyscale image as a float ``F`` image on the 8-bit scale (value / 257), ready to resize."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    arr = np.asarray(image)
    if arr.dtype.kind not in "iu" or (arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535)):
        raise UserError(f"cannot read {image.mode} images whose values are not 16-bit pixels")
    return Image.fromarray(arr.astype(np.float32) / np.float32(257.0), mode="F")


def preprocess_pil(image: object, info: ModelInfo) -> np.ndarray:
    """Turn a decoded ``PIL.Image.Image`` into the model's (C, H, W) float32 input."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    mode = _MODES.get(info.in_channels)
    if mode is None:
        raise UserError(f"cannot feed images to a model with {info.in_channels} input channels (1 or 3 supported)")
    if image.mode in _SIXTEEN_BIT_MODES:
        return _preprocess_float_grey(_sixteen_bit(image), info)
    if image.mode != mode:
        # Palette/alpha images go through RGB(A) first so the palette is applied; alpha is dropped.
        if image.mode in ("P", "PA", "LA", "RGBA") and mode == "L":
            image = image.convert("RGB")
        image = image.convert(mode)
    size = info.input_size
    (new_w, new_h), box = resize_plan(image.width, image.height, size)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if box is not None:
        image = image.crop(box)
    arr = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    arr = arr[None, :, :] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return _finish(arr, info)


def _preprocess_float_grey(image: object, info: ModelInfo) -> np.ndarray:
    """The resize/crop of :func:`preprocess_pil` for a float ``F`` image (8-bit scale), then [0, 1]."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    (new_w, new_h), box = resize_plan(image.width, image.height, info.input_size)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if box is not None:
        image = image.crop(box)
    grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 255.0) / np.float32(255.0)
    arr = np.repeat(grey[None], info.in_channels, axis=0)
    return _finish(arr, info)


def _finish(arr: np.ndarray, info: ModelInfo) -> np.ndarray:
    return normalize(np.array(arr, dtype=np.float32, order="C"), info)


def load_image(path: str | Path, info: ModelInfo) -> np.ndarray:
    """Decode and preprocess one image file (JPEG, PNG, BMP, WebP, anything Pillow reads) into (C, H, W) float32.

    Raises :class:`UserError` for files that are missing, not images, truncated, or implausibly large.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now: truncated files fail here, not halfway through an evaluation
                return preprocess_pil(img, info)
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path} is too large to decode safely (over {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's truncated/corrupt-data errors
        raise UserError(f"{path}: corrupt or truncated image ({exc})") from None
