"""Reading an inference request over HTTP: JSON, a .npy body or multipart image uploads.

The body is read once; the options are validated with the operation's schema (in the query
string for .npy bodies and uploads) and the model is chosen. Everything after that is the data
plane's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from service.codecs.arrays import LARGE_BODY, json_object
from service.codecs.npy import NPY, decode_npy
from service.dataplane.operations import Operation
from service.metrics import MODEL_KEY
from service.runtime.errors import (
    BadRequest,
    InvalidInput,
    UnsupportedMediaType,
    invalid_fields,
)
from service.runtime.model import ModelRuntime
from service.runtime.repository import ModelRepository

JSON = "application/json"
MULTIPART = "multipart/form-data"


@dataclass
class ParsedRequest:
    """A validated request: its options, the model, and uploaded files (multipart only)."""

    options: Any
    runtime: ModelRuntime
    uploads: list[tuple[str, bytes]] | None = None
    # Accept: application/x-npy (answer as .npy), and the body's size in bytes.
    npy: bool = False
    size: int = 0
    # The inputs came as a .npy body: already an array (no per-value conversion left to do).
    binary: bool = False


def content_headers(request: Request) -> tuple[str, str]:
    """The media type and the Accept header, in one pass over the raw headers (the first of
    each, as ``request.headers.get``) without building a Headers."""
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


async def read_request(
    request: Request, op: Operation, repository: ModelRepository
) -> ParsedRequest:
    """Read the body once: JSON (options + arrays), or options in the query and the body as
    multipart images (operations taking samples) or one .npy array (inputs or latents)."""
    ctype, accept = content_headers(request)
    npy_out = NPY in accept
    schema = op.options
    npy_field = {"samples": "inputs", "latents": "latents"}.get(op.takes)
    if op.uploads and ctype == MULTIPART:
        params = dict(request.query_params)
        inline = [k for k in ("inputs", "images", "records") if k in params]
        if inline:  # the uploads are the inputs: another input form would be ignored
            raise InvalidInput(
                f"a multipart body carries the inputs as files; drop {inline} from the query"
            )
        options = validate(schema, params, "query parameters")
        runtime = select_model(request, repository, options.model, options.version)
        uploads = await read_uploads(request, runtime.max_batch)
        return ParsedRequest(options, runtime, uploads, npy=npy_out)
    if ctype == NPY and npy_field is not None:
        query: dict[str, Any] = dict(request.query_params)
        if npy_field in query:
            raise InvalidInput(f"send '{npy_field}' as the .npy body, not in the query string")
        body = await request.body()
        query[npy_field] = decode_npy(body)  # typed Any in the schema: passed through as is
        options = validate(schema, query, "query parameters")
        runtime = select_model(request, repository, options.model, options.version)
        return ParsedRequest(options, runtime, npy=npy_out, size=len(body), binary=True)
    if not is_json(ctype):
        accepted = [JSON] + ([MULTIPART] if op.uploads else []) + ([NPY] if npy_field else [])
        raise UnsupportedMediaType(
            f"content type '{ctype}' is not supported; send {' or '.join(accepted)}"
        )
    body = await request.body()
    if request.query_params:  # options go in the JSON body: a query would be ignored
        raise InvalidInput(
            f"query parameters {sorted(request.query_params)} are not read with a JSON body; "
            "put the options in the body"
        )
    if len(body) > LARGE_BODY:  # parsing and validating cost in proportion: off the loop
        options = await run_in_threadpool(_json_options, schema, body)
    else:
        options = _json_options(schema, body)
    runtime = select_model(request, repository, options.model, options.version)
    return ParsedRequest(options, runtime, npy=npy_out, size=len(body))


def _json_options(schema: Any, body: bytes) -> Any:
    # JSON has types: no coercion ("binarize": 0 and "seed": false are refused, not read).
    return validate(schema, json_object(body), "request", strict=True)


def validate(schema: Any, data: dict[str, Any], what: str, *, strict: bool = False) -> Any:
    try:
        return schema.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise invalid_fields(list(exc.errors()), what) from None


def select_model(
    request: Request, repository: ModelRepository, name: str | None, version: str | None = None
) -> ModelRuntime:
    runtime = repository.get(name, version)
    request.scope[MODEL_KEY] = runtime.name
    return runtime


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
