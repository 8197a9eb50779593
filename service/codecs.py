"""Wire formats <-> numpy: JSON arrays, tabular records, base64 PNG/JPEG, multipart, .npy.

Large arrays are parsed once with orjson and converted by numpy in one call; shape, dtype and
finiteness are checked on the ndarray (see ModelRuntime.to_model_space), never number by number.
Responses are written by orjson straight from numpy arrays.

Binary tensors: an ``application/x-npy`` body (NumPy's .npy format, options in the query string)
carries ``inputs`` (or ``latents`` for /decode) and is read without copying; ``Accept:
application/x-npy`` returns the per-sample fields of the answer as one structured .npy array
(field names as in JSON: ``outputs``, ``scores``, ...) and the rest in ``X-...`` headers.
"""

from __future__ import annotations

import ast
import base64
import binascii
import functools
import inspect
import io
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response

from service import schemas
from service.errors import (
    BadRequest,
    InvalidInput,
    UnsupportedMediaType,
    UnsupportedOperation,
    invalid_fields,
)
from service.metrics import MODEL_KEY
from service.repository import ModelRepository
from service.runtime import F32, ModelRuntime

R = TypeVar("R", bound=BaseModel)

JSON = "application/json"
MULTIPART = "multipart/form-data"
NPY = "application/x-npy"
# Bodies above this many bytes are converted, and answers above this many numbers serialised, in
# the thread pool; smaller ones on the event loop (a thread hop costs more than the work).
LARGE_BODY = 256 * 1024
LARGE_ANSWER = 64 * 1024
# Decoded images larger than this are refused before their pixels are decoded.
MAX_IMAGE_PIXELS = 4096 * 4096
IMAGE_FORMATS = ("PNG", "JPEG")


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response written by orjson (numpy arrays serialised natively)."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type=JSON,
    )


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _content_headers(request: Request) -> tuple[str, str]:
    """The media type (as :func:`media_type`) and the Accept header, in one pass over the raw
    headers (the first of each, as ``request.headers.get``) without building a Headers."""
    ctype = accept = None
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            if ctype is None:
                ctype = value
        elif name == b"accept" and accept is None:
            accept = value
    return (
        ctype.decode("latin-1").split(";", 1)[0].strip().lower() if ctype else "",
        accept.decode("latin-1") if accept else "",
    )


def is_json(ctype: str) -> bool:
    return ctype in ("", JSON) or (ctype.startswith("application/") and ctype.endswith("+json"))


@dataclass
class ParsedRequest(Generic[R]):
    """A validated request: its options, the model, and uploaded files (multipart only)."""

    options: R
    runtime: ModelRuntime
    uploads: list[tuple[str, bytes]] | None = None
    # Accept: application/x-npy (answer as .npy), and the body's size in bytes.
    npy: bool = False
    size: int = 0


async def read_request(
    request: Request,
    schema: type[R],
    repository: ModelRepository,
    *,
    multipart: bool = False,
) -> ParsedRequest[R]:
    """Read the body once: JSON (options + arrays), or options in the query and the body as
    multipart images (if allowed) or one .npy array (endpoints taking inputs or latents)."""
    ctype, accept = _content_headers(request)
    npy_out = NPY in accept
    npy_field = schemas.npy_field(schema)
    if multipart and ctype == MULTIPART:
        params = dict(request.query_params)
        inline = [k for k in ("inputs", "images", "records") if k in params]
        if inline:  # the uploads are the inputs: another input form would be ignored
            raise InvalidInput(
                f"a multipart body carries the inputs as files; drop {inline} from the query"
            )
        options = validate(schema, params, "query parameters")
        runtime = select_model(request, repository, option(options, "model"))
        uploads = await read_uploads(request, runtime.max_batch)
        return ParsedRequest(options, runtime, uploads, npy=npy_out)
    if ctype == NPY and npy_field is not None:
        query: dict[str, Any] = dict(request.query_params)
        if npy_field in query:
            raise InvalidInput(f"send '{npy_field}' as the .npy body, not in the query string")
        body = await request.body()
        query[npy_field] = decode_npy(body)  # typed Any in the schema: passed through as is
        options = validate(schema, query, "query parameters")
        runtime = select_model(request, repository, option(options, "model"))
        return ParsedRequest(options, runtime, npy=npy_out, size=len(body))
    if not is_json(ctype):
        accepted = [JSON] + ([MULTIPART] if multipart else []) + ([NPY] if npy_field else [])
        raise UnsupportedMediaType(
            f"content type '{ctype}' is not supported; send {' or '.join(accepted)}"
        )
    body = await request.body()
    data = json_object(body)
    options = validate(schema, data, "request")
    runtime = select_model(request, repository, option(options, "model"))
    return ParsedRequest(options, runtime, npy=npy_out, size=len(body))


