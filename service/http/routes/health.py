"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.dataplane.schemas import HealthResponse, ReadyResponse
from service.http.deps import LoadStateDep, MetricsDep
from service.http.openapi import PROBLEM_RESPONSES
from service.http.responses import json_response
from service.metrics import CONTENT_TYPE
from service.runtime.errors import NotReady

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> Response:
    """Liveness: 200 while the process serves HTTP."""
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={503: PROBLEM_RESPONSES[503]},
)
async def readyz(state: LoadStateDep) -> Response:
    """Readiness: 503 until the models are loaded and the default model serves, then 200."""
    repo = state.require()
    if not repo.models:
        failed = "; ".join(f"{k}: {v}" for k, v in repo.failed.items()) or "none found"
        raise NotReady(f"no model loaded (failed: {failed})")
    if repo.default_name not in repo.models:
        reason = repo.failed.get(repo.default_name or "", "not found")
        raise NotReady(f"the default model '{repo.default_name}' is not loaded: {reason}")
    return json_response(
        {
            "status": "ready",
            "models": list(repo.models),
            "failed": [{"name": k, "reason": v} for k, v in repo.failed.items()],
        }
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency by endpoint, model and status; model counts."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)
