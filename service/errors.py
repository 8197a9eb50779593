"""Domain errors that carry their HTTP status, and the ONE place that renders problem+json.

The runtime and codecs raise these without knowing about FastAPI; :func:`install_handlers`
maps them (and FastAPI's own validation errors, 404/405 and everything else) to RFC 9457
``application/problem+json`` responses.
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

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_KEY = "aeserve.request_id"


class ServiceError(Exception):
    """A client-facing error: ``status`` and a ``detail`` that says what to fix."""

    status: int = 500

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


class BadRequest(ServiceError):
    """Malformed request, e.g. a body that is not JSON."""

    status = 400


class ModelNotFound(ServiceError):
    """The named model is not loaded."""

    status = 404


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class InvalidInput(ServiceError):
    """Well-formed but unusable: wrong shape, non-finite numbers, out-of-range values, ..."""

    status = 422


class UnsupportedOperation(ServiceError):
    """The model cannot do what was asked (e.g. ``/denoise`` on a model that is no denoiser)."""

    status = 422


class NotReady(ServiceError):
    """Models are still loading (or none loaded)."""

    status = 503

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": "1"}, **extra)


class ModelLoadError(Exception):
    """A model directory could not be served; the message is the reason shown in ``/models``."""


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Render one RFC 9457 problem document."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    request_id = request.scope.get(REQUEST_ID_KEY)
    if request_id is not None:
        body["request_id"] = request_id
    body.update(extra)
    try:
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # text orjson refuses (lone surrogates, huge integers): never a 500 here
        content = json.dumps(body, default=str, ensure_ascii=True).encode("ascii")
    return Response(
        content,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def invalid_fields(errors: list[Any], what: str = "request") -> InvalidInput:
    """A 422 for pydantic errors: detail lists each bad field; ``errors`` keeps them structured."""
    cleaned = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in errors
    ]
    parts = [f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in cleaned]
    return InvalidInput(f"invalid {what}: " + "; ".join(parts), errors=cleaned)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return problem_response(request, exc.status, exc.detail, headers=exc.headers, **exc.extra)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    err = invalid_fields(list(exc.errors()))
    return problem_response(request, err.status, err.detail, **err.extra)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", ""))
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get(REQUEST_ID_KEY)
    logger.error(
        "internal error on %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return problem_response(
        request,
        500,
        f"internal error; quote request id {request_id} when reporting it",
    )


def install_handlers(app: FastAPI) -> None:
    """Route every error to problem+json."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unhandled)
