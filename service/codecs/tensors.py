"""Open Inference Protocol (v2) tensors <-> numpy: the one place tensor data is decoded.

A v2 tensor is a name, a ``datatype`` (``FP32``, ``INT64``, ``BOOL``, ...), a ``shape`` and
its elements in row-major order: as JSON ``data`` (flat or nested), as raw little-endian bytes
(Triton's binary tensor extension over HTTP, ``raw_input_contents`` over gRPC), or as gRPC's
typed ``contents`` lists. Every form ends in :func:`from_bytes` or :func:`from_data`, which
check the element count against the shape and return an ndarray of the declared dtype.

The binary extension: an HTTP body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the binary buffers of the tensors whose ``parameters`` carry
``binary_data_size``, in tensor order (:func:`split_body`, :func:`take_buffers`); answers are
written the same way (:func:`encode_body`). Pure functions: no protocol, no server.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import simdjson

from service.codecs.flatjson import exact32
from service.runtime.errors import BadRequest, InvalidInput, clip

# v2 datatypes numpy can hold (little-endian, as the protocol sends them). BF16 and BYTES are
# protocol datatypes no model here takes: refused with a message naming these.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES: dict[np.dtype[Any], str] = {dtype: name for name, dtype in DTYPES.items()}
MAX_DIMS = 32
HEADER_LENGTH = "inference-header-content-length"

Array = npt.NDArray[Any]


def dtype_of(datatype: Any, name: str) -> np.dtype[Any]:
    """The numpy dtype of a v2 datatype; InvalidInput naming the supported ones otherwise."""
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidInput(
            f"input '{name}' has datatype {datatype!r}; send one of {', '.join(DTYPES)} "
            "(FP32 is what the models take)"
        )
    return dtype


def datatype_of(array: Array) -> str:
    """The v2 datatype of an ndarray (of a dtype in :data:`DTYPES`)."""
    return DATATYPES[array.dtype]


def check_shape(shape: Any, name: str) -> tuple[int, ...]:
    """A tensor's shape: a list of 0 to MAX_DIMS non-negative integers."""
    if (
        not isinstance(shape, list | tuple)
        or len(shape) > MAX_DIMS
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InvalidInput(
            f"input '{name}' has shape {str(shape)[:80]}; a shape is a list of at most "
            f"{MAX_DIMS} non-negative integers"
        )
    return tuple(shape)


def element_count(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def from_bytes(name: str, datatype: Any, shape: Any, raw: bytes | memoryview) -> Array:
    """Raw row-major little-endian elements -> ndarray of ``shape`` (read in place)."""
    dtype = dtype_of(datatype, name)
    dims = check_shape(shape, name)
    count = element_count(dims)
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"input '{name}' has {len(raw)} bytes of data; shape {list(dims)} of {datatype} "
            f"needs {count * dtype.itemsize}"
        )
    array: Array = np.frombuffer(raw, dtype=dtype).reshape(dims)
    if dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
        raise InvalidInput(f"input '{name}' is BOOL; its bytes must be 0 or 1")
    return array


def from_data(name: str, datatype: Any, shape: Any, data: Any) -> Array:
    """JSON ``data`` (flat or nested, row-major) or gRPC typed contents -> ndarray of
    ``shape``, converted in one numpy call."""
    dtype = dtype_of(datatype, name)
    dims = check_shape(shape, name)
    if not isinstance(data, list | tuple | np.ndarray):
        raise InvalidInput(f"input '{name}' data must be an array, got {type(data).__name__}")
    try:
        values = np.asarray(data)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"input '{name}' data is ragged or mixes arrays and numbers; send the elements "
            "flat or nested by the shape"
        ) from None
    kinds = "b" if dtype.kind == "b" else "iuf" if dtype.kind == "f" else "iu"
    if values.size and values.dtype.kind not in kinds:
        wanted = {"b": "true/false", "iu": "integers", "iuf": "numbers"}[kinds]
        raise InvalidInput(f"input '{name}' is {datatype}: its data must contain only {wanted}")
    if values.size != element_count(dims):
        raise InvalidInput(
            f"input '{name}' has {values.size} elements; shape {list(dims)} needs "
            f"{element_count(dims)}"
        )
    try:
        with np.errstate(over="ignore"):  # beyond FP32: inf, refused as non-finite later
            array: Array = values.astype(dtype, casting="unsafe").reshape(dims)
    except OverflowError:
        raise InvalidInput(f"input '{name}' has integers beyond {datatype}") from None
    # Compared in the data's own layout (flat data of a [2, 3] tensor is flat here too).
    if (
        dtype.kind in "iu"
        and values.size
        and not np.array_equal(array.reshape(values.shape), values)
    ):
        raise InvalidInput(f"input '{name}' has values that do not fit {datatype}")
    return array


def no_classification(output: str) -> str:
    """The message refusing Triton's classification extension on an output."""
    return (
        f"output '{clip(output)}' asks for classification (Triton's extension), which this "
        "server does not offer; ask for the output's values"
    )


