"""The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), read with numpy only.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of dimensions, then
one uint32 per dimension -- followed by the values in C order. Files may be gzip-compressed (the
canonical ``*.gz``) or plain. Checksums are taken over the *decompressed* bytes, so a user's
uncompressed copy verifies the same as the distributed ``.gz`` (Debian recompresses
Fashion-MNIST, which changes the ``.gz`` bytes but not the content).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Final

import numpy as np

# IDX type code -> numpy dtype (big-endian where it matters).
IDX_TYPES: Final[dict[int, str]] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


class IdxFormatError(ValueError):
    """A file is not a well-formed IDX file."""


class DataChecksumError(ValueError):
    """A data file's content differs from the known md5: a damaged or a different file."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"{path}: md5 of the decompressed content is {actual}, expected {expected}; the file "
            "is damaged or not the canonical one (delete it and run `make data` again, or pass "
            "verify=False for a deliberately different copy)"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class DataMissingError(FileNotFoundError):
    """A dataset file is not where the loader looked; the message says how to get it."""


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    return raw


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes into an array of the header's type and shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"{where}: not an IDX file (bad magic {data[:4]!r})")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise IdxFormatError(f"{where}: unknown IDX type code {code:#04x}")
    if ndim == 0:
        raise IdxFormatError(f"{where}: IDX file with 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{where}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise IdxFormatError(
            f"{where}: header says {shape} of {dtype} ({expected} bytes), "
            f"file holds {len(data) - header} bytes of data"
        )
    arr = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path, md5sum: str | None = None) -> np.ndarray:
    """Read one IDX file (gzip or plain); check the content's md5 when ``md5sum`` is given."""
    data = read_bytes(path)
    if md5sum is not None:
        actual = md5(data)
        if actual != md5sum:
            raise DataChecksumError(Path(path), md5sum, actual)
    return parse_idx(data, str(path))


def write_idx(path: Path, arr: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``arr`` as an IDX file (gzip when ``compress`` or the name ends in .gz); for tests
    and for users converting their own data."""
    arr = np.asarray(arr)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX has no type for {arr.dtype}")
    big = arr.astype(np.dtype(IDX_TYPES[code]), copy=False)
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    data = header + big.tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
