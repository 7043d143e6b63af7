"""Reader for the IDX files of (Fashion-)MNIST, as installed by Debian's ``dataset-fashion-mnist``.

:func:`open_idx` parses the header and checks its declared size (against the file's size for plain files, and
against :data:`MAX_IDX_BYTES` always, since a gzip file's expanded size is unknown until it is decompressed) before
anything is allocated; rows are then read on demand through :class:`~.arrays.ArrayFile`. A 990 kB gzip file whose
header claims 9.2 GB is refused at once; the real training images (47 MB) are streamed a batch at a time.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import IO, cast

import numpy as np

from ..errors import UserError
from .arrays import ArrayFile, cap_text, declared_bytes, human_bytes

FASHION_MNIST_DIR = Path(os.environ.get("RESNET_DEPLOY_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
# Mean and std of the Fashion-MNIST training pixels in [0, 1]; the reference models normalise in-graph with them.
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: IDX files are the MNIST family's format (the largest, EMNIST ByClass, holds 0.55 GB): larger claims are refused
MAX_IDX_BYTES = 1 << 30
MAX_IDX_DIMS = 4


def _opener(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def open_idx(path: str | Path) -> ArrayFile:
    """The IDX file at ``path`` (optionally gzip-compressed) as a lazily read array, its header validated."""
    path = Path(path)
    try:
        with _opener(path) as handle:
            head = handle.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise UserError(f"{path} is not an IDX file (bad magic number)")
            ndim = head[3]
            if not 1 <= ndim <= MAX_IDX_DIMS:
                raise UserError(f"{path}: IDX header claims {ndim} dimensions (1 to {MAX_IDX_DIMS} make sense)")
            dims = handle.read(4 * ndim)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise UserError(f"cannot read IDX file {path}: {exc}") from None
    if len(dims) < 4 * ndim:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[head[2]])
    declared = declared_bytes(shape, dtype)
    if declared > MAX_IDX_BYTES:
        raise UserError(
            f"{path}: IDX header says {shape} ({human_bytes(declared)}), over the {cap_text(MAX_IDX_BYTES)} "
            "an IDX file may hold"
        )
    header = 4 + 4 * ndim
    if path.suffix != ".gz":
        size = path.stat().st_size
        if size - header != declared:
            raise UserError(f"{path}: IDX header says {shape} but the file holds {size - header} data bytes")
    return ArrayFile(f"IDX file {path}", lambda: _opener(path), header, shape, dtype)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one whole IDX file (optionally gzip-compressed), validating its header against its size; float data
    must be finite."""
    array = open_idx(path)
    try:
        data = array.read_all(MAX_IDX_BYTES)
    except UserError as exc:
        if "is truncated" in str(exc):
            raise UserError(f"{path}: IDX header says {array.shape} but the file holds fewer data bytes") from None
        raise
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise UserError(f"{path} holds NaN or infinite values")
    return data


def fashion_mnist_files(split: str, root: str | Path | None = None) -> tuple[Path, Path]:
    """(images, labels) IDX paths of ``split`` ('train' or 'test') under ``root`` (default: Debian's folder)."""
    if split not in ("train", "test"):
        raise UserError(f"unknown Fashion-MNIST split '{split}' (use 'train' or 'test')")
    base = Path(root) if root is not None else FASHION_MNIST_DIR
    prefix = "train" if split == "train" else "t10k"
    images_path = base / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = base / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_path.exists() or not labels_path.exists():
        raise UserError(
            f"Fashion-MNIST not found in {base} (install it: apt-get install -y dataset-fashion-mnist, "
            "or set RESNET_DEPLOY_FASHION_MNIST)"
        )
    return images_path, labels_path


def open_fashion_mnist(split: str, root: str | Path | None = None) -> tuple[ArrayFile, np.ndarray]:
    """(uint8 N x 28 x 28 images, read lazily; int64 labels) of ``split``, checked to agree with each other."""
    images_path, labels_path = fashion_mnist_files(split, root)
    images = open_idx(images_path)
    labels = read_idx(labels_path)
    if len(images.shape) != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise UserError(
            f"Fashion-MNIST files in {images_path.parent} have inconsistent shapes {images.shape}, {labels.shape}"
        )
    if images.dtype != np.uint8:
        raise UserError(f"{images_path}: Fashion-MNIST pixels must be uint8, not {images.dtype}")
    if labels.dtype.kind not in "iu" or (labels.size and int(labels.min()) < 0):
        raise UserError(f"{labels_path}: labels must be non-negative integers")
    return images, labels.astype(np.int64)


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1] (``pixels / 255`` in float32, the values every reader here produces)."""
    x = pixels.astype(np.float32)
    x /= np.float32(255.0)
    return x


def load_fashion_mnist(
    split: str, root: str | Path | None = None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (images float32 N x 1 x 28 x 28 in [0, 1], labels int64) for split 'train' or 'test'; with
    ``limit``, only the first ``limit`` images are read."""
    images, labels = open_fashion_mnist(split, root)
    n = len(images) if limit is None else max(0, min(limit, len(images)))
    try:
        raw = images.rows(0, n)
    finally:
        images.close()
    return to_unit_float(raw)[:, None, :, :], labels[:n]
