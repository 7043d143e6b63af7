"""Arrays on disk read a few rows at a time: ``.npy`` files, ``.npz`` members and IDX files, plain or compressed.

Nothing here reads a whole array it does not have to. A header is parsed first and its declared size checked
against the bytes the file (or zip member) really holds and against :data:`MAX_STREAMED_BYTES`, before anything is
allocated; rows are then read on demand, in order, through one open handle. Compressed data (a deflated ``.npz``
member, a gzip IDX file) is decompressed as a stream, so memory is bounded by the rows asked for, whatever the
compression ratio: a 1.5 MB ``.npz`` that inflates to 1.8 GB costs the rows one batch needs, not 1.8 GB. Arrays
that are read whole (labels, class names) are capped at :data:`MAX_WHOLE_BYTES`.
"""

from __future__ import annotations

import ast
import io
import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import UserError

#: declared size beyond which a streamed array (images) is refused outright: far above any real data set here
#: (ImageNet's 1.28 M training images at 224 x 224 in uint8 are 193 GB), small enough to catch nonsense headers
MAX_STREAMED_BYTES = 1 << 40  # 1 TiB
#: declared size beyond which an array read whole (labels, class names) is refused: 32 M int64 labels
MAX_WHOLE_BYTES = 256 << 20  # 256 MiB
#: longest ``.npy`` header accepted (numpy's own ``max_header_size`` default)
MAX_NPY_HEADER = 10_000

Opener = Callable[[], IO[bytes]]


def human_bytes(n: int) -> str:
    """``n`` bytes for a message (``1.8 GB``, ``512 B``)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def cap_text(n: int) -> str:
    """A size cap for a message, in binary units when it is a power of two (``1 GiB``)."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return human_bytes(n)


def declared_bytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    """Bytes an array of ``shape`` and ``dtype`` holds (Python integers: no overflow whatever the header says)."""
    return math.prod(int(d) for d in shape) * int(dtype.itemsize)


