"""The lean request path: inference POSTs skip Starlette's and FastAPI's middleware layers.

Per request, FastAPI's machinery (its server-error, telemetry, body-limit and exception
middlewares, router matching, the dependency solver, the endpoint wrapper) costs as much as a
small model's whole inference. :class:`FastFront` is consulted by the app's own ``__call__``
(service/app.py) before any of that: for ``POST`` to an inference path it does, in one place,
what the middleware chain does for every other request (request id, body limit, metrics,
problem+json for every error through the app's exception handlers) and calls the very same route
function FastAPI would call, with the same dependencies (each one an ``async def f(request)``,
called directly). So there is one implementation of each endpoint; FastAPI keeps serving
everything else (GET, other paths, routes with richer dependencies, CORS requests when CORS is
on) and the OpenAPI docs of these routes. tests/service/test_fastpath.py checks that both paths
give identical answers, errors and metrics.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from service.batching import Arrivals
from service.errors import REQUEST_ID_KEY, problem_response
from service.metrics import MODEL_KEY, Metrics
from service.middleware import (
    RequestIds,
    declared_too_large,
    limit_body,
    read_body,
    too_large,
)

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Any], Any]  # Starlette's: returns a Response or an awaitable one


@dataclass(frozen=True)
class _Target:
    route: APIRoute
    path: str
    request_param: str
    dependencies: tuple[tuple[str, Callable[[Request], Awaitable[Any]]], ...]


class FastFront:
    """Serves ``POST`` requests for ``paths`` with their FastAPI route functions, directly."""

    def __init__(
        self,
        *,
        routes: Sequence[BaseRoute],
        paths: Sequence[str],
        handlers: Mapping[Any, Handler],
        metrics: Metrics,
        max_body_bytes: int,
        request_ids: RequestIds,
        cors: bool = False,
        arrivals: Arrivals | None = None,
    ) -> None:
        self.handlers = handlers
        # Requests started here and not yet at a batcher: batches wait for them to join.
        self.arrivals = arrivals if arrivals is not None else Arrivals()
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.request_ids = request_ids
        # With CORS on, requests that carry an Origin go through FastAPI's CORS middleware.
        self.cors = cors
        self.targets: dict[str, _Target] = {}
        for route in _api_routes(routes):
            if (
                route.path in paths
                and "POST" in (route.methods or ())
                and route.path not in self.targets
            ):
                target = _target(route)
                if target is not None:
                    self.targets[route.path] = target

    def target(self, scope: Scope) -> _Target | None:
        """The route this front serves for ``scope``, or None (then FastAPI serves it)."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        target = self.targets.get(scope["path"])
        if (
            target is not None
            and self.cors
            and any(name == b"origin" for name, _ in scope["headers"])
        ):
            return None
        return target

    async def serve(self, target: _Target, scope: Scope, receive: Receive, send: Send) -> None:
        """Request id, body limit, the route function, problem+json errors, metrics."""
        start = time.perf_counter()
        arrival = self.arrivals.start()
        client_id = length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                client_id = value
            elif name == b"content-length":
                length = value
        request_id = self.request_ids(client_id)
        scope[REQUEST_ID_KEY] = request_id
        scope["route"] = target.route  # as FastAPI's router does
        limit = self.max_body_bytes
        # A declared length (checked against the limit first) is read here in one go, and the
        # route's request.body() returns it; a chunked body is read by the route, limited.
        request = Request(scope, receive if length else limit_body(receive, limit), send)
        status = 500  # unless a response starts
        try:
            if declared_too_large(length, limit):
                # Refused before routing, labelled as the request-context middleware does.
                del scope["route"]
                response = problem_response(request, 413, too_large(limit))
            else:
                try:
                    if length:
                        request._body = await read_body(receive, limit)
                    kwargs = {}
                    for name, dep in target.dependencies:
                        kwargs[name] = await dep(request)
                    kwargs[target.request_param] = request
                    response = await target.route.endpoint(**kwargs)
                except Exception as exc:
                    response = await self._handle(request, exc)
            response.raw_headers.append((b"x-request-id", request_id.encode("latin-1")))
            status = response.status_code
            await response(scope, receive, send)
        finally:
            arrival.done()
            endpoint = target.path if "route" in scope else "unmatched"
            self.metrics.observe(
                endpoint, scope.get(MODEL_KEY, ""), status, time.perf_counter() - start
            )

    async def _handle(self, request: Request, exc: Exception) -> Response:
        """The app's handler for ``exc`` (ServiceError, HTTPException, ..., Exception: 500)."""
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                if inspect.isawaitable(response):
                    response = await response
                assert isinstance(response, Response)
                return response
        raise exc


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside routers that FastAPI keeps as included-router nodes
    (FastAPI >= 0.16x); routers included with a prefix or dependencies are left alone."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
            continue
        router = getattr(route, "original_router", None)
        context = getattr(route, "include_context", None)
        if (
            router is not None
            and not getattr(context, "prefix", "")
            and not getattr(context, "dependencies", None)
        ):
            yield from _api_routes(router.routes)


def _target(route: APIRoute) -> _Target | None:
    """The route's call plan, or None when it needs more than ``async def dep(request)``s."""
    dependant = route.dependant
    if (
        dependant.request_param_name is None
        or dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.background_tasks_param_name
        or dependant.response_param_name
    ):
        logger.debug("route %s stays on the FastAPI path", route.path)
        return None
    deps = []
    for dep in dependant.dependencies:
        simple = (
            dep.name is not None
            and dep.call is not None
            and dep.request_param_name is not None
            and not dep.dependencies
            and not (dep.path_params or dep.query_params or dep.header_params or dep.body_params)
            and inspect.iscoroutinefunction(dep.call)
        )
        if not simple:
            logger.debug("route %s stays on the FastAPI path (dependency %s)", route.path, dep.name)
            return None
        assert dep.name is not None and dep.call is not None
        deps.append((dep.name, dep.call))
    return _Target(route, route.path, dependant.request_param_name, tuple(deps))
