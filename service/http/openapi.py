"""OpenAPI documentation of the operations and errors (the routes read their bodies themselves)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from service.dataplane.operations import OPERATIONS


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
    }


PROBLEM_RESPONSES: dict[int, dict[str, Any]] = {
    400: _problem("Malformed request (e.g. invalid JSON)"),
    404: _problem("Unknown model; the detail lists the loaded ones"),
    413: _problem("Body larger than AESERVE_MAX_BODY_BYTES"),
    415: _problem("Unsupported media type"),
    422: _problem("Invalid input: shape, non-finite numbers, value range, limits, ..."),
    503: _problem("Models are still loading"),
}


def responses(model: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=``: the 200 body plus the problem documents the endpoint can give."""
    out: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    for code in codes or (400, 404, 413, 415, 422, 503):
        out[code] = PROBLEM_RESPONSES[code]
    return out


_QUERY_OPTIONS = {
    "model": ("string", "multipart and .npy bodies: the model name"),
    "version": ("string", "multipart and .npy bodies: pin one loaded version of the model"),
    "resize": ("boolean", "multipart uploads: resize images to the model's size"),
    "output_format": ("string", "multipart and .npy bodies: 'array' or 'png'"),
    "binarize": ("boolean", "multipart and .npy bodies: threshold binary outputs to 0/1"),
    "return_logvar": ("boolean", "multipart and .npy bodies to /encode: also return logvar"),
    "threshold": ("number", "multipart and .npy bodies to /anomaly-score: threshold override"),
}


def request_body(
    model: type[BaseModel], example: dict[str, Any], *, multipart: bool = False
) -> dict[str, Any]:
    """``openapi_extra`` documenting a body the route reads itself: JSON; one .npy array for
    schemas with ``inputs`` or ``latents``; multipart images (if ``multipart``).

    The options of a .npy body or an upload go in the query string. OpenAPI cannot tie
    parameters to one content type, and a JSON body refuses a query (its options are in the
    body), so they are described on those content types rather than listed as parameters."""
    content: dict[str, Any] = {
        "application/json": {"schema": model.model_json_schema(), "example": example}
    }
    extra: dict[str, Any] = {"requestBody": {"required": True, "content": content}}
    fields = model.model_fields
    options = "; ".join(
        f"`{name}` ({kind}): {text.split(': ', 1)[1]}"
        for name, (kind, text) in _QUERY_OPTIONS.items()
        if name in fields
    )
    npy = next((f for f in ("inputs", "latents") if f in fields), None)
    if npy is not None:
        content["application/x-npy"] = {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": f"'{npy}' as one NumPy .npy array; options in the query "
                f"string: {options}",
            }
        }
    if multipart:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "one or more PNG/JPEG images",
                    }
                },
                "required": ["files"],
            },
            "description": f"Images as files; options in the query string: {options}. A JSON "
            "body takes no query parameters.",
        }
    return extra


def operation_routes() -> list[APIRoute]:
    """Documentation-only routes of the registry's operations (never mounted: the served
    routes are ``service/http/routes/inference.py``'s)."""
    out = []
    for op in OPERATIONS:

        async def documented(request: Request) -> Response:  # pragma: no cover (never served)
            raise NotImplementedError

        documented.__name__ = op.name.replace("-", "_")
        out.append(
            APIRoute(
                f"/{op.name}",
                documented,
                methods=["POST"],
                tags=["inference"],
                summary=op.name.replace("-", " ").capitalize(),
                description=op.summary,
                openapi_extra=request_body(op.options, op.example, multipart=op.uploads),
                responses=responses(op.answer),
            )
        )
    return out


def document(app: FastAPI) -> None:
    """OpenAPI for the app: its FastAPI routes plus the registry's operations."""
    documented = operation_routes()

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=[*documented, *app.routes],
            )
            # FastAPI's OpenAPI model holds bounds as floats (2**63 - 1 became 2**63): the
            # request bodies go in as pydantic wrote them.
            for op in OPERATIONS:
                post = app.openapi_schema["paths"][f"/{op.name}"]["post"]
                post["requestBody"] = request_body(op.options, op.example, multipart=op.uploads)[
                    "requestBody"
                ]
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]
