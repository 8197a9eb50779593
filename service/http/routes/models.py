"""What is served: GET /models, /models/{name}, the model card and its plots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, HTMLResponse, Response

from service.dataplane.plane import DataPlane
from service.dataplane.schemas import ModelDetail, ModelList
from service.http import webui
from service.http.deps import PlaneDep, RepositoryDep
from service.http.openapi import PROBLEM_RESPONSES, responses
from service.http.responses import json_response
from service.runtime.errors import ModelNotFound, clip
from service.runtime.manifest import CARD_FILE
from service.runtime.model import ModelRuntime

router = APIRouter(tags=["models"])

_PLOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.png$")


def confined(model_dir: Path, name: str) -> Path | None:
    """``model_dir/name`` if it is a regular file inside the model directory once resolved
    (a symlink out of it is not served, as ONNX files are not loaded through one)."""
    try:
        path = (model_dir / name).resolve()
        if not path.is_relative_to(model_dir.resolve()) or not path.is_file():
            return None
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte, ...
        return None
    return path


def plots_of(model_dir: Path) -> list[str]:
    """The model's plots: PNG files named as plots, confined to its directory."""
    return sorted(
        p.name
        for p in model_dir.glob("*.png")
        if _PLOT.match(p.name) and confined(model_dir, p.name) is not None
    )


def summary(runtime: ModelRuntime, plane: DataPlane) -> dict[str, Any]:
    m = runtime.manifest
    plots = plots_of(runtime.model_dir)
    card = confined(runtime.model_dir, CARD_FILE)
    return {
        "name": m.name,
        "version": m.version,
        "versions": sorted(plane.repository.versions.get(m.name, {m.version: runtime})),
        "description": m.description,
        "family": m.family,
        "input": {
            "kind": m.input.kind,
            "shape": m.input.shape,
            "range": m.input.range,
            "binary": m.input.binary,
            "features": m.input.features,
        },
        "latent_dim": m.latent.dim,
        "prior": m.latent.prior.kind,
        "denoiser": m.denoiser,
        "classes": runtime.classes,
        "endpoints": [f"/{name}" for name in plane.operations_of(runtime)],
        "score": {
            "kind": m.score.kind,
            "threshold": m.score.threshold,
            "threshold_rule": m.score.threshold_rule,
        },
        "metrics": {k: v.model_dump() for k, v in m.metrics.items()},
        "training": {
            "dataset": m.training.dataset,
            "seed": m.training.seed,
            "epochs": m.training.epochs,
            "duration_s": m.training.duration_s,
            "denoising": m.training.denoising.model_dump() if m.training.denoising else None,
            "regularizer": m.training.regularizer.model_dump() if m.training.regularizer else None,
            "final_loss": m.training.final_loss,
            "command": m.training.command,
        },
        "card": f"/models/{m.name}/card" if card is not None else None,
        "reference": (
            f"/models/{m.name}/reference" if webui.has_reference(runtime.model_dir) else None
        ),
        "plots": [f"/models/{m.name}/files/{p}" for p in plots],
    }


@router.get("/models", responses=responses(ModelList, 503))
async def list_models(repository: RepositoryDep, plane: PlaneDep) -> Response:
    """Loaded models (what each can do) and the ones refused at load, with the reason."""
    return json_response(
        {
            "default": repository.default_name,
            "models": [summary(rt, plane) for rt in repository.models.values()],
            "failed": [{"name": k, "reason": v} for k, v in repository.failed.items()],
        }
    )


@router.get("/models/{name}", responses=responses(ModelDetail, 404, 503))
async def get_model(name: str, repository: RepositoryDep, plane: PlaneDep) -> Response:
    """One model: its summary plus the full manifest."""
    runtime = repository.get(name)
    return json_response(
        {**summary(runtime, plane), "manifest": runtime.manifest.model_dump(mode="json")}
    )


@router.get(
    "/models/{name}/card",
    response_class=Response,
    responses={
        200: {
            "content": {"text/markdown": {}, "text/html": {}},
            "description": "the model card",
        },
        404: PROBLEM_RESPONSES[404],
    },
)
async def get_card(
    name: str, request: Request, repository: RepositoryDep, format: str | None = None
) -> Response:
    """The model card: markdown, or HTML for browsers (Accept: text/html, or ?format=html)."""
    path = confined(repository.get(name).model_dir, CARD_FILE)
    if path is None:
        raise ModelNotFound(f"model '{name}' has no {CARD_FILE}")
    vary = {"Vary": "Accept"}
    if webui.wants_html(request):
        page = webui.card_html(name, path.read_text(encoding="utf-8"))
        return HTMLResponse(page, headers=vary)
    return Response(path.read_bytes(), media_type="text/markdown; charset=utf-8", headers=vary)


@router.get(
    "/models/{name}/files/{filename}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "a plot of the card"},
        404: PROBLEM_RESPONSES[404],
    },
)
async def get_plot(name: str, filename: str, repository: RepositoryDep) -> Response:
    """A plot referenced by the model card (PNG files of the model directory)."""
    model_dir: Path = repository.get(name).model_dir
    path = confined(model_dir, filename) if _PLOT.match(filename) else None
    if path is None:
        raise ModelNotFound(
            f"model '{name}' has no plot '{clip(filename)}'; plots: {plots_of(model_dir)}"
        )
    return FileResponse(path, media_type="image/png")
