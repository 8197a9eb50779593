"""OpenAPI documentation of the operations and errors (the routes read their bodies themselves)."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    # One Problem schema in the components, referred to by every error response (inlined, it
    # was a third of the document: 64 copies).
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(Problem.__name__)}},
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
    """``openapi_extra`` documenting a body the route reads itself: JSON (``model``'s schema,
    by reference: :func:`components` holds it); one .npy array for schemas with ``inputs`` or
    ``latents``; multipart images (if ``multipart``).

    The options of a .npy body or an upload go in the query string. OpenAPI cannot tie
    parameters to one content type, and a JSON body refuses a query (its options are in the
    body), so they are described on those content types rather than listed as parameters."""
    content: dict[str, Any] = {
        "application/json": {"schema": _ref(model.__name__), "example": example}
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


def components() -> dict[str, Any]:
    """The schemas the documents above refer to: Problem and each operation's request body,
    as pydantic writes them (FastAPI's OpenAPI model holds bounds as floats: 2**63 - 1 would
    become 2**63)."""
    out: dict[str, Any] = {}
    models: list[type[BaseModel]] = [Problem, *(op.options for op in OPERATIONS)]
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            assert out.setdefault(name, sub) == sub, f"two schemas named {name}"
    return out


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
            schemas = app.openapi_schema.setdefault("components", {}).setdefault("schemas", {})
            for name, sub in components().items():
                assert schemas.setdefault(name, sub) == sub, f"two schemas named {name}"
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


def serve(app: FastAPI) -> None:
    """``GET /openapi.json`` (in place of FastAPI's, which serialises the document on every
    request): ``app.openapi()`` written once per root path, sent gzipped to clients that take
    it, with an ETag so that a browser's next visit to /docs or /redoc gets a 304."""
    cache: dict[str, tuple[bytes, bytes, str]] = {}

    def write(root: str) -> tuple[bytes, bytes, str]:
        doc = app.openapi()
        # Behind a proxy's path prefix, "Try it out" must send requests under it (FastAPI
        # does the same).
        if root and root not in {s.get("url") for s in doc.get("servers", [])}:
            doc = {**doc, "servers": [{"url": root}, *doc.get("servers", [])]}
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        raw = body.encode()
        etag = f'"{hashlib.sha256(raw).hexdigest()[:20]}"'
        return raw, gzip.compress(raw, compresslevel=9, mtime=0), etag

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        found = cache.get(root)
        if found is None:  # the first request: built in a thread, off the event loop
            found = cache[root] = await run_in_threadpool(write, root)
        raw, packed, etag = found
        headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            raw = packed
        return Response(raw, media_type="application/json", headers=headers)
