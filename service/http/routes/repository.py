"""Model control while the server runs: the Open Inference Protocol's repository extension.

``POST /v2/repository/models/{name}/load`` loads (or reloads) a model folder, checks every
version (manifest, sha256, ONNX, shapes) and swaps it in at once; requests in flight finish on
the version they started on; a folder that does not load changes nothing and is refused with
its reason. ``.../unload`` stops serving a model. Both need an ``admin`` API key and are off
unless one is configured. Errors follow the protocol: ``{"error": "..."}``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from service.http.deps import PlaneDep
from service.http.responses import json_response
from service.runtime.errors import ModelLoadError, ModelNotFound, NotReady

router = APIRouter(tags=["models"])


class V2Error(BaseModel):
    """An Open Inference Protocol error."""

    error: str


class LoadAnswer(BaseModel):
    name: str
    versions: list[str] = Field(description="the versions now loaded (or unloaded)")


def _doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {200: {"model": LoadAnswer}}
    for code in codes:
        out[code] = {"model": V2Error, "description": f"{code}: see the error"}
    return out


_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status_code=status)


@router.post("/v2/repository/models/{name}/load", responses=_doc(400, 401, 403, 422, 503))
async def load_model(name: str, plane: PlaneDep) -> Response:
    """Load or reload a model from its folder (admin API key)."""
    if not plane.control:
        return _error(403, "model control is off: configure an admin API key (AESERVE_API_KEYS)")
    if _NAME.fullmatch(name) is None:
        return _error(400, "a model name is lower-case letters, digits and ._-")
    try:
        versions = await plane.reload(name)
    except ModelLoadError as exc:
        return _error(422, f"model '{name}' was not loaded: {exc}")
    except NotReady as exc:
        return _error(503, exc.detail)
    return json_response({"name": name, "versions": versions})


@router.post("/v2/repository/models/{name}/unload", responses=_doc(401, 403, 404, 503))
async def unload_model(name: str, plane: PlaneDep) -> Response:
    """Stop serving a model (admin API key); requests it holds finish first."""
    if not plane.control:
        return _error(403, "model control is off: configure an admin API key (AESERVE_API_KEYS)")
    try:
        versions = await plane.unload(name)
    except ModelNotFound as exc:
        return _error(404, exc.detail)
    except NotReady as exc:
        return _error(503, exc.detail)
    return json_response({"name": name, "versions": versions})