def option(options: BaseModel, name: str, default: Any = None) -> Any:
    """A field of a request schema, or ``default`` when the schema has no such field.

    Read from the instance's ``__dict__`` (where pydantic keeps field values): ``getattr`` with
    a default goes through pydantic's ``__getattr__`` and an AttributeError for a missing field,
    a few microseconds per call on every request.
    """
    return options.__dict__.get(name, default)


def select_model(request: Request, repository: ModelRepository, name: str | None) -> ModelRuntime:
    runtime = repository.get(name)
    request.scope[MODEL_KEY] = runtime.name
    return runtime


async def read_json_object(request: Request) -> dict[str, Any]:
    return json_object(await request.body())


def json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # NaN / Infinity literals (Python's json.dumps writes them) and numbers beyond float64
        # are not JSON, but the client's mistake is a value: parse them so that the finiteness
        # checks answer 422 naming the field. Only this error path pays for the slow parser.
        try:
            data = json.loads(body)
            # json accepts lone UTF-16 surrogates ("\ud800"), which are no text: they could
            # not be written back (e.g. in an error naming the model) and would give a 500.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
            data = None
        if not isinstance(data, dict):
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def validate(schema: type[R], data: dict[str, Any], what: str) -> R:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise invalid_fields(list(exc.errors()), what) from None


async def read_uploads(request: Request, max_files: int) -> list[tuple[str, bytes]]:
    """The files of a multipart body; text fields are refused (options go in the query)."""
    _, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest(
            "the multipart body has no boundary; send Content-Type: multipart/form-data; "
            "boundary=... (HTTP clients add it when given files)"
        )
    # A body cut short of its closing delimiter: starlette would drop the last, unfinished file
    # part without closing its temporary file. The body is bounded by AESERVE_MAX_BODY_BYTES.
    if b"--" + boundary + b"--" not in await request.body():
        raise BadRequest(
            "the multipart body is truncated: it lacks the closing boundary; send the whole body"
        )
    try:
        form = await request.form(max_files=max_files, max_fields=max_files)
    except (HTTPException, MultiPartException) as exc:
        # Starlette raises HTTPException(400) inside an app: map it here, so that every caller
        # (FastAPI's router or the fast path, which handles only ServiceError) gives a 4xx.
        message = str(getattr(exc, "detail", None) or getattr(exc, "message", exc))
        if message.startswith("Too many"):
            raise InvalidInput(
                f"{message} Send at most {max_files} images per request (AESERVE_MAX_BATCH)"
            ) from None
        raise BadRequest(
            f"the multipart body is malformed: {message} Send multipart/form-data with a "
            "boundary and one file part per image (field name 'files')"
        ) from None
    try:
        uploads: list[tuple[str, bytes]] = []
        for field, value in form.multi_items():
            if not isinstance(value, UploadFile):
                raise InvalidInput(
                    f"form field '{field}' is not a file; upload images as files and pass "
                    "options as query parameters (?model=...)"
                )
            uploads.append((value.filename or field, await value.read()))
    finally:
        await form.close()
    if not uploads:
        raise InvalidInput("the multipart body holds no files; upload one or more PNG/JPEG images")
    return uploads


# -- JSON arrays ---------------------------------------------------------------------------


def array_from_json(value: Any, what: str) -> F32:
    """Nested JSON numbers (or a decoded .npy array) -> float32 ndarray, in one numpy call."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InvalidInput(f"{what} must be a numeric array, got dtype {value.dtype}")
        with np.errstate(over="ignore"):
            cast: F32 = value.astype(np.float32, copy=False)
        return cast
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be an array of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{what} is ragged or mixes arrays and numbers; every sample must have the same shape"
        ) from None
    if arr.dtype.kind not in "iuf":
        raise InvalidInput(
            f"{what} must contain only numbers (found strings, booleans, nulls or objects)"
        )
    with np.errstate(over="ignore"):  # beyond float32 range -> inf, reported as non-finite
        out: F32 = arr.astype(np.float32)
    return out


def records_to_array(runtime: ModelRuntime, records: Any) -> F32:
    """Tabular records (objects keyed by feature name, raw values) -> [N, n_features]."""
    features = runtime.features
    if features is None:
        raise UnsupportedOperation(
            f"model '{runtime.name}' takes {runtime.kind} inputs; records are for tabular models"
        )
    if not isinstance(records, list):
        raise InvalidInput("records must be an array of objects keyed by feature name")
    runtime.check_batch(len(records), "records")
    rows = record_rows(runtime, records)
    if rows is not None:
        try:
            out = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the per-value loop makes it inf
            pass
        else:
            return to_float32(out)
    return _records_one_by_one(runtime, features, records)


def record_rows(runtime: ModelRuntime, records: list[Any]) -> list[list[Any]] | None:
    """The common case in one pass: every record has exactly the features, every value is a
    number (bool is not: type() is exact); the rows in feature order. None for anything else
    (then :func:`records_to_array`'s checks name the problem)."""
    keys, features = runtime.feature_set, runtime.features or []
    rows = []
    for record in records:
        if type(record) is not dict or record.keys() != keys:
            return None
        row = [record[f] for f in features]
        if not _NUMBERS.issuperset(map(type, row)):
            return None
        rows.append(row)
    return rows


_NUMBERS = frozenset((int, float))


def _records_one_by_one(runtime: ModelRuntime, features: list[str], records: list[Any]) -> F32:
    index = {name: i for i, name in enumerate(features)}
    out = np.empty((len(records), len(features)), dtype=np.float64)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"records[{i}] must be an object keyed by feature name")
        unknown = [k for k in record if k not in index]
        if unknown:
            raise InvalidInput(
                f"records[{i}] has unknown feature(s) {unknown}; model '{runtime.name}' "
                f"expects {features}"
            )
        missing = [f for f in features if f not in record]
        if missing:
            raise InvalidInput(f"records[{i}] is missing feature(s) {missing}")
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"records[{i}].{key} must be a number, got {value!r:.40}")
            try:
                out[i, index[key]] = value
            except OverflowError:  # an integer beyond float64: reported as non-finite later
                out[i, index[key]] = np.inf
    return to_float32(out)


