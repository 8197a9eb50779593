"""Through the bottleneck and back: /reconstruct, /denoise, /anomaly-score."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import codecs, tabular
from service.deps import MetricsDep, RepositoryDep
from service.errors import UnsupportedOperation
from service.metrics import Metrics
from service.schemas import (
    GLYPH,
    AnomalyScoreRequest,
    AnomalyScoreResponse,
    DenoiseRequest,
    DenoiseResponse,
    ReconstructRequest,
    ReconstructResponse,
    request_body,
    responses,
)

router = APIRouter(tags=["inference"])


@router.post(
    "/reconstruct",
    openapi_extra=request_body(
        ReconstructRequest, {"model": "font", "inputs": [GLYPH], "binarize": True}, multipart=True
    ),
    responses=responses(ReconstructResponse),
)
async def reconstruct(request: Request, repository: RepositoryDep) -> Response:
    """Reconstruct inputs: ``outputs`` and per-sample ``scores`` (the manifest's score)."""
    parsed = await codecs.read_request(request, ReconstructRequest, repository, multipart=True)
    return await codecs.respond(parsed, partial(reconstruct_fields, parsed))


async def reconstruct_fields(parsed: codecs.ParsedRequest[ReconstructRequest]) -> dict[str, Any]:
    """The answer's fields after ``model`` and ``version`` (also served by service/express.py)."""
    runtime = parsed.runtime
    rec = await runtime.reconstruct_async(await codecs.wire_inputs_async(parsed))
    return {
        "outputs": codecs.encode_outputs(runtime, rec.outputs, parsed.options),
        "scores": rec.scores,
    }


@router.post(
    "/denoise",
    openapi_extra=request_body(
        DenoiseRequest,
        {"model": "font-denoise", "inputs": [GLYPH], "binarize": True},
        multipart=True,
    ),
    responses=responses(DenoiseResponse),
)
async def denoise(request: Request, repository: RepositoryDep) -> Response:
    """Clean noisy inputs; only models trained as denoisers (``training.denoising``)."""
    parsed = await codecs.read_request(request, DenoiseRequest, repository, multipart=True)
    runtime, options = parsed.runtime, parsed.options
    if not runtime.denoiser:
        able = ", ".join(repository.denoisers()) or "none is loaded"
        raise UnsupportedOperation(
            f"model '{runtime.name}' was not trained as a denoiser; models that can denoise: {able}"
        )

    async def work() -> dict[str, Any]:
        outputs = await runtime.denoise_async(await codecs.wire_inputs_async(parsed))
        return {"outputs": codecs.encode_outputs(runtime, outputs, options)}

    return await codecs.respond(parsed, work)


@router.post(
    "/anomaly-score",
    openapi_extra=request_body(
        AnomalyScoreRequest, {"model": "font", "inputs": [GLYPH]}, multipart=True
    ),
    responses=responses(AnomalyScoreResponse),
)
async def anomaly_score(
    request: Request, repository: RepositoryDep, metrics: MetricsDep
) -> Response:
    """Anomaly scores with the threshold, ``is_anomaly`` and calibration percentiles (0-100)."""
    parsed = await codecs.read_request(request, AnomalyScoreRequest, repository, multipart=True)
    tabular.check_options(parsed.runtime, parsed.options)
    return await codecs.respond(parsed, partial(anomaly_fields, parsed, metrics))


async def anomaly_fields(
    parsed: codecs.ParsedRequest[AnomalyScoreRequest], metrics: Metrics
) -> dict[str, Any]:
    """The answer's fields after ``model`` and ``version`` (also served by service/express.py).

    Tabular models add per-row results with ids and per-feature contributions
    (service/tabular.py)."""
    runtime, options = parsed.runtime, parsed.options
    if runtime.kind == "tabular":
        return await tabular.anomaly_work(parsed, metrics)()
    inputs = await codecs.wire_inputs_async(parsed)
    result = await runtime.anomaly_async(inputs, options.threshold)
    metrics.observe_anomalies(runtime.name, result.is_anomaly)
    return result.fields()
