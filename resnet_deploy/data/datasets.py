"""Labelled datasets behind one interface, selected by a spec string (:func:`open_dataset`), read batch by batch.

Specs:

- ``fashion-mnist:train`` / ``fashion-mnist:test``: the IDX files of Debian's ``dataset-fashion-mnist``,
  1 x 28 x 28 in [0, 1]. For a model with other input channels or size the images are adapted on the fly,
  per batch, through the same transform as image files (:func:`~resnet_deploy.data.preprocess.preprocess_pil`:
  grey replicated to RGB, resized, normalised when the model does not normalise itself).
- a folder in the ImageNet layout: one subfolder per class (class index = sorted subfolder name order, hidden
  entries ignored), JPEG/PNG/BMP/WebP files inside, preprocessed by
  :func:`~resnet_deploy.data.preprocess.load_image`. Files of other image formats (GIF, TIFF, ...) are refused,
  not skipped; files that are not images (notes, CSVs) are ignored and counted in :meth:`Dataset.describe`.
- a ``.npz`` file holding ``x`` and ``y``, and optionally ``labels`` (a string array of class names). ``x`` is
  N x C x H x W or N x H x W (one channel); uint8 is scaled to [0, 1] by 1/255 and uint16 by 1/65535, then
  normalised exactly as the same images in a folder would be (ImageNet mean/std for a 3-channel model that does not
  normalise inside its graph); float is taken as the model's input as-is (already preprocessed) and must stay finite
  in float32. ``y`` holds N non-negative integers. The arrays must match the model's input exactly: no resizing
  happens here.
- a ``.npy`` file: ``x`` alone, as in a ``.npz``. It has no labels, so it serves calibration, not evaluation.

Nothing is read whole that does not have to be: images come off the disk a batch at a time
(:mod:`~resnet_deploy.data.arrays`), so ``--limit 100`` reads 100 images of a 60,000-image file, and a header that
claims more data than the file holds is refused before anything is allocated.

Subsets: ``batches(limit=n)`` and ``take(n)`` use the first ``n`` samples of array datasets (Fashion-MNIST's order
is already shuffled) and evenly spaced samples of folder datasets, whose file order is sorted by class, so
that a subset covers every class.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..info import ModelInfo
from .arrays import ArrayFile, open_npy, open_npz
from .idx import FASHION_MNIST_CLASSES, open_fashion_mnist, to_unit_float
from .preprocess import IMAGE_SUFFIXES, UNSUPPORTED_IMAGE_SUFFIXES, load_image, normalize, preprocess_pil

FASHION_MNIST_SPLITS = ("train", "test")
SPEC_HELP = (
    "use fashion-mnist:train, fashion-mnist:test, a folder with one subfolder per class, a .npz file, or a .npy "
    "file (calibration only)"
)
_IMAGE_SUFFIXES_LOWER = {s.lower() for s in IMAGE_SUFFIXES}
_REFUSED_SUFFIXES = set(UNSUPPORTED_IMAGE_SUFFIXES)
#: where an unlabelled dataset's batches put their labels
NO_LABEL = -1


class Dataset(ABC):
    """A labelled image set yielding float32 N x C x H x W batches and int64 labels (:data:`NO_LABEL` when the
    dataset has none, see :attr:`has_labels`)."""

    #: the spec string the dataset was opened from (shown in reports)
    spec: str
    #: number of classes the labels index (labels are in ``range(num_classes)``)
    num_classes: int
    #: (C, H, W) of one preprocessed sample
    sample_shape: tuple[int, int, int]
    #: class names, index = label, when known
    labels: list[str] | None = None
    #: False for image arrays without labels (a ``.npy``): fine for calibration, not for evaluation
    has_labels: bool = True

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
        """``n`` samples in one array; the same subset as ``batches(limit=n)``. Holds them all: prefer
        :meth:`batches` for anything larger than a few hundred images."""
        if n < 1:
            raise UserError(f"need at least 1 sample, got {n}")
        return self._load(self.subset_indices(n))

    def describe(self) -> str:
        c, h, w = self.sample_shape
        classes = f"{self.num_classes} classes" if self.has_labels else "no labels"
        return f"{self.spec}: {len(self)} samples, {classes}, {c}x{h}x{w}"

    def close(self) -> None:
        """Release open files (a dataset reopens them when read again)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


