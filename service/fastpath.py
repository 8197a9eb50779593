"""The lean request path: inference POSTs reach their route function without FastAPI's routing.

FastAPI's per-request machinery (router matching, the exception middleware's context, the
dependency solver, the endpoint wrapper) costs tens of microseconds, as much as a small model's
whole inference. This pure-ASGI layer sits inside the request-context middleware (so request
ids, the body limit and metrics stay) and, for ``POST`` to an inference path, calls the very
same route function FastAPI would call, with the same dependencies (each one an ``async def
f(request)``, called directly). Errors go to the app's one ``ServiceError`` handler; anything
else propagates to the server-error middleware as on the FastAPI path. Everything else (GET,
other methods, other paths, routes with richer dependencies) passes through to FastAPI, which
also keeps serving the OpenAPI docs of these routes.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ServiceError

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Any], Any]  # Starlette's: returns a Response or an awaitable one


@dataclass(frozen=True)
class _Target:
    route: APIRoute
    request_param: str
    dependencies: tuple[tuple[str, Callable[[Request], Awaitable[Any]]], ...]


class FastPathMiddleware:
    """Dispatches ``POST`` requests for ``paths`` straight to their FastAPI route functions."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        paths: Sequence[str],
        handlers: Mapping[Any, Handler],
    ) -> None:
        self.app = app
        self.handlers = handlers
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.targets.get(scope["path"]) if scope["type"] == "http" else None
        if target is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = target.route  # metrics label it by route path, like FastAPI's router
        request = Request(scope, receive, send)
        try:
            kwargs = {name: await dep(request) for name, dep in target.dependencies}
            kwargs[target.request_param] = request
            response: Response = await target.route.endpoint(**kwargs)
        except ServiceError as exc:
            response = self.handlers[ServiceError](request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)


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
    return _Target(route, dependant.request_param_name, tuple(deps))
