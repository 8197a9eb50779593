"""The ONE place errors become HTTP answers: RFC 9457 ``application/problem+json``.

Domain errors (``service.runtime.errors``) carry an HTTP-neutral kind; :data:`STATUS` maps each
kind to its status here. Under ``/v2`` (the Open Inference Protocol) the same errors are written
in that protocol's shape, ``{"error": detail}``; the gRPC transport maps the kinds to its status
codes (``service/http/grpc/server.py``). FastAPI's own validation errors, Starlette's 404/405
and anything unhandled (a 500 naming the request id) are rendered the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.runtime.errors import ECHO_LIMIT, Kind, ServiceError, clip, invalid_fields

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
V2 = "/v2"  # the Open Inference Protocol's paths: errors as {"error": detail}
REQUEST_ID_KEY = "aeserve.request_id"

STATUS: Mapping[Kind, int] = {
    "malformed": 400,
    "not_found": 404,
    "too_large": 413,
    "media_type": 415,
    "invalid": 422,
    "unsupported": 422,
    "unavailable": 503,
    "unauthenticated": 401,
    "forbidden": 403,
}


def status_of(exc: ServiceError) -> int:
    """The HTTP status of a domain error."""
    return STATUS[exc.kind]


def problem_body(
    status: int, detail: str, path: str, request_id: str | None, **extra: Any
) -> bytes:
    """One RFC 9457 problem document, serialised."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "instance": clip(path, 4 * ECHO_LIMIT),  # the client's path, echoed
    }
    if request_id is not None:
        body["request_id"] = request_id
    body.update(extra)
    return _dumps(body)


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # text orjson refuses (lone surrogates, huge integers): never a 500 here
        return json.dumps(body, default=str, ensure_ascii=True).encode("ascii")


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Render one RFC 9457 problem document for ``request`` (the Open Inference Protocol's
    ``{"error": detail}`` under ``/v2``)."""
    path = request.url.path
    if path == V2 or path.startswith(V2 + "/"):
        return Response(
            _dumps({"error": detail}),
            status_code=status,
            media_type=JSON,
            headers=dict(headers or {}),
        )
    content = problem_body(
        status, detail, request.url.path, request.scope.get(REQUEST_ID_KEY), **extra
    )
    return Response(
        content, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


def error_response(request: Request, exc: ServiceError) -> Response:
    return problem_response(request, status_of(exc), exc.detail, headers=exc.headers, **exc.extra)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(request, exc)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, invalid_fields(list(exc.errors())))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", ""))
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


async def unhandled(request: Request, exc: BaseException) -> Response:
    """A 500 naming the request id, which the log line carries too."""
    request_id = request.scope.get(REQUEST_ID_KEY)
    logger.error(
        "internal error on %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return problem_response(
        request, 500, f"internal error; quote request id {request_id} when reporting it"
    )


def install_handlers(app: FastAPI) -> None:
    """Route every error to problem+json."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, unhandled)
