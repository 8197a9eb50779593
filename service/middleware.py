"""One pure-ASGI middleware for every request: request id, body size limit, metrics.

Pure ASGI (not BaseHTTPMiddleware) because it sits on the hot path of every request.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import REQUEST_ID_KEY, PayloadTooLarge, problem_response
from service.metrics import MODEL_KEY, Metrics

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    """Assigns ``X-Request-ID``, refuses bodies over the limit (413), records metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        # Request ids: a random per-process prefix and a counter. uuid4() per request reads
        # os.urandom, which releases the GIL and can then wait on the inference thread for it.
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_counter = itertools.count(1)

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        client_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = client_id if _CLIENT_ID.match(client_id) else self._next_id()
        scope[REQUEST_ID_KEY] = request_id
        status = 500  # unless a response starts: an unhandled error becomes a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(_too_large(limit))
            return message

        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                response = problem_response(Request(scope), 413, _too_large(limit))
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, limited_receive, send_with_id)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                endpoint, scope.get(MODEL_KEY, ""), status, time.perf_counter() - start
            )


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (AESERVE_MAX_BODY_BYTES); send fewer samples"
