"""One pure-ASGI middleware for every request: request id, body size limit, metrics.

Pure ASGI (not BaseHTTPMiddleware) because it sits on the path of every request. The inference
POSTs take the lean front of service/fastpath.py instead, which uses the same pieces
(:class:`RequestIds`, :func:`limit_body`, :func:`too_large`) and the same metrics.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import REQUEST_ID_KEY, PayloadTooLarge, problem_response
from service.metrics import MODEL_KEY, Metrics

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIds:
    """``X-Request-ID`` values: the client's when it is a safe token, else a new one.

    New ids are a random per-process prefix and a counter. uuid4() per request reads
    os.urandom, which releases the GIL and can then wait on the inference thread for it.
    """

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    def __call__(self, client_id: bytes | None) -> str:
        if client_id:
            text = client_id.decode("latin-1")
            if _CLIENT_ID.match(text):
                return text
        return f"{self._prefix}{next(self._counter):016x}"


def limit_body(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises PayloadTooLarge (413) once the body passes ``limit`` bytes."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(too_large(limit))
        return message

    return limited_receive


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, as Starlette's ``Request.body()`` reads it (ClientDisconnect on
    a disconnect), and PayloadTooLarge (413) past ``limit`` bytes, without its async generator
    and per-chunk wrapper: one ``await receive()`` for a body that arrived in one piece."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body: bytes = message.get("body", b"")
            size += len(body)
            if size > limit:
                raise PayloadTooLarge(too_large(limit))
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def declared_too_large(content_length: bytes | None, limit: int) -> bool:
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


class RequestContextMiddleware:
    """Assigns ``X-Request-ID``, refuses bodies over the limit (413), records metrics, and
    answers an unhandled error with the app's 500 handler (so the 500 carries the id too)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        request_ids: RequestIds | None = None,
        handlers: Mapping[Any, Any] | None = None,
    ) -> None:
        self.app = app
        self.handlers = handlers  # the app's exception handlers: Exception -> its 500
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.request_ids = request_ids if request_ids is not None else RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = self.request_ids(headers.get(b"x-request-id"))
        scope[REQUEST_ID_KEY] = request_id
        status = 500  # unless a response starts: an unhandled error becomes a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        limit = self.max_body_bytes
        try:
            if declared_too_large(headers.get(b"content-length"), limit):
                response = problem_response(Request(scope), 413, too_large(limit))
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, limit_body(receive, limit), send_with_id)
        except Exception as exc:
            # Unhandled: answer the app's 500 here, inside the request id, then let the error
            # reach Starlette's server-error middleware (which sees a started response) and the
            # server's log.
            handler = self.handlers.get(Exception) if self.handlers is not None else None
            if status != 500 or handler is None:
                raise
            response = await handler(Request(scope), exc)
            await response(scope, receive, send_with_id)
            raise
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                endpoint, scope.get(MODEL_KEY, ""), status, time.perf_counter() - start
            )


def too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (AESERVE_MAX_BODY_BYTES); send fewer samples"
