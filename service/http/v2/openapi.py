"""OpenAPI documentation of the v2 routes (served as plain Starlette routes)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from service.http.v2 import schemas
from service.http.v2.routes import MODEL, PREFIX, VERSION

EXAMPLE = {
    "id": "glyph-1",
    "inputs": [{"name": "x", "shape": [1, 7, 5], "datatype": "FP32", "data": [0.0] * 35}],
    "outputs": [{"name": "x_hat"}, {"name": "score"}],
}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` written in place (OpenAPI resolves ``$ref``
    from the document's root, where these definitions are not)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    schema = schemas.Error.model_json_schema()
    return {
        code: {"description": '{"error": ...}', "content": {"application/json": {"schema": schema}}}
        for code in codes
    }


def _route(
    path: str,
    method: str,
    answer: type[BaseModel] | None,
    summary: str,
    *codes: int,
    body: bool = False,
    many: bool = False,
) -> APIRoute:
    async def documented(request: Request) -> Response:  # pragma: no cover (never served)
        raise NotImplementedError

    documented.__name__ = "v2_" + "".join(c if c.isalnum() else "_" for c in path + method)
    responses: dict[int | str, dict[str, Any]] = _errors(*codes)
    if answer is not None:
        schema = _inline(answer.model_json_schema())
        if many:
            schema = {"type": "array", "items": schema}
        responses[200] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
    extra = None
    if body:
        extra = {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _inline(schemas.InferenceRequest.model_json_schema()),
                        "example": EXAMPLE,
                    }
                },
            }
        }
    return APIRoute(
        path,
        documented,
        methods=[method],
        tags=["open inference protocol v2"],
        summary=summary,
        responses=responses,
        openapi_extra=extra,
    )


def routes() -> list[APIRoute]:
    out = [
        _route(PREFIX, "GET", schemas.ServerMetadata, "Server metadata"),
        _route(PREFIX + "/health/live", "GET", schemas.Live, "Liveness"),
        _route(PREFIX + "/health/ready", "GET", schemas.Ready, "Readiness", 503),
        _route(
            PREFIX + "/repository/index",
            "POST",
            schemas.IndexEntry,
            "Repository index",
            503,
            many=True,
        ),
    ]
    for base in (MODEL, VERSION):
        out += [
            _route(base, "GET", schemas.ModelMetadata, "Model metadata", 404, 503),
            _route(base + "/ready", "GET", schemas.ModelReady, "Model readiness", 404, 503),
            _route(
                base + "/infer",
                "POST",
                schemas.InferenceResponse,
                "Inference (JSON or the binary tensor extension)",
                400,
                404,
                413,
                422,
                503,
                body=True,
            ),
        ]
    return out


def document(app: FastAPI) -> None:
    """Add the v2 paths to the app's OpenAPI document."""
    base = app.openapi
    documented = routes()

    def schema() -> dict[str, Any]:
        doc = base()
        if PREFIX + "/health/live" not in doc["paths"]:
            v2 = get_openapi(title=app.title, version=app.version, routes=documented)
            doc["paths"].update(v2["paths"])
            doc.setdefault("components", {}).setdefault("schemas", {}).update(
                v2.get("components", {}).get("schemas", {})
            )
        return doc

    app.openapi = schema  # type: ignore[method-assign]
