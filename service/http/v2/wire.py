"""v2 REST bodies <-> the data plane's :class:`~service.dataplane.v2.InferRequest`.

A body is JSON, or JSON followed by binary buffers (Triton's binary tensor extension); either
may be gzip- or deflate-compressed. Tensor data is decoded by ``service/codecs/tensors.py``
only; this module reads and writes the JSON around it.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.codecs import tensors
from service.codecs.arrays import json_object
from service.dataplane.v2 import InferRequest, InferResponse
from service.http.policy import too_large
from service.http.v2.schemas import IndexRequest, InferenceRequest
from service.runtime.errors import (
    BadRequest,
    InvalidInput,
    PayloadTooLarge,
    clip,
    invalid_fields,
)


@dataclass
class ReadRequest:
    """A request as read: the data plane's request and which outputs go back as binary."""

    request: InferRequest
    binary: set[str]  # outputs answered as raw bytes
    binary_default: bool  # outputs not listed (all outputs when none are listed)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body under ``Content-Encoding`` gzip or deflate, at most ``limit`` bytes (413)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(
            f"Content-Encoding '{encoding[:40]}' is not supported; send gzip or deflate"
        )
    # gzip: a gzip header; deflate: a zlib stream (as HTTP says) or, leniently, raw deflate.
    tries = [16 + zlib.MAX_WBITS] if encoding != "deflate" else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    for wbits in tries:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise PayloadTooLarge(too_large(limit) + " (after decompression)")
        if not inflater.eof:
            break
        return out
    raise BadRequest(f"the body is not valid {encoding} data; compress the whole body once")


def read(body: bytes, header_length: str | None, model: str, version: str | None) -> ReadRequest:
    """Parse a v2 inference body (blocking for large ones: call it in a thread)."""
    head, tail = tensors.split_body(body, header_length)
    try:
        parsed = InferenceRequest.model_validate(json_object(head))
    except ValidationError as exc:
        raise invalid_fields(list(exc.errors()), "request") from None
    parameters = dict(parsed.parameters)
    raw = [{"name": i.name, "parameters": i.parameters} for i in parsed.inputs]
    buffers = tensors.take_buffers(raw, tail)
    inputs: dict[str, Any] = {}
    for tensor, buffer in zip(parsed.inputs, buffers, strict=True):
        if tensor.name in inputs:
            raise InvalidInput(f"input '{tensor.name}' is given twice")
        if buffer is not None:
            inputs[tensor.name] = tensors.from_bytes(
                tensor.name, tensor.datatype, tensor.shape, buffer
            )
        elif tensor.data is None:
            raise InvalidInput(
                f"input '{tensor.name}' has no data; send 'data' or binary_data_size with the "
                "binary tensor extension"
            )
        else:
            inputs[tensor.name] = tensors.from_data(
                tensor.name, tensor.datatype, tensor.shape, tensor.data
            )
    binary_default = _flag(parameters.pop("binary_data_output", False), "binary_data_output")
    outputs = None
    binary: set[str] = set()
    if parsed.outputs is not None:
        outputs = [o.name for o in parsed.outputs]
        for o in parsed.outputs:
            if "classification" in o.parameters:
                raise InvalidInput(tensors.no_classification(o.name))
            flag = o.parameters.get("binary_data", binary_default)
            if _flag(flag, f"binary_data of output '{clip(o.name)}'"):
                binary.add(o.name)
    request = InferRequest(model, version, parsed.id, parameters, inputs, outputs)
    return ReadRequest(request, binary, binary_default)


def _flag(value: Any, what: str) -> bool:
    """A boolean parameter of the binary tensor extension."""
    if type(value) is not bool:
        raise InvalidInput(f"parameter {what} is {str(value)[:40]!r}; send true or false")
    return value


def index_request(body: bytes) -> IndexRequest:
    """``POST /v2/repository/index``'s body: none, or ``{"ready": true|false}``."""
    if not body.strip():
        return IndexRequest()
    try:
        return IndexRequest.model_validate(json_object(body))
    except ValidationError as exc:
        raise invalid_fields(list(exc.errors()), "request") from None


def write(answer: InferResponse, read: ReadRequest) -> tuple[bytes, int | None]:
    """The answer's body and, with binary outputs, its JSON header's length."""
    runtime = answer.runtime
    outputs: list[dict[str, Any]] = []
    buffers: list[bytes | memoryview] = []
    listed = read.request.outputs is not None
    for name, array in answer.outputs:
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": tensors.datatype_of(array),
            "shape": list(array.shape),
        }
        if name in read.binary or (not listed and read.binary_default):
            data = tensors.as_buffer(array)
            tensor["parameters"] = {"binary_data_size": len(data)}
            buffers.append(data)
        else:
            tensor["data"] = array.reshape(-1)
        outputs.append(tensor)
    header: dict[str, Any] = {"model_name": runtime.name, "model_version": runtime.version}
    if answer.id is not None:
        header["id"] = answer.id
    if answer.parameters:
        header["parameters"] = answer.parameters
    header["outputs"] = outputs
    return tensors.encode_body(header, buffers)


def _weight(param: str) -> float:
    """An Accept-Encoding parameter's weight (1 unless it is ``q=``; 0 when unreadable)."""
    key, _, value = param.partition("=")
    if key.strip().lower() != "q":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return 0.0


def compress(body: bytes, accept_encoding: str) -> tuple[bytes, str | None]:
    """The answer compressed as the client accepts (gzip preferred over deflate), if it asks
    (a coding with ``q=0`` is refused, as HTTP says)."""
    accepted = set()
    for part in accept_encoding.split(","):
        coding, *params = part.split(";")
        if all(_weight(p) > 0 for p in params):
            accepted.add(coding.strip().lower())
    if "gzip" in accepted:
        return gzip.compress(body, compresslevel=1), "gzip"
    if "deflate" in accepted:
        return zlib.compress(body, 1), "deflate"
    return body, None