def to_bytes(array: Array) -> bytes:
    """An output's raw row-major little-endian bytes."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def as_buffer(array: Array) -> bytes | memoryview:
    """:func:`to_bytes` without the copy when the array already is row-major little-endian:
    a view of it (an 800 KB output is copied once, into the answer, not twice)."""
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return data.data.cast("B") if data.ndim else data.tobytes()


# -- the binary tensor extension over HTTP -----------------------------------------------------


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """A request body as its JSON header and the binary buffers after it."""
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.isdigit() or int(header_length) > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {header_length[:40]!r}; it must be the byte "
            f"length of the JSON header at the start of the body ({len(body)} bytes)"
        )
    n = int(header_length)
    view = memoryview(body)
    return bytes(view[:n]), view[n:]


def take_buffers(tensors: Sequence[dict[str, Any]], tail: memoryview) -> list[memoryview | None]:
    """Each tensor's binary buffer (``parameters.binary_data_size``) from the body's tail, in
    tensor order; None for tensors whose data is JSON. The sizes must add up to the tail."""
    out: list[memoryview | None] = []
    at = 0
    for tensor in tensors:
        params = tensor.get("parameters")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            out.append(None)
            continue
        if type(size) is not int or size < 0 or at + size > len(tail):
            raise InvalidInput(
                f"input '{tensor.get('name')}' has binary_data_size {str(size)[:40]}; the "
                f"body has {len(tail) - at} bytes of binary data left for it"
            )
        out.append(tail[at : at + size])
        at += size
    if at != len(tail):
        raise InvalidInput(
            f"the body has {len(tail) - at} bytes of binary data that no input's "
            "binary_data_size claims"
        )
    return out


def encode_body(
    header: dict[str, Any], buffers: Sequence[bytes | memoryview]
) -> tuple[bytes, int | None]:
    """A v2 answer: the JSON header (numpy arrays written by orjson) and the binary buffers
    after it; the header's length when there are buffers (``Inference-Header-Content-Length``)."""
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not buffers:
        return head, None
    return b"".join([head, *buffers]), len(head)


# -- the plain JSON request, parsed by simdjson ---------------------------------------------------

_PARSER = simdjson.Parser()
_PLAIN_KEYS = frozenset(("inputs", "outputs", "id"))
_TENSOR_KEYS = frozenset(("name", "shape", "datatype", "data"))


def _brackets(body: bytes | bytearray, most: int) -> int:
    """How many ``[`` the body holds, counting no further than ``most`` (memchr by find)."""
    at, count = -1, 0
    while count < most:
        at = body.find(b"[", at + 1)
        if at < 0:
            break
        count += 1
    return count


class Plain:
    """A plain v2 request: one FP32 input with flat JSON ``data``, outputs by name only, no
    parameters (what the express lane takes). ``wide``: the data as float64, as parsed;
    :meth:`array` gives the FP32 tensor (None beyond +-2**53)."""

    __slots__ = ("dims", "id", "name", "outputs", "wide")

    def __init__(
        self,
        name: str,
        dims: list[int],
        wide: npt.NDArray[np.float64],
        outputs: list[str] | None,
        rid: str | None,
    ) -> None:
        self.name = name
        self.dims = dims
        self.wide = wide
        self.outputs = outputs
        self.id = rid

    def array(self) -> Array | None:
        """The FP32 tensor (:func:`from_data`'s values), or None when some value is beyond
        +-2**53 (then :func:`from_data` decides how such integers round)."""
        x = exact32(self.wide)
        return None if x is None else x.reshape(self.dims)


def plain(body: bytes | bytearray) -> Plain | None:
    """The plain request of ``body``, its data parsed by simdjson straight into float64 numpy
    (numbers correctly rounded, as orjson and numpy read them); None for any other body."""
    doc = inputs = tensor = data = outputs = None
    try:
        doc = _PARSER.parse(body)
        if not isinstance(doc, simdjson.Object):
            return None
        # Keys are looked up only when present: a missing key costs simdjson a C++ exception
        # (~3 us each, a tenth of the parse).
        keys = set(doc.keys())
        if not keys <= _PLAIN_KEYS or "inputs" not in keys:
            return None
        rid = doc["id"] if "id" in keys else None
        if "id" in keys and type(rid) is not str:
            return None  # a null id (or outputs, below) is refused by the full path
        inputs = doc["inputs"]
        if not isinstance(inputs, simdjson.Array):
            return None
        if len(inputs) != 1:
            return None
        tensor = inputs[0]
        if not isinstance(tensor, simdjson.Object) or set(tensor.keys()) != _TENSOR_KEYS:
            return None
        name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
        if type(name) is not str or datatype != "FP32" or not isinstance(shape, simdjson.Array):
            return None
        dims = shape.as_list()
        data = tensor["data"]
        if not isinstance(data, simdjson.Array):
            return None
        names: list[str] | None = None
        outputs = doc["outputs"] if "outputs" in keys else None
        if outputs is None and "outputs" in keys:
            return None
        # Flat data: the body's only arrays are inputs, shape, data and outputs (as_buffer
        # would flatten nested, even ragged, data; np.asarray would not).
        arrays = 3 + (outputs is not None)
        if _brackets(body, arrays + 1) != arrays:
            return None
        flat = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
        if outputs is not None:
            if not isinstance(outputs, simdjson.Array):
                return None
            names = []
            for item in outputs.as_list():
                if (
                    type(item) is not dict
                    or item.keys() != {"name"}
                    or type(item["name"]) is not str
                ):
                    return None
                names.append(item["name"])
    except (ValueError, TypeError, RuntimeError, KeyError):
        return None
    finally:
        doc = inputs = tensor = data = outputs = None  # the parser is reused: proxies must go
    if not all(type(d) is int and d >= 0 for d in dims) or math.prod(dims) != flat.size:
        return None
    return Plain(name, dims, flat, names, rid)
