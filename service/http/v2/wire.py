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
from service.http.v2.schemas import InferenceRequest
from service.runtime.errors import BadRequest, PayloadTooLarge, invalid_fields


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
    parameters = dict(parsed.parameters or {})
    raw = [{"name": i.name, "parameters": i.parameters} for i in parsed.inputs]
    buffers = tensors.take_buffers(raw, tail)
    inputs: dict[str, Any] = {}
    for tensor, buffer in zip(parsed.inputs, buffers, strict=True):
        if tensor.name in inputs:
            raise BadRequest(f"input '{tensor.name}' is given twice")
        if buffer is not None:
            inputs[tensor.name] = tensors.from_bytes(
                tensor.name, tensor.datatype, tensor.shape, buffer
            )
        elif tensor.data is None:
            raise BadRequest(
                f"input '{tensor.name}' has no data; send 'data' or binary_data_size with the "
                "binary tensor extension"
            )
        else:
            inputs[tensor.name] = tensors.from_data(
                tensor.name, tensor.datatype, tensor.shape, tensor.data
            )
    binary_default = parameters.pop("binary_data_output", False) is True
    outputs = None
    binary: set[str] = set()
    if parsed.outputs is not None:
        outputs = [o.name for o in parsed.outputs]
        for o in parsed.outputs:
            flag = (o.parameters or {}).get("binary_data", binary_default)
            if flag is True:
                binary.add(o.name)
    request = InferRequest(model, version, parsed.id, parameters, inputs, outputs)
    return ReadRequest(request, binary, binary_default)


def write(answer: InferResponse, read: ReadRequest) -> tuple[bytes, int | None]:
    """The answer's body and, with binary outputs, its JSON header's length."""
    runtime = answer.runtime
    outputs: list[dict[str, Any]] = []
    buffers: list[bytes] = []
    listed = read.request.outputs is not None
    for name, array in answer.outputs:
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": tensors.datatype_of(array),
            "shape": list(array.shape),
        }
        if name in read.binary or (not listed and read.binary_default):
            data = tensors.to_bytes(array)
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


def compress(body: bytes, accept_encoding: str) -> tuple[bytes, str | None]:
    """The answer compressed as the client accepts (gzip preferred over deflate), if it asks."""
    accepted = {part.split(";", 1)[0].strip().lower() for part in accept_encoding.split(",")}
    if "gzip" in accepted:
        return gzip.compress(body, compresslevel=1), "gzip"
    if "deflate" in accepted:
        return zlib.compress(body, 1), "deflate"
    return body, None
