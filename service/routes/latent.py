"""The code space: /encode, /decode, /sample."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import codecs
from service.deps import RepositoryDep, SettingsDep
from service.errors import InvalidInput, UnsupportedOperation
from service.schemas import (
    GLYPH,
    DecodeRequest,
    DecodeResponse,
    EncodeRequest,
    EncodeResponse,
    SampleRequest,
    SampleResponse,
    request_body,
    responses,
)

router = APIRouter(tags=["inference"])


@router.post(
    "/encode",
    openapi_extra=request_body(EncodeRequest, {"model": "font", "inputs": [GLYPH]}, multipart=True),
    responses=responses(EncodeResponse),
)
async def encode(request: Request, repository: RepositoryDep) -> Response:
    """Encode inputs to latent codes (VAE: the posterior mean; ``logvar`` on request)."""
    parsed = await codecs.read_request(request, EncodeRequest, repository, multipart=True)
    runtime, options = parsed.runtime, parsed.options
    if options.return_logvar and not runtime.is_vae:
        raise UnsupportedOperation(f"return_logvar is for VAEs; model '{runtime.name}' is an AE")

    async def work() -> dict[str, Any]:
        enc = await runtime.encode_async(await codecs.wire_inputs_async(parsed))
        body: dict[str, Any] = {"latents": enc.latents}
        if options.return_logvar:
            body["logvar"] = enc.logvar
        return body

    return await codecs.respond(parsed, work)


@router.post(
    "/decode",
    openapi_extra=request_body(DecodeRequest, {"model": "font", "latents": [[0.0, 0.0]]}),
    responses=responses(DecodeResponse, 400, 404, 413, 415, 422, 503),
)
async def decode(request: Request, repository: RepositoryDep) -> Response:
    """Decode latent codes ``[N, latent.dim]`` to outputs."""
    parsed = await codecs.read_request(request, DecodeRequest, repository)
    runtime, options = parsed.runtime, parsed.options

    async def work() -> dict[str, Any]:
        latents = codecs.array_from_json(options.latents, "latents")
        outputs = await runtime.decode_async(latents)
        return {"outputs": codecs.encode_outputs(runtime, outputs, options)}

    return await codecs.respond(parsed, work)


@router.post(
    "/sample",
    openapi_extra=request_body(
        SampleRequest, {"model": "font", "n": 4, "seed": 0, "scale": 1.0, "binarize": True}
    ),
    responses=responses(SampleResponse, 400, 404, 413, 415, 422, 503),
)
async def sample(request: Request, repository: RepositoryDep, settings: SettingsDep) -> Response:
    """Draw ``n`` samples from the model's prior (VAE: N(0, I); AE: empirical Gaussian)."""
    parsed = await codecs.read_request(request, SampleRequest, repository)
    runtime, options = parsed.runtime, parsed.options
    if options.n > settings.max_samples:
        raise InvalidInput(
            f"n={options.n} is too many samples; at most {settings.max_samples} "
            "(AESERVE_MAX_SAMPLES)"
        )

    async def work() -> dict[str, Any]:
        drawn = await runtime.sample_async(options.n, options.seed, options.scale)
        return {
            "seed": drawn.seed,
            "latents": drawn.latents,
            "outputs": codecs.encode_outputs(runtime, drawn.outputs, options),
        }

    return await codecs.respond(parsed, work)
