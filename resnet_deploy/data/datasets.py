"""Labelled datasets behind one interface, selected by a spec string (:func:`open_dataset`).

Specs:

- ``fashion-mnist:train`` / ``fashion-mnist:test``: the IDX files of Debian's ``dataset-fashion-mnist``,
  1 x 28 x 28 in [0, 1]. For a model with other input channels or size the images are adapted on the fly,
  per batch, through the same transform as image files (:func:`~resnet_deploy.data.preprocess.preprocess_pil`:
  grey replicated to RGB, resized, normalised when the model does not normalise itself).
- a folder in the ImageNet layout: one subfolder per class (class index = sorted subfolder name order, hidden
  entries ignored), JPEG/PNG files inside, preprocessed by :func:`~resnet_deploy.data.preprocess.load_image`
  and decoded batch by batch (a 50,000-image folder is never held in memory).
- a ``.npz`` file (read with ``allow_pickle=False``) holding ``x`` and ``y``, and optionally ``labels`` (a string
  array of class names). ``x`` is N x C x H x W or N x H x W (one channel); uint8 is scaled to [0, 1] by 1/255,
  float is taken as the model's input as-is (already preprocessed). ``y`` holds N non-negative integers.
  The arrays must match the model's input exactly: no resizing happens here.

Subsets: ``batches(limit=n)`` and ``take(n)`` use the first ``n`` samples of array datasets (Fashion-MNIST's order
is already shuffled) and evenly spaced samples of folder datasets, whose file order is sorted by class, so
that a subset covers every class.
"""

from __future__ import annotations

import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..info import ModelInfo
from .idx import FASHION_MNIST_CLASSES, load_fashion_mnist
from .preprocess import IMAGE_SUFFIXES, load_image, preprocess_pil

FASHION_MNIST_SPLITS = ("train", "test")
SPEC_HELP = "use fashion-mnist:train, fashion-mnist:test, a folder with one subfolder per class, or a .npz file"
_IMAGE_SUFFIXES_LOWER = {s.lower() for s in IMAGE_SUFFIXES}