Transform = Callable[[np.ndarray], np.ndarray]


class ArrayDataset(Dataset):
    """Samples in an array, in memory or on disk (:class:`~.arrays.ArrayFile`, read a batch at a time);
    ``transform`` turns a raw batch into model input, per batch. ``y`` None: the samples have no labels."""

    def __init__(
        self,
        spec: str,
        x: np.ndarray | ArrayFile,
        y: np.ndarray | None,
        num_classes: int,
        labels: list[str] | None = None,
        transform: Transform | None = None,
        sample_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.spec = spec
        self._x = x
        self._y = y
        self.has_labels = y is not None
        self.num_classes = num_classes
        self.labels = labels
        self._transform = transform
        shape = sample_shape or tuple(x.shape[1:])
        self.sample_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        # integer pixels are finite by construction; float data is checked a batch at a time, as it is read
        self._check_finite = x.dtype.kind == "f"

    def __len__(self) -> int:
        return int(self._x.shape[0])

    def _rows(self, indices: np.ndarray) -> np.ndarray:
        if not isinstance(self._x, ArrayFile):
            return self._x[indices]
        if len(indices) and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
            return self._x.rows(int(indices[0]), int(indices[0]) + len(indices))
        return np.stack([self._x.rows(int(i), int(i) + 1)[0] for i in indices]) if len(indices) else self._x.rows(0, 0)

    def _load(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._rows(indices)
        x = self._transform(x) if self._transform is not None else x
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._check_finite:
            check_finite(x, indices, self.spec)
        if self._y is None:
            y = np.full(len(indices), NO_LABEL, dtype=np.int64)
        else:
            y = self._y[indices].astype(np.int64, copy=False)
        return x, y

    def close(self) -> None:
        if isinstance(self._x, ArrayFile):
            self._x.close()


class FolderDataset(Dataset):
    """An ImageNet-style folder; images are decoded and preprocessed per batch, on a few threads."""

    def __init__(self, root: Path, info: ModelInfo, spec: str | None = None) -> None:
        self.spec = spec or str(root)
        self.root = root
        self.info = info
        self.labels, self.files, self._y, self.ignored = scan_image_folder(root)
        self.num_classes = len(self.labels)
        self.sample_shape = (info.in_channels, info.input_size, info.input_size)
        # Pillow releases the GIL while decoding and resizing, so threads help; stay modest on small machines.
        self._workers = max(1, min(4, os.cpu_count() or 1))
        self._pool: ThreadPoolExecutor | None = None

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
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="decode")
            images = list(self._pool.map(lambda p: load_image(p, self.info), paths))
        else:
            images = [load_image(p, self.info) for p in paths]
        return np.stack(images).astype(np.float32, copy=False), self._y[indices]

    def describe(self) -> str:
        text = super().describe()
        if self.ignored:
            text += f" (ignored {self.ignored} file{'s' if self.ignored > 1 else ''} that are not images)"
        return text

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def scan_image_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray, int]:
    """(class names, image paths sorted by class then name, labels, files ignored as not images) of an
    ImageNet-style folder. A file of an image format Pillow is not asked to read (GIF, TIFF, ...) is an error."""
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
    ignored = 0
    for index, entry in enumerate(class_dirs):
        class_dir = Path(entry.path)
        images: list[Path] = []
        try:
            for f in os.scandir(class_dir):
                if f.name.startswith(".") or not f.is_file():
                    continue
                suffix = Path(f.name).suffix.lower()
                if suffix in _IMAGE_SUFFIXES_LOWER:
                    images.append(class_dir / f.name)
                elif suffix in _REFUSED_SUFFIXES:
                    raise UserError(
                        f"{class_dir / f.name}: {suffix} images are not read (use JPEG, PNG, BMP or WebP); "
                        "convert or remove them rather than calibrate or evaluate on a silently smaller set"
                    )
                else:
                    ignored += 1
        except OSError as exc:
            raise UserError(f"cannot read class folder {class_dir}: {exc.strerror or exc}") from None
        if not images:
            raise UserError(f"class folder {class_dir} holds no images (JPEG, PNG, BMP or WebP)")
        images.sort()
        labels.append(entry.name)
        files.extend(images)
        ys.extend([index] * len(images))
    return labels, files, np.asarray(ys, dtype=np.int64), ignored


