"""One pure-ASGI middleware for every request: the policy (``policy.py``) applied on the ASGI path.

Request id, admission (body limit, hooks), the body limit while streaming, metrics and the
access log; inference POSTs are counted as arrivals so that batches wait for them. Pure ASGI
(not BaseHTTPMiddleware) because it sits on the path of every request.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.dataplane.scheduler import Arrivals
from service.http.policy import ADMITTED_KEY, Policy, RequestHead, too_large
from service.http.problems import REQUEST_ID_KEY, error_response
from service.http.tracing import Tracing
from service.metrics import ENDPOINT_KEY, MODEL_KEY
from service.runtime.errors import PayloadTooLarge, ServiceError

CLIENT_CLOSED = 499  # the client closed the connection before the answer (nginx's code)


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
    a disconnect), and PayloadTooLarge (413) past ``limit`` bytes."""
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


class RequestContextMiddleware:
    """Applies the :class:`~service.http.policy.Policy` to every ASGI request and answers an
    unhandled error with the app's 500 handler (so the 500 carries the request id too)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: Policy,
        arrivals: Arrivals,
        inference_paths: Collection[str],
        handlers: Mapping[Any, Any] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.arrivals = arrivals
        self.inference_paths = frozenset(inference_paths)
        self.handlers = handlers  # the app's exception handlers: Exception -> its 500
        self.tracing = tracing  # None: no spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.tracing is not None:
            await self.traced(scope, receive, send, self.tracing)
            return
        await self.serve(scope, receive, send)

    async def traced(self, scope: Scope, receive: Receive, send: Send, tracing: Tracing) -> None:
        """:meth:`serve` inside the request's span (request id, model, status)."""
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracing.request(scope["method"], scope["path"]) as span:
            try:
                await self.serve(scope, receive, send_status)
            finally:  # the request id is the policy's, set while serving
                span.set_attribute("aeserve.request_id", scope.get(REQUEST_ID_KEY, ""))
                span.set_attribute("aeserve.model", scope.get(MODEL_KEY, ""))
                span.set_attribute("http.response.status_code", status or CLIENT_CLOSED)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply the policy to one HTTP request and run the app."""
        start = time.perf_counter()
        policy = self.policy
        admitted = scope.pop(ADMITTED_KEY, None)  # the express lane's head (or refusal)
        head: RequestHead
        if isinstance(admitted, RequestHead):
            head = admitted
        else:
            head = policy.head(scope["method"], scope["path"], scope["headers"], scope["client"])
        request_id = head.request_id
        scope[REQUEST_ID_KEY] = request_id
        arrival = (
            self.arrivals.start()
            if scope["method"] == "POST" and scope["path"] in self.inference_paths
            else None
        )
        status = 500  # unless a response starts: an unhandled error becomes a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        try:
            try:
                if isinstance(admitted, ServiceError):
                    raise admitted
                if admitted is None:
                    policy.admit(head)
            except ServiceError as exc:  # refused before routing
                await error_response(Request(scope), exc)(scope, receive, send_with_id)
                return
            await self.app(scope, limit_body(receive, policy.max_body_bytes), send_with_id)
        except ClientDisconnect:
            # The client went away mid-request: nobody to answer, and no server error (it
            # would inflate the 5xx ratio the alerts watch): counted as 499, as nginx does.
            if status == 500:
                status = CLIENT_CLOSED
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
            if arrival is not None:
                arrival.done()
            endpoint = scope.get(ENDPOINT_KEY) or getattr(scope.get("route"), "path", None)
            policy.finish(
                head,
                endpoint or "unmatched",
                scope.get(MODEL_KEY, ""),
                status,
                time.perf_counter() - start,
            )
