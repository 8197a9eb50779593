"""The REST inference routes, one per operation of the registry: ``POST /{operation}``.

Each route reads the request (JSON, .npy or multipart uploads), asks the data plane for a job,
awaits its answer and writes it (JSON, or .npy when the client accepts it). The routes are plain
Starlette routes (no dependency solving per request); OpenAPI documents them from the
registry's schemas (``service/http/openapi.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.codecs.arrays import LARGE_BODY
from service.dataplane.operations import OPERATIONS, Fields, Job, Operation
from service.dataplane.plane import DataPlane
from service.http.requests import read_request
from service.http.responses import JSON, json_answer, npy_response
from service.http.tracing import Tracing
from service.metrics import ENDPOINT_KEY
from service.runtime.errors import UnsupportedOperation


def path_of(op: Operation) -> str:
    """The REST path of an operation."""
    return f"/{op.name}"


def routes() -> list[Route]:
    """``POST /{name}`` for every registered operation."""
    return [Route(path_of(op), _endpoint(op), methods=["POST"], name=op.name) for op in OPERATIONS]


def _endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    path = path_of(op)

    async def endpoint(request: Request) -> Response:
        tracing: Tracing | None = request.app.state.tracing
        if tracing is not None:
            return await traced(request, tracing)
        return await serve(request)

    async def traced(request: Request, tracing: Tracing) -> Response:
        """:func:`serve` with the parse, queue wait, inference and encode spans."""
        with tracing.step("parse"):
            request.scope[ENDPOINT_KEY] = path
            plane: DataPlane = request.app.state.plane
            job, npy = await prepared(request, plane)
        try:
            fields = await plane.run(job)
        finally:
            tracing.job(job)
        with tracing.step("encode"):
            return await answer(job, fields, npy)

    async def serve(request: Request) -> Response:
        request.scope[ENDPOINT_KEY] = path
        plane: DataPlane = request.app.state.plane
        job, npy = await prepared(request, plane)
        return await answer(job, await plane.run(job), npy)

    async def prepared(request: Request, plane: DataPlane) -> tuple[Job, bool]:
        """The request read and checked, as a job; and whether to answer .npy."""
        parsed = await read_request(request, op, plane.repository)
        runtime, options = parsed.runtime, parsed.options
        # Image decoding (uploads or base64 images, whatever the body's size: a few KB of PNG
        # can declare millions of pixels) and large JSON bodies (their numbers become an array
        # here) are converted in the thread pool. A .npy body is an array already: checking
        # its shape costs microseconds, less than the hand-off to a thread and back.
        if (
            parsed.uploads is not None
            or (parsed.size > LARGE_BODY and not parsed.binary)
            or options.__dict__.get("images") is not None
        ):
            job = await run_in_threadpool(
                plane.prepare, op, runtime, options, uploads=parsed.uploads
            )
        else:
            job = plane.prepare(op, runtime, options)
        if parsed.npy and options.__dict__.get("output_format") == "png":
            raise UnsupportedOperation("output_format 'png' cannot be sent as .npy; ask for JSON")
        return job, parsed.npy

    async def answer(job: Job, fields: Fields, npy: bool) -> Response:
        if npy:
            return npy_response(job.runtime, fields)
        return Response(await json_answer(job.runtime, fields), media_type=JSON)

    endpoint.__name__ = op.name.replace("-", "_")
    endpoint.__doc__ = op.summary
    return endpoint