def pixels_transform(source: str, dtype: np.dtype, info: ModelInfo | None, add_channel: bool) -> Transform:
    """What turns a raw batch of ``dtype`` into model input: integer pixels to [0, 1] then the model's outside-
    the-graph normalisation (as for image files); float taken as-is in float32 (checked finite by the dataset)."""
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype))
    if scale is None and np.dtype(dtype).kind != "f":
        raise UserError(f"{source}: x must be uint8 (scaled by 1/255), uint16 (1/65535) or float, not {dtype}")

    def transform(batch: np.ndarray) -> np.ndarray:
        if add_channel:
            batch = batch[:, None, :, :]
        if scale is None:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by the finite check
                return batch.astype(np.float32)
        if scale == 255.0:
            x = to_unit_float(batch)
        else:
            x = batch.astype(np.float32)
            x /= np.float32(scale)
        return normalize(x, info)

    return transform


def check_finite(x: np.ndarray, indices: np.ndarray, source: str) -> None:
    """Refuse a batch holding NaN, infinity, or float values beyond float32's range (they became infinity)."""
    finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if not finite.all():
        bad = int(indices[int(np.flatnonzero(~finite)[0])])
        raise UserError(
            f"{source}: x[{bad}] holds NaN or infinite values, or values beyond float32's range (about 3.4e38)"
        )


def _check_labels(source: str, y: np.ndarray, n: int) -> None:
    if y.ndim != 1:
        raise UserError(f"{source}: y must be a 1-D array of labels, got shape {y.shape}")
    if n != y.shape[0]:
        raise UserError(f"{source}: x holds {n} samples but y {y.shape[0]} labels")
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise UserError(f"{source}: y must hold integer class labels, not {y.dtype}")
    if y.size and int(y.min()) < 0:
        raise UserError(f"{source}: y holds negative label {int(y.min())}")


def _image_array(path: Path, x: ArrayFile) -> bool:
    """Check ``x`` is N x C x H x W or N x H x W with samples; True when it lacks the channel axis."""
    if len(x.shape) not in (3, 4):
        raise UserError(f"{path}: x must be N x C x H x W or N x H x W, got shape {x.shape}")
    if x.shape[0] == 0:
        raise UserError(f"{path} holds no samples")
    return len(x.shape) == 3


def load_npz(
    path: Path, spec: str | None = None, info: ModelInfo | None = None, need_labels: bool = True
) -> ArrayDataset:
    """Open and validate a ``.npz`` dataset (see the module docstring for the format); ``x`` stays on disk."""
    spec = spec or str(path)
    if not path.is_file():
        raise UserError(f"data file {path} not found")
    arrays = open_npz(path)
    missing = [k for k in ("x", "y") if k not in arrays and (k == "x" or need_labels)]
    if missing:
        have = ", ".join(sorted(arrays)) or "none"
        raise UserError(f"{path} lacks array {' and '.join(map(repr, missing))} (has: {have})")
    x = arrays["x"]
    add_channel = _image_array(path, x)
    transform = pixels_transform(str(path), x.dtype, info, add_channel)
    y: np.ndarray | None = None
    num_classes = 0
    if "y" in arrays:
        y = arrays["y"].read_all()
        _check_labels(str(path), y, len(x))
        num_classes = int(y.max()) + 1 if y.size else 0
    labels: list[str] | None = None
    if "labels" in arrays:
        names = arrays["labels"].read_all()
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise UserError(f"{path}: 'labels' must be a 1-D array of class names")
        labels = [str(n) for n in names.tolist()]
        if len(labels) < num_classes:
            raise UserError(f"{path}: y holds label {num_classes - 1} but 'labels' names only {len(labels)} classes")
        num_classes = len(labels)
    shape = (1, *x.shape[1:]) if add_channel else x.shape[1:]
    return ArrayDataset(spec, x, y, num_classes, labels, transform=transform, sample_shape=shape)