def to_float32(out: npt.NDArray[np.float64]) -> F32:
    with np.errstate(over="ignore"):  # beyond float32 -> inf, reported as non-finite
        result: F32 = out.astype(np.float32)
    return result


# -- images --------------------------------------------------------------------------------


def images_from_base64(runtime: ModelRuntime, images: list[str], resize: bool) -> F32:
    """Base64 PNG/JPEG strings -> wire values [N, H, W] in the model's input range."""
    blobs = []
    runtime.check_batch(len(images), "images")
    for i, text in enumerate(images):
        # A browser's data URL (canvas.toDataURL(), FileReader) carries its base64 after a comma.
        if text.startswith("data:"):
            head, _, text = text.partition(",")
            if not head.endswith(";base64"):
                raise InvalidInput(f"images[{i}] is a data URL without ';base64'")
        try:
            blobs.append((f"images[{i}]", base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise InvalidInput(f"images[{i}] is not valid base64") from None
    return images_to_array(runtime, blobs, resize)


def images_to_array(runtime: ModelRuntime, blobs: list[tuple[str, bytes]], resize: bool) -> F32:
    """Encoded images (name, bytes) -> wire values [N, H, W] in the model's input range."""
    if runtime.kind != "image" or len(runtime.shape) != 2:
        raise UnsupportedOperation(
            f"model '{runtime.name}' takes {runtime.kind} inputs of shape "
            f"{list(runtime.shape)}; images are for grayscale [H, W] image models"
        )
    runtime.check_batch(len(blobs), "images")
    height, width = runtime.shape
    pixels = np.empty((len(blobs), height, width), dtype=np.uint8)
    for i, (name, data) in enumerate(blobs):
        pixels[i] = decode_image(name, data, (height, width), resize, runtime.name)
    return runtime.from_pixels(pixels)


def decode_image(
    name: str, data: bytes, shape: tuple[int, int], resize: bool, model: str
) -> npt.NDArray[np.uint8]:
    """One PNG/JPEG -> uint8 grayscale [H, W] (resized when asked)."""
    height, width = shape
    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in IMAGE_FORMATS:
            raise InvalidInput(f"{name} is a {img.format} image; send PNG or JPEG")
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise InvalidInput(f"{name} is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS} are accepted")
        if (w, h) != (width, height) and not resize:
            raise InvalidInput(
                f"{name} is {w}x{h} pixels (width x height); model '{model}' expects "
                f"{width}x{height}; send that size or pass resize=true"
            )
        gray = img.convert("L")
        if gray.size != (width, height):
            gray = gray.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(gray, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(f"{name} is not a readable PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt image data
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"{name} is not a readable PNG or JPEG image: {exc}") from None


def png_base64(pixels: npt.NDArray[np.uint8]) -> list[str]:
    """uint8 [N, H, W] -> base64 PNG strings."""
    out = []
    for image in pixels:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
        out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


# -- request inputs and outputs --------------------------------------------------------------


def wire_inputs(parsed: ParsedRequest[Any]) -> F32:
    """The one input form of a request (inputs | images | records | uploads) as an ndarray."""
    runtime, options = parsed.runtime, parsed.options
    if parsed.uploads is not None:
        return images_to_array(runtime, parsed.uploads, options.resize)
    given = [k for k in ("inputs", "images", "records") if getattr(options, k) is not None]
    if len(given) != 1:
        raise InvalidInput(
            "send exactly one of 'inputs', 'images' or 'records'"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if given[0] == "images":
        return images_from_base64(runtime, options.images, options.resize)
    if given[0] == "records":
        return records_to_array(runtime, options.records)
    return array_from_json(options.inputs, "inputs")


def check_output_options(runtime: ModelRuntime, options: Any) -> None:
    """Refuse output options the model cannot honour, before running it."""
    if option(options, "binarize", False) and not runtime.binary:
        raise UnsupportedOperation(
            f"binarize is only for binary models; model '{runtime.name}' is not binary"
        )
    if option(options, "output_format", "array") == "png" and not runtime.png:
        raise UnsupportedOperation(
            f"output_format 'png' needs a grayscale [H, W] image model; model '{runtime.name}' "
            f"takes {runtime.kind} inputs of shape {list(runtime.shape)}"
        )


def encode_outputs(runtime: ModelRuntime, outputs: F32, options: Any) -> Any:
    """Wire outputs as asked: floats, 0/1 (binarize), or base64 PNG."""
    binarize = option(options, "binarize", False)
    result: Any = runtime.binarize(outputs) if binarize else outputs
    if option(options, "output_format", "array") == "png":
        pixels = result * np.uint8(255) if binarize else runtime.to_pixels(result)
        return png_base64(pixels)
    return result


async def wire_inputs_async(parsed: ParsedRequest[Any]) -> F32:
    """:func:`wire_inputs`, in the thread pool for large JSON bodies and uploads (PNG decoding);
    a .npy body is already an array (no hop)."""
    inputs = option(parsed.options, "inputs")
    if parsed.uploads is not None or (parsed.size > LARGE_BODY and isinstance(inputs, list)):
        return await run_in_threadpool(wire_inputs, parsed)
    return wire_inputs(parsed)


Work = Callable[[], dict[str, Any]] | Callable[[], Awaitable[dict[str, Any]]]


async def respond(parsed: ParsedRequest[Any], work: Work) -> Response:
    """Run a request's work and write the answer (JSON, or .npy when the client accepts it).

    ``work`` is either async (it awaits the runtime's ``*_async`` operations, whose ONNX calls
    go to the batching worker) or a plain function, run in the thread pool.
    """
    runtime = parsed.runtime
    check_output_options(runtime, parsed.options)
    if parsed.npy and option(parsed.options, "output_format", "array") == "png":
        raise UnsupportedOperation("output_format 'png' cannot be sent as .npy; ask for JSON")
    if inspect.iscoroutinefunction(work):
        fields: dict[str, Any] = await work()
    else:
        fields = await run_in_threadpool(work)  # type: ignore[arg-type]
    if parsed.npy:
        return npy_response({"model": runtime.name, "version": runtime.version}, fields)
    return Response(await json_answer(runtime, fields), media_type=JSON)


async def json_answer(runtime: ModelRuntime, fields: dict[str, Any]) -> bytes:
    """The JSON answer: ``model``, ``version``, then ``fields`` (large ones written in a
    thread)."""
    body = {"model": runtime.name, "version": runtime.version, **fields}
    if sum(v.size for v in fields.values() if isinstance(v, np.ndarray)) > LARGE_ANSWER:
        data: bytes = await run_in_threadpool(orjson.dumps, body, None, orjson.OPT_SERIALIZE_NUMPY)
        return data
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


# -- .npy ----------------------------------------------------------------------------------

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


def decode_npy(body: bytes) -> npt.NDArray[Any]:
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


def npy_response(head: dict[str, Any], fields: dict[str, Any]) -> Response:
    """Per-sample arrays (leading axis N) as fields of one structured .npy; the rest in headers.

    ``np.load(io.BytesIO(body))["outputs"]`` is then the [N, *shape] outputs.
    """
    headers = {"x-model": head["model"], "x-model-version": head["version"]}
    columns: dict[str, npt.NDArray[Any]] = {}
    for key, value in fields.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            columns[key] = value
        elif value is not None:
            headers[f"x-{key.replace('_', '-')}"] = str(value)
    n = next(iter(columns.values())).shape[0]
    dtype = np.dtype([(k, v.dtype, v.shape[1:]) for k, v in columns.items()])
    # The .npy file is built in one buffer: the header, then the table filled in place (one
    # copy of each column; a table then a file would copy every byte twice). Every byte is
    # written, so the buffer need not be zeroed first.
    prefix = _npy_table_header(dtype, n)
    buf = np.empty(len(prefix) + n * dtype.itemsize, dtype=np.uint8)
    buf[: len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    table = np.frombuffer(buf, dtype=dtype, count=n, offset=len(prefix))
    for key, value in columns.items():
        table[key] = value
    return Response(buf.data, media_type=NPY, headers=headers)


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
