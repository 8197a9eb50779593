"""NumPy's .npy format: request bodies read in place, answers written as one structured array.

An ``application/x-npy`` body carries ``inputs`` (or ``latents``) and is read without copying;
an answer's per-sample fields become the fields of one structured .npy array (names as in JSON:
``outputs``, ``scores``, ...), ``np.load(io.BytesIO(body))["outputs"]`` giving [N, *shape].
"""

from __future__ import annotations

import ast
import functools
import io
import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from service.runtime.errors import BadRequest, InvalidInput

NPY = "application/x-npy"
NPY_MAGIC = b"\x93NUMPY"
# Headers are padded to 64 bytes; a few kilobytes covers any shape we accept.
NPY_MAX_HEADER = 16 * 1024
# Inputs are [N, *input.shape]; numpy itself stops at 64 dimensions.
NPY_MAX_DIMS = 32


# The header numpy writes (np.save, np.lib.format): parsed without compiling it; any other
# spelling goes through ast.literal_eval (which compiles the text: ~25 us a request).
_NPY_HEADER = re.compile(
    r"\{'descr': '([<>|=]?[a-zA-Z][0-9]*)', 'fortran_order': (True|False), "
    r"'shape': \(((?:(?:0|[1-9][0-9]*), ?)*(?:0|[1-9][0-9]*)?)\), \} *\n?"
)


def _npy_header(text: str) -> Any:
    match = _NPY_HEADER.fullmatch(text)
    if match is None:
        return ast.literal_eval(text)
    descr, fortran, dims = match.groups()
    return {
        "descr": descr,
        "fortran_order": fortran == "True",
        "shape": tuple(int(d) for d in dims.split(",") if d.strip()),
    }


def decode_npy(body: bytes | bytearray) -> npt.NDArray[Any]:
    """One .npy array (format versions 1-3), read in place; 400 when malformed, 422 for
    dtypes that are not numbers (objects, strings, records)."""
    if not body.startswith(NPY_MAGIC) or len(body) < 10:
        raise BadRequest("the body is not a .npy file (it must start with \\x93NUMPY)")
    major = body[6]
    if major == 1:
        hlen, start = int.from_bytes(body[8:10], "little"), 10
    elif major in (2, 3) and len(body) >= 12:
        hlen, start = int.from_bytes(body[8:12], "little"), 12
    else:
        raise BadRequest(f".npy format version {major} is not supported (1, 2 or 3)")
    if hlen > NPY_MAX_HEADER or start + hlen > len(body):
        raise BadRequest(".npy header is truncated or too long")
    try:
        text = body[start : start + hlen].decode("utf-8" if major == 3 else "latin1")
        header = _npy_header(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise BadRequest(".npy header is not a valid Python literal") from None
    if (
        not isinstance(header, dict)
        or set(header) != {"descr", "fortran_order", "shape"}
        or not isinstance(header["fortran_order"], bool)
        or not isinstance(header["shape"], tuple)
        or not all(type(d) is int and d >= 0 for d in header["shape"])
    ):
        raise BadRequest(
            ".npy header must hold 'descr', 'fortran_order' and a 'shape' tuple of "
            "non-negative integers"
        )
    if len(header["shape"]) > NPY_MAX_DIMS:
        raise InvalidInput(
            f".npy array has {len(header['shape'])} dimensions; at most {NPY_MAX_DIMS} are "
            "accepted (send [N, *input.shape] or [N, prod(shape)])"
        )
    try:
        dtype = np.dtype(header["descr"]) if isinstance(header["descr"], str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biuf" or dtype.fields is not None:
        raise InvalidInput(
            f".npy dtype {header['descr']!r} is not supported; send booleans, integers or floats"
        )
    shape: tuple[int, ...] = header["shape"]
    count = math.prod(shape)
    data = memoryview(body)[start + hlen :]
    if len(data) != count * dtype.itemsize:
        raise BadRequest(
            f".npy data is {len(data)} bytes; shape {list(shape)} of {dtype} needs "
            f"{count * dtype.itemsize}"
        )
    flat = np.frombuffer(data, dtype=dtype, count=count)
    return flat.reshape(shape, order="F" if header["fortran_order"] else "C")


def encode_npy(array: npt.NDArray[Any]) -> bytes:
    """One array as a .npy file (version 1.0, or 2.0 for very long headers)."""
    if array.ndim == 0 or array.size == 0 or not array.flags.c_contiguous:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array, allow_pickle=False)
        return buf.getvalue()
    # Header + the array's buffer: one copy fewer than write_array into a BytesIO.
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(array))
    return head.getvalue() + array.data.cast("B")


def npy_table(columns: dict[str, npt.NDArray[Any]]) -> memoryview:
    """Per-sample arrays (leading axis N) as the fields of one structured .npy file.

    The file is built in one buffer: the header, then the table filled in place (one copy of
    each column; a table then a file would copy every byte twice). Every byte is written, so
    the buffer need not be zeroed first.
    """
    n = next(iter(columns.values())).shape[0]
    dtype = np.dtype([(k, v.dtype, v.shape[1:]) for k, v in columns.items()])
    prefix = _npy_table_header(dtype, n)
    buf = np.empty(len(prefix) + n * dtype.itemsize, dtype=np.uint8)
    buf[: len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    table = np.frombuffer(buf, dtype=dtype, count=n, offset=len(prefix))
    for key, value in columns.items():
        table[key] = value
    return buf.data


@functools.lru_cache(maxsize=256)
def _npy_table_header(dtype: np.dtype[Any], n: int) -> bytes:
    """The .npy header of an answer table: the same few (model, endpoint, N) shapes recur, and
    numpy's header writer costs ~40 us."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n,)},
    )
    return header.getvalue()