def load_npy(path: Path, spec: str | None = None, info: ModelInfo | None = None) -> ArrayDataset:
    """A ``.npy`` of images (``x`` of a ``.npz``, without labels): calibration data."""
    spec = spec or str(path)
    if not path.is_file():
        raise UserError(f"data file {path} not found")
    x = open_npy(path)
    add_channel = _image_array(path, x)
    shape = (1, *x.shape[1:]) if add_channel else x.shape[1:]
    transform = pixels_transform(str(path), x.dtype, info, add_channel)
    return ArrayDataset(spec, x, None, 0, transform=transform, sample_shape=shape)


def _fashion_mnist(split: str, spec: str, info: ModelInfo | None) -> ArrayDataset:
    images, y = open_fashion_mnist(split)
    classes = len(FASHION_MNIST_CLASSES)
    if info is None or (info.in_channels == 1 and info.input_size == 28):

        def unit(batch: np.ndarray) -> np.ndarray:
            return normalize(to_unit_float(batch)[:, None, :, :], info)

        return ArrayDataset(spec, images, y, classes, list(FASHION_MNIST_CLASSES), unit, (1, 28, 28))
    if info.in_channels not in (1, 3):
        raise UserError(f"{spec} has 1-channel images; a model with {info.in_channels} input channels cannot take them")
    from PIL import Image

    def adapt(batch: np.ndarray) -> np.ndarray:
        return np.stack([preprocess_pil(Image.fromarray(img, mode="L"), info) for img in batch])

    return ArrayDataset(
        spec,
        images,
        y,
        classes,
        list(FASHION_MNIST_CLASSES),
        transform=adapt,
        sample_shape=(info.in_channels, info.input_size, info.input_size),
    )


def check_compatible(dataset: Dataset, info: ModelInfo, check_labels: bool = True) -> None:
    """Raise a one-line :class:`UserError` when ``dataset`` cannot feed the model ``info`` describes."""
    want = (info.in_channels, info.input_size, info.input_size)
    if tuple(dataset.sample_shape) != want:
        got = "x".join(map(str, dataset.sample_shape))
        raise UserError(
            f"{dataset.spec} has samples of shape {got}; {info.name or info.arch} takes {'x'.join(map(str, want))}"
        )
    if check_labels:
        check_labels_fit(dataset, info.num_classes, info.name or info.arch)


def check_labels_fit(dataset: Dataset, model_classes: int, model_name: str = "the model") -> None:
    """Labels must index the model's outputs."""
    if dataset.num_classes > model_classes:
        raise UserError(
            f"{dataset.spec} has labels up to {dataset.num_classes - 1}, out of range for "
            f"{model_name} with {model_classes} classes"
        )


def open_dataset(spec: str, info: ModelInfo | None = None, *, need_labels: bool = True) -> Dataset:
    """Open a dataset from its spec (see the module docstring); with ``info``, check it fits that model.

    Folder datasets need ``info`` to know the preprocessing; without it they assume a 3 x 224 x 224 ImageNet model
    that expects ImageNet-normalised input. ``need_labels`` False (calibration) accepts unlabelled ``.npy`` files
    and ``.npz`` files without ``y``, and does not check the labels against the model's classes.
    """
    spec = str(spec)
    if spec.startswith("fashion-mnist"):
        name, _, split = spec.partition(":")
        if name == "fashion-mnist":
            if split not in FASHION_MNIST_SPLITS:
                raise UserError(f"unknown Fashion-MNIST split in '{spec}' (use fashion-mnist:train or :test)")
            dataset: Dataset = _fashion_mnist(split, spec, info)
            if info is not None:
                check_compatible(dataset, info, need_labels)
            return dataset
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".npz":
        dataset = load_npz(path, spec, info, need_labels)
    elif suffix == ".npy":
        if need_labels:
            raise UserError(f"{spec} holds images without labels: give a .npz with x and y to evaluate on")
        dataset = load_npy(path, spec, info)
    elif path.is_dir():
        dataset = FolderDataset(path, info or ModelInfo(arch="resnet50"), spec)
    elif not path.exists():
        raise UserError(f"data '{spec}' not found ({SPEC_HELP})")
    else:
        raise UserError(f"unknown data spec '{spec}': {SPEC_HELP}")
    if info is not None:
        check_compatible(dataset, info, need_labels)
    return dataset
