"""The ensemble's preprocessing: the same numbers as resnet-deploy's own (Pillow) preprocessing of the same image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from resnet_deploy.data.preprocess import normalization, preprocess_pil
from resnet_deploy.data.preprocess import resize_plan as project_resize_plan
from resnet_deploy.info import ModelInfo
from resnet_deploy.serve.triton.preprocess import (
    Preprocessing,
    preprocess_numpy,
    preprocess_pillow,
    resize_bilinear,
    resize_plan,
    to_channels,
)

INFOS = [
    ModelInfo(arch="resnet20", in_channels=1, input_size=28, mean=[0.286], std=[0.353]),  # normalises in its graph
    ModelInfo(arch="resnet50", in_channels=3, input_size=224),  # ImageNet mean/std outside, resize + crop
    ModelInfo(arch="resnet18", in_channels=3, input_size=64),  # ImageNet mean/std, plain resize
]


def _params(info: ModelInfo) -> Preprocessing:
    norm = normalization(info)
    return Preprocessing(
        input_size=info.input_size,
        channels=info.in_channels,
        mean=None if norm is None else tuple(float(v) for v in norm[0].ravel()),
        std=None if norm is None else tuple(float(v) for v in norm[1].ravel()),
    )


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)


def test_each_bilinear_pass_is_pillow_s_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 260, 2))
        out_w, out_h = (int(v) for v in rng.integers(1, 260, 2))
        image = rng.integers(0, 256, (h, w, 1 + 2 * (trial % 2)), dtype=np.uint8)
        pil = _pil(image)
        # horizontal, then vertical: one Pillow call per pass, so Pillow's own pass order cannot differ
        expected = np.asarray(
            pil.resize((out_w, h), Image.Resampling.BILINEAR).resize((out_w, out_h), Image.Resampling.BILINEAR)
        )
        got = resize_bilinear(image, out_w, out_h)
        assert np.array_equal(got[..., 0] if image.shape[2] == 1 else got, expected), (w, h, out_w, out_h)


def test_channel_conversion_is_pillow_s() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (37, 41, 3), dtype=np.uint8)
    assert np.array_equal(to_channels(rgb, 1)[..., 0], np.asarray(_pil(rgb).convert("L")))
    gray = rgb[..., :1]
    assert np.array_equal(to_channels(gray, 3), np.asarray(_pil(gray).convert("RGB")))


def test_resize_plan_is_the_project_s() -> None:
    for size in (28, 64, 127, 128, 224, 299):
        for w, h in ((1, 1), (28, 28), (640, 480), (480, 640), (300, 299), (1000, 37)):
            assert resize_plan(w, h, size) == project_resize_plan(w, h, size)


@pytest.mark.parametrize("info", INFOS, ids=lambda i: f"{i.in_channels}x{i.input_size}")
@pytest.mark.parametrize("shape", [(28, 28, 1), (123, 301, 3), (300, 200, 1), (224, 224, 3)])
def test_preprocessing_matches_preprocess_pil(info: ModelInfo, shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    expected = preprocess_pil(_pil(image), info)
    with_pillow = preprocess_pillow(image, _params(info))
    assert with_pillow.dtype == np.float32 and np.array_equal(with_pillow, expected)  # serve's environment
    without = preprocess_numpy(image, _params(info))  # NVIDIA's containers: numpy only
    # Pillow 13 may run the vertical pass first for some shapes: then a pixel moves by at most 1/255
    step = 1 / 255 / (0.225 if normalization(info) is not None else 1.0)
    assert without.shape == expected.shape and float(np.abs(without - expected).max()) <= step * 1.001


def test_bad_images_are_refused_with_a_message() -> None:
    p = _params(INFOS[0])
    for image, expected in [
        (np.zeros((28, 28), np.uint8), "shape (H, W, C)"),
        (np.zeros((28, 28, 1), np.float32), "uint8"),
        (np.zeros((28, 28, 4), np.uint8), "1 or 3 channels"),
        (np.zeros((0, 28, 1), np.uint8), "each side must be"),
    ]:
        for preprocess in (preprocess_numpy, preprocess_pillow):
            with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
                preprocess(image, p)
