"""The Open Inference Protocol (v2) over REST, on the same port as the rest of the API.

A thin transport: each route reads the wire (``wire.py``: JSON, the binary tensor extension,
compression), asks the data plane (``service/dataplane/v2.py``) and writes the answer. Errors
are the domain errors of every other route, rendered by ``service/http/problems.py`` in the
protocol's ``{"error": "..."}`` shape for paths under ``/v2``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import service
from service.codecs.arrays import LARGE_BODY
from service.codecs.tensors import HEADER_LENGTH
from service.dataplane import v2
from service.dataplane.plane import DataPlane
from service.http.v2 import wire
from service.metrics import ENDPOINT_KEY, MODEL_KEY

JSON = "application/json"
OCTETS = "application/octet-stream"
PREFIX = "/v2"
EXTENSIONS = ["binary_tensor_data", "model_repository"]

Endpoint = Callable[[Request], Awaitable[Response]]


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


def _model(request: Request) -> Any:
    runtime = v2.model(
        _plane(request).repository,
        request.path_params["model"],
        request.path_params.get("version"),
    )
    request.scope[MODEL_KEY] = runtime.name
    return runtime


async def server_metadata(request: Request) -> Response:
    """Server name, version and protocol extensions."""
    return _json({"name": "aeserve", "version": service.__version__, "extensions": EXTENSIONS})


async def live(request: Request) -> Response:
    """Liveness: 200 while the process serves."""
    return _json({"live": True})


async def ready(request: Request) -> Response:
    """Readiness: 200 once the models are loaded, 503 before (KServe's readiness probe)."""
    is_ready = _plane(request).load.repository is not None
    return _json({"ready": is_ready}, 200 if is_ready else 503)


async def model_metadata(request: Request) -> Response:
    """A model's inputs and outputs."""
    runtime = _model(request)
    return _json(v2.metadata(runtime, v2.versions(_plane(request).repository, runtime.name)))


async def model_ready(request: Request) -> Response:
    """200 when the model serves (404 for an unknown one, 503 while loading)."""
    runtime = _model(request)
    return _json({"name": runtime.name, "ready": True})


async def repository_index(request: Request) -> Response:
    """Every model version of the repository: READY, or UNAVAILABLE with the reason it was
    refused; ``{"ready": true}`` (POST) keeps the READY ones."""
    rows = v2.index(_plane(request).repository)
    if request.method == "POST" and wire.index_request(await request.body()).ready:
        rows = [row for row in rows if row["state"] == "READY"]
    return _json(rows)


def _endpoint(template: str) -> Endpoint:
    async def infer(request: Request) -> Response:
        """Inference: v2 tensors in, the requested outputs' tensors out."""
        request.scope[ENDPOINT_KEY] = template
        plane = _plane(request)
        runtime = _model(request)
        headers = request.headers
        # Any Content-Type, or none, as Triton and KServe read it: the body is JSON, or JSON
        # and binary buffers (Inference-Header-Content-Length); tritonclient's sync client sends
        # no type and `curl -d` a form type.
        body = await request.body()
        encoding = headers.get("content-encoding")
        limit = request.app.state.policy.max_body_bytes
        args = (runtime.name, request.path_params.get("version"))
        # Decompressing, and parsing a large JSON part, in the thread pool; binary buffers
        # become arrays without a copy, whatever their size.
        if encoding is not None or _json_part(headers.get(HEADER_LENGTH), len(body)) > LARGE_BODY:
            read = await run_in_threadpool(_read, body, encoding, limit, headers, *args)
        else:
            read = wire.read(body, headers.get(HEADER_LENGTH), *args)
        answer = await v2.infer(plane, runtime, read.request)
        data, header_length = wire.write(answer, read)
        out_headers = {}
        if header_length is not None:
            out_headers["inference-header-content-length"] = str(header_length)
        accept = headers.get("accept-encoding")
        if accept:
            data, coding = wire.compress(data, accept)
            if coding is not None:
                out_headers["content-encoding"] = coding
        media = JSON if header_length is None else OCTETS
        return Response(data, media_type=media, headers=out_headers)

    return infer


def _json_part(header_length: str | None, size: int) -> int:
    """The size of a body's JSON part: Inference-Header-Content-Length when it is a number
    within the body (wire.read refuses it otherwise), else the whole body."""
    if header_length is not None and header_length.isdigit() and int(header_length) <= size:
        return int(header_length)
    return size


def _read(
    body: bytes, encoding: str | None, limit: int, headers: Any, model: str, version: str | None
) -> wire.ReadRequest:
    if encoding is not None:
        body = wire.decompress(body, encoding, limit)
    return wire.read(body, headers.get(HEADER_LENGTH), model, version)


MODEL = PREFIX + "/models/{model}"
VERSION = MODEL + "/versions/{version}"


def routes() -> list[Route]:
    """Every v2 route (registered before the app's other routes)."""
    out = [
        Route(PREFIX, server_metadata, methods=["GET"]),
        Route(PREFIX + "/health/live", live, methods=["GET"]),
        Route(PREFIX + "/health/ready", ready, methods=["GET"]),
        Route(PREFIX + "/repository/index", repository_index, methods=["GET", "POST"]),
    ]
    for base in (MODEL, VERSION):
        out += [
            Route(base, model_metadata, methods=["GET"]),
            Route(base + "/ready", model_ready, methods=["GET"]),
            Route(base + "/infer", _endpoint(base + "/infer"), methods=["POST"]),
        ]
    return out