class ArrayFile:
    """A C-ordered array of ``shape``/``dtype`` that starts ``offset`` bytes into the stream ``opener`` returns.

    :meth:`rows` reads rows ``[start, stop)`` of the first axis: a forward read continues on the open handle (so
    reading a compressed file batch after batch decompresses it once), a backward one reopens the stream.
    """

    def __init__(self, source: str, opener: Opener, offset: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        if not shape:
            raise UserError(f"{source} holds a scalar, not an array of samples")
        self.source = source
        self.shape = shape
        self.dtype = dtype
        self._opener = opener
        self._offset = offset
        self._row_bytes = declared_bytes(shape[1:], dtype)
        self._handle: IO[bytes] | None = None
        self._position = 0  # next row the open handle will read

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def nbytes(self) -> int:
        return declared_bytes(self.shape, self.dtype)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a fresh array; a file shorter than its header says is a one-line error."""
        stop = min(stop, len(self))
        count = max(0, stop - start)
        out = np.empty((count, *self.shape[1:]), dtype=self.dtype)
        if count == 0:
            return out
        handle = self._seek(start)
        view = memoryview(out.reshape(-1).view(np.uint8).data)
        done = 0
        try:
            while done < len(view):
                n = handle.readinto(view[done:])  # type: ignore[attr-defined]
                if not n:
                    raise UserError(f"{self.source} is truncated: its header promises {self.shape[0]} rows")
                done += n
            if stop == len(self) and handle.read(1):
                raise UserError(f"{self.source} holds more data than its header's {self.shape} says")
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            self.close()
            raise UserError(f"cannot read {self.source}: {exc}") from None
        except UserError:
            self.close()
            raise
        self._position = stop
        return out

    def read_all(self, limit: int = MAX_WHOLE_BYTES) -> np.ndarray:
        """The whole array, refused when it is larger than ``limit`` bytes (for labels, not images)."""
        if self.nbytes > limit:
            raise UserError(
                f"{self.source} declares {human_bytes(self.nbytes)}, over the {human_bytes(limit)} this array may take"
            )
        try:
            return self.rows(0, len(self))
        finally:
            self.close()

    def _seek(self, start: int) -> IO[bytes]:
        if self._handle is None or start < self._position:
            self.close()
            try:
                self._handle = self._opener()
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise UserError(f"cannot read {self.source}: {exc}") from None
            self._position = 0
            self._skip(self._offset)
        if start > self._position:
            self._skip((start - self._position) * self._row_bytes)
            self._position = start
        return self._handle

    def _skip(self, nbytes: int) -> None:
        """Move the handle ``nbytes`` forward: a seek on plain files, bounded reads on compressed streams."""
        assert self._handle is not None
        handle = self._handle
        try:
            if isinstance(handle, io.BufferedReader | io.FileIO):
                handle.seek(nbytes, io.SEEK_CUR)
                return
            left = nbytes
            while left > 0:
                chunk = handle.read(min(left, 1 << 20))
                if not chunk:
                    raise UserError(f"{self.source} is truncated: its header promises {self.shape[0]} rows")
                left -= len(chunk)
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            self.close()
            raise UserError(f"cannot read {self.source}: {exc}") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._position = 0

    def __del__(self) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------------- .npy


def _npy_header(handle: IO[bytes], source: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, header length) of the ``.npy`` stream at ``handle``, checked before any data is read.

    Parsed here rather than by ``np.lib.format`` so that every malformed header is one line naming the file, and
    object dtypes (pickles) never get near an unpickler.
    """
    magic = handle.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise UserError(f"{source} is not a .npy array (bad magic)")
    major = magic[6]
    size_bytes = 2 if major == 1 else 4 if major in (2, 3) else 0
    if not size_bytes:
        raise UserError(f"{source}: unsupported .npy format version {major}.{magic[7]}")
    raw_len = handle.read(size_bytes)
    if len(raw_len) < size_bytes:
        raise UserError(f"{source}: truncated .npy header")
    header_len = int.from_bytes(raw_len, "little")
    if header_len > MAX_NPY_HEADER:
        raise UserError(f"{source}: .npy header of {header_len} bytes is too long to be real")
    text = handle.read(header_len)
    if len(text) < header_len:
        raise UserError(f"{source}: truncated .npy header")
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise UserError(f"{source}: malformed .npy header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise UserError(f"{source}: malformed .npy header")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise UserError(f"{source}: malformed .npy shape {shape!r}")
    if any(d < 0 for d in shape):
        raise UserError(f"{source}: negative dimension in .npy shape {shape}")
    descr = header["descr"]
    if not isinstance(descr, str):  # structured dtypes (lists) are not image data
        raise UserError(f"{source}: structured arrays are not supported")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise UserError(f"{source}: unknown .npy dtype {descr!r}") from None
    if dtype.hasobject:
        raise UserError(f"{source} holds pickled objects, which resnet-deploy does not load")
    if header["fortran_order"] and len(shape) > 1:
        raise UserError(f"{source} is stored in Fortran order: save it in C order (np.ascontiguousarray)")
    return tuple(shape), dtype, 8 + size_bytes + header_len


def _checked(source: str, opener: Opener, available: int, *, streamed_cap: int = MAX_STREAMED_BYTES) -> ArrayFile:
    """The :class:`ArrayFile` of the ``.npy`` stream ``opener`` gives, whose full size is ``available`` bytes."""
    try:
        with opener() as handle:
            shape, dtype, offset = _npy_header(handle, source)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"cannot read {source}: {exc}") from None
    declared = declared_bytes(shape, dtype)
    if declared > streamed_cap:
        raise UserError(f"{source} declares {human_bytes(declared)} of data, over the {cap_text(streamed_cap)} cap")
    if available - offset != declared:
        raise UserError(
            f"{source}: header says {shape} {dtype} ({human_bytes(declared)}) but the file holds "
            f"{human_bytes(max(0, available - offset))}"
        )
    return ArrayFile(source, opener, offset, shape, dtype)


def open_npy(path: Path) -> ArrayFile:
    """A ``.npy`` file as an :class:`ArrayFile`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _checked(str(path), lambda: open(path, "rb"), size)


def open_npz(path: Path) -> dict[str, ArrayFile]:
    """The arrays of a ``.npz`` file (stored or deflated), by name without ``.npy``."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise UserError(f"{path} is not a valid .npz file ({exc})") from None
    members: dict[str, ArrayFile] = {}
    with archive:
        infos = archive.infolist()
    for info in infos:
        if not info.filename.endswith(".npy") or info.is_dir():
            continue
        name = info.filename[: -len(".npy")]

        def opener(member: zipfile.ZipInfo = info) -> IO[bytes]:
            # The member's stream keeps the archive's file open after the ZipFile object is closed (zipfile counts
            # its readers), so each handle owns its own file and reads deflated members as a stream.
            with zipfile.ZipFile(path) as zf:
                try:
                    return zf.open(member)
                except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
                    raise UserError(f"cannot read {path}[{member.filename}]: {exc}") from None

        members[name] = _checked(f"{path}[{name}]", opener, info.file_size)
    return members