class Dataset(ABC):
    """A labelled image set yielding float32 N x C x H x W batches and int64 labels."""

    #: the spec string the dataset was opened from (shown in reports)
    spec: str
    #: number of classes the labels index (labels are in ``range(num_classes)``)
    num_classes: int
    #: (C, H, W) of one preprocessed sample
    sample_shape: tuple[int, int, int]
    #: class names, index = label, when known
    labels: list[str] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _load(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x float32 N x C x H x W, y int64) for the given sample indices."""

    def subset_indices(self, n: int | None) -> np.ndarray:
        """Indices of the samples that a limit of ``n`` selects (all when ``n`` is None or too large)."""
        total = len(self)
        if n is not None and n < 0:
            raise UserError(f"sample limit must be positive, got {n}")
        if n is None or n >= total:
            return np.arange(total, dtype=np.int64)
        return np.arange(n, dtype=np.int64)

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(x, y)`` batches of at most ``batch_size`` samples, over ``limit`` samples at most."""
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        indices = self.subset_indices(limit)
        for start in range(0, len(indices), batch_size):
            yield self._load(indices[start : start + batch_size])

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples in one array (for calibration); the same subset as ``batches(limit=n)``."""
        if n < 1:
            raise UserError(f"need at least 1 sample, got {n}")
        return self._load(self.subset_indices(n))

    def describe(self) -> str:
        c, h, w = self.sample_shape
        return f"{self.spec}: {len(self)} samples, {self.num_classes} classes, {c}x{h}x{w}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class ArrayDataset(Dataset):
    """Samples held in memory as arrays; ``transform`` turns a raw batch into model input, per batch."""

    def __init__(
        self,
        spec: str,
        x: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        labels: list[str] | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        sample_shape: tuple[int, int, int] | None = None,
    ) -> None:
        self.spec = spec
        self._x = x
        self._y = y
        self.num_classes = num_classes
        self.labels = labels
        self._transform = transform
        shape = sample_shape or tuple(x.shape[1:])
        self.sample_shape = (int(shape[0]), int(shape[1]), int(shape[2]))

    def __len__(self) -> int:
        return int(self._y.shape[0])

    def _load(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._x[indices]
        x = self._transform(x) if self._transform is not None else x
        return np.ascontiguousarray(x, dtype=np.float32), self._y[indices].astype(np.int64, copy=False)


class FolderDataset(Dataset):
    """An ImageNet-style folder; images are decoded and preprocessed per batch, on a few threads."""

    def __init__(self, root: Path, info: ModelInfo, spec: str | None = None) -> None:
        self.spec = spec or str(root)
        self.root = root
        self.info = info
        self.labels, self.files, self._y = scan_image_folder(root)
        self.num_classes = len(self.labels)
        self.sample_shape = (info.in_channels, info.input_size, info.input_size)
        # Pillow releases the GIL while decoding and resizing, so threads help; stay modest on small machines.
        self._workers = max(1, min(4, os.cpu_count() or 1))

    def __len__(self) -> int:
        return len(self.files)

    def subset_indices(self, n: int | None) -> np.ndarray:
        total = len(self)
        if n is None or n >= total:
            return super().subset_indices(n)
        super().subset_indices(n)  # validates n
        # Files are sorted by class: spread the subset so that every class is represented.
        return (np.arange(n, dtype=np.int64) * total) // n

    def _load(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        paths = [self.files[i] for i in indices]
        if len(paths) > 1 and self._workers > 1:
            with ThreadPoolExecutor(self._workers) as pool:
                images = list(pool.map(lambda p: load_image(p, self.info), paths))
        else:
            images = [load_image(p, self.info) for p in paths]
        return np.stack(images).astype(np.float32, copy=False), self._y[indices]


def scan_image_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, image paths sorted by class then name, labels) of an ImageNet-style folder."""
    if not root.exists():
        raise UserError(f"data folder {root} not found")
    if not root.is_dir():
        raise UserError(f"data {root} is not a folder ({SPEC_HELP})")
    try:
        entries = sorted((e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise UserError(f"cannot read data folder {root}: {exc.strerror or exc}") from None
    class_dirs = [e for e in entries if e.is_dir()]
    if not class_dirs:
        if not entries:
            raise UserError(f"data folder {root} is empty")
        raise UserError(f"data folder {root} has no class subfolders (expected one subfolder of images per class)")
    labels: list[str] = []
    files: list[Path] = []
    ys: list[int] = []
    for index, entry in enumerate(class_dirs):
        class_dir = Path(entry.path)
        try:
            images = sorted(
                class_dir / f.name
                for f in os.scandir(class_dir)
                if not f.name.startswith(".") and Path(f.name).suffix.lower() in _IMAGE_SUFFIXES_LOWER and f.is_file()
            )
        except OSError as exc:
            raise UserError(f"cannot read class folder {class_dir}: {exc.strerror or exc}") from None
        if not images:
            raise UserError(f"class folder {class_dir} holds no JPEG or PNG images")
        labels.append(entry.name)
        files.extend(images)
        ys.extend([index] * len(images))
    return labels, files, np.asarray(ys, dtype=np.int64)


def _fashion_mnist(split: str, spec: str, info: ModelInfo | None) -> ArrayDataset:
    x, y = load_fashion_mnist(split)
    if info is None or (info.in_channels == 1 and info.input_size == 28):
        return ArrayDataset(spec, x, y, len(FASHION_MNIST_CLASSES), list(FASHION_MNIST_CLASSES))
    if info.in_channels not in (1, 3):
        raise UserError(f"{spec} has 1-channel images; a model with {info.in_channels} input channels cannot take them")
    from PIL import Image

    # Back to the original uint8 pixels (exact: they were k/255), then the same transform as an image file.
    raw = np.rint(x[:, 0] * 255.0).astype(np.uint8)

    def adapt(batch: np.ndarray) -> np.ndarray:
        return np.stack([preprocess_pil(Image.fromarray(img, mode="L"), info) for img in batch])

    return ArrayDataset(
        spec,
        raw,
        y,
        len(FASHION_MNIST_CLASSES),
        list(FASHION_MNIST_CLASSES),
        transform=adapt,
        sample_shape=(info.in_channels, info.input_size, info.input_size),
    )


def _scale_uint8(batch: np.ndarray) -> np.ndarray:
    return batch.astype(np.float32) / np.float32(255.0)


def load_npz(path: Path, spec: str | None = None) -> ArrayDataset:
    """Open and validate a ``.npz`` dataset (see the module docstring for the format)."""
    spec = spec or str(path)
    if not path.is_file():
        raise UserError(f"data file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [k for k in ("x", "y") if k not in keys]
            if missing:
                have = ", ".join(sorted(keys)) or "none"
                raise UserError(f"{path} lacks array {' and '.join(map(repr, missing))} (has: {have})")
            x = npz["x"]
            y = npz["y"]
            names = npz["labels"] if "labels" in keys else None
    except UserError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UserError(f"{path} holds pickled objects, which resnet-deploy does not load") from None
        raise UserError(f"{path} is not a valid .npz file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path} is not a valid .npz file ({exc})") from None

    if x.ndim == 3:
        x = x[:, None, :, :]
    if x.ndim != 4:
        raise UserError(f"{path}: x must be N x C x H x W or N x H x W, got shape {x.shape}")
    if y.ndim != 1:
        raise UserError(f"{path}: y must be a 1-D array of labels, got shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise UserError(f"{path}: x holds {x.shape[0]} samples but y {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise UserError(f"{path} holds no samples")
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise UserError(f"{path}: y must hold integer class labels, not {y.dtype}")
    if int(y.min()) < 0:
        raise UserError(f"{path}: y holds negative label {int(y.min())}")
    transform: Callable[[np.ndarray], np.ndarray] | None
    if x.dtype == np.uint8:
        transform = _scale_uint8
    elif np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise UserError(f"{path}: x holds NaN or infinite values")
        transform = None
    else:
        raise UserError(f"{path}: x must be uint8 (scaled by 1/255) or float, not {x.dtype}")
    num_classes = int(y.max()) + 1
    labels: list[str] | None = None
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise UserError(f"{path}: 'labels' must be a 1-D array of class names")
        labels = [str(n) for n in names.tolist()]
        if len(labels) < num_classes:
            raise UserError(f"{path}: y holds label {num_classes - 1} but 'labels' names only {len(labels)} classes")
        num_classes = len(labels)
    return ArrayDataset(spec, x, y.astype(np.int64), num_classes, labels, transform=transform)


def check_compatible(dataset: Dataset, info: ModelInfo) -> None:
    """Raise a one-line :class:`UserError` when ``dataset`` cannot feed the model ``info`` describes."""
    want = (info.in_channels, info.input_size, info.input_size)
    if tuple(dataset.sample_shape) != want:
        got = "x".join(map(str, dataset.sample_shape))
        raise UserError(
            f"{dataset.spec} has samples of shape {got}; {info.name or info.arch} takes {'x'.join(map(str, want))}"
        )
    check_labels_fit(dataset, info.num_classes, info.name or info.arch)


def check_labels_fit(dataset: Dataset, model_classes: int, model_name: str = "the model") -> None:
    """Labels must index the model's outputs."""
    if dataset.num_classes > model_classes:
        raise UserError(
            f"{dataset.spec} has labels up to {dataset.num_classes - 1}, out of range for "
            f"{model_name} with {model_classes} classes"
        )


def open_dataset(spec: str, info: ModelInfo | None = None) -> Dataset:
    """Open a dataset from its spec (see the module docstring); with ``info``, check it fits that model.

    Folder datasets need ``info`` to know the preprocessing; without it they assume a 3 x 224 x 224 ImageNet model
    that expects ImageNet-normalised input.
    """
    spec = str(spec)
    if spec.startswith("fashion-mnist"):
        name, _, split = spec.partition(":")
        if name == "fashion-mnist":
            if split not in FASHION_MNIST_SPLITS:
                raise UserError(f"unknown Fashion-MNIST split in '{spec}' (use fashion-mnist:train or :test)")
            dataset: Dataset = _fashion_mnist(split, spec, info)
            if info is not None:
                check_compatible(dataset, info)
            return dataset
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".npz":
        dataset = load_npz(path, spec)
    elif path.is_dir():
        dataset = FolderDataset(path, info or ModelInfo(arch="resnet50"), spec)
    elif not path.exists():
        raise UserError(f"data '{spec}' not found ({SPEC_HELP})")
    else:
        raise UserError(f"unknown data spec '{spec}': {SPEC_HELP}")
    if info is not None:
        check_compatible(dataset, info)
    return dataset
