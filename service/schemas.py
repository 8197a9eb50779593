"""Request and response models, named by role.

Requests are validated with these models, except the large numeric arrays (``inputs``,
``latents``, ``records``): those fields are typed ``Any`` with a documented JSON schema, so
pydantic passes them through untouched and the codecs turn them into numpy in one go
(validating ``list[list[float]]`` number by number costs ~8x in throughput). Responses are
serialised with orjson; the response models here document them in OpenAPI.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema

NumberArray = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {},
            "description": "nested numbers [N, *input.shape] or flattened rows [N, prod(shape)]",
        }
    ),
]
LatentArray = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}},
            "description": "latent codes [N, latent.dim]",
        }
    ),
]
RecordArray = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "object", "additionalProperties": {"type": "number"}},
            "description": "tabular models: one object per sample, raw values by feature name",
        }
    ),
]
OutputArray = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {},
            "description": "[N, *input.shape] numbers (0/1 when binarize), or N base64 PNG "
            "strings when output_format is 'png'",
        }
    ),
]

# The glyph 'a' of the shipped font models (7 rows x 5 columns), used in the examples.
GLYPH = [
    [0, 0, 0, 0, 0],
    [0, 1, 1, 1, 0],
    [0, 0, 0, 0, 1],
    [0, 1, 1, 0, 1],
    [1, 0, 0, 1, 1],
    [1, 0, 0, 1, 1],
    [0, 1, 1, 0, 1],
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="model name (see GET /models); default: the configured default model"
    )


class _Inputs(_Request):
    inputs: NumberArray | None = Field(None, description="numeric inputs (tabular: raw values)")
    images: list[str] | None = Field(
        None, description="image models: base64 PNG or JPEG, decoded to grayscale"
    )
    records: RecordArray | None = None
    resize: bool = Field(False, description="resize images to the model's size instead of a 422")


class _Outputs(BaseModel):
    output_format: Literal["array", "png"] = Field(
        "array", description="'png': image outputs as base64 PNG strings"
    )
    binarize: bool = Field(False, description="binary models: threshold outputs to 0/1")


class EncodeRequest(_Inputs):
    return_logvar: bool = Field(False, description="VAEs: also return the log-variance")


class DecodeRequest(_Request, _Outputs):
    latents: LatentArray


class ReconstructRequest(_Inputs, _Outputs):
    pass


class DenoiseRequest(_Inputs, _Outputs):
    pass


class AnomalyScoreRequest(_Inputs):
    threshold: float | None = Field(
        None, allow_inf_nan=False, description="overrides the manifest's threshold"
    )
    # Tabular models (issue 5): ids echoed per row, and how many top features each row explains.
    ids: list[StrictStr | StrictInt] | None = Field(
        None,
        description="tabular models: one id (string or integer) per row of 'inputs', returned "
        "unchanged in 'results'; with 'records', put an 'id' key in each record instead",
    )
    top_features: int | None = Field(
        None,
        ge=0,
        description="tabular models: how many features with the largest contributions each "
        "result lists (default 3; at most the number of features)",
    )


class SampleRequest(_Request, _Outputs):
    n: int = Field(1, ge=1, description="how many samples (at most AESERVE_MAX_SAMPLES)")
    seed: int | None = Field(
        None, ge=0, lt=2**63, description="same seed, same samples; omitted: a random seed"
    )
    scale: float = Field(
        1.0, gt=0, le=10, allow_inf_nan=False, description="scales the prior's spread"
    )


# -- responses (documentation; bodies are written by orjson) ------------------------------


class _Response(BaseModel):
    model: str
    version: str


class EncodeResponse(_Response):
    latents: list[list[float]]
    logvar: list[list[float]] | None = None


class DecodeResponse(_Response):
    outputs: OutputArray


class ReconstructResponse(_Response):
    outputs: OutputArray
    scores: list[float] = Field(description="per-sample score (the manifest's score.kind)")


class DenoiseResponse(_Response):
    outputs: OutputArray


class SampleResponse(_Response):
    seed: int = Field(description="the seed used; pass it again for the same samples")
    latents: list[list[float]]
    outputs: OutputArray


class FeatureContribution(BaseModel):
    feature: str
    contribution: float = Field(
        description="this feature's part of the score: its squared reconstruction error in the "
        "standardised space / n_features; over all features these sum to the score"
    )
    share: float = Field(description="contribution / score: the fraction of the score (0-1)")
    value: float = Field(description="the raw value sent")
    reconstruction: float = Field(description="the model's reconstruction, in raw units")


class TabularResult(BaseModel):
    id: str | int | None = Field(description="the row's id as sent (null when none was sent)")
    score: float = Field(description="mean squared error over the standardised features")
    percentile: float = Field(description="rank among held-out normal scores, percent (0-100)")
    threshold: float
    is_anomaly: bool = Field(description="score > threshold")
    contributions: list[FeatureContribution] = Field(
        description="the top_features largest contributions, largest first"
    )


class AnomalyScoreResponse(_Response):
    scores: list[float]
    threshold: float
    is_anomaly: list[bool] = Field(description="score > threshold")
    percentiles: list[float] = Field(
        description="rank of each score among the calibration scores, in percent (0-100)"
    )
    results: list[TabularResult] | None = Field(
        None,
        description="tabular models only: one result per row, with its id and the top "
        "contributing features",
    )


class HealthResponse(BaseModel):
    status: Literal["ok"]


class FailedModel(BaseModel):
    name: str
    reason: str


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    models: list[str]
    failed: list[FailedModel]


class InputInfo(BaseModel):
    kind: str
    shape: list[int]
    range: tuple[float, float] | None
    binary: bool
    features: list[str] | None = None


class TrainingSummary(BaseModel):
    dataset: str
    seed: int
    epochs: int
    duration_s: float
    denoising: dict[str, Any] | None
    regularizer: dict[str, Any] | None
    final_loss: float | None
    command: str


class ModelSummary(BaseModel):
    name: str
    version: str
    description: str
    family: str
    input: InputInfo
    latent_dim: int
    prior: str
    denoiser: bool
    endpoints: list[str]
    score: dict[str, Any] = Field(description="kind, threshold and threshold_rule")
    metrics: dict[str, Any]
    training: TrainingSummary
    card: str | None = Field(
        description="URL of the model card (markdown; HTML for browsers), if any"
    )
    reference: str | None = Field(
        None, description="URL of the model's reference set (codes for the latent map), if any"
    )
    plots: list[str] = Field(description="URLs of the card's plots")


class ModelList(BaseModel):
    default: str | None
    models: list[ModelSummary]
    failed: list[FailedModel]


class ModelDetail(ModelSummary):
    manifest: dict[str, Any] = Field(description="the full model.json")


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
    "resize": ("boolean", "multipart uploads: resize images to the model's size"),
    "output_format": ("string", "multipart and .npy bodies: 'array' or 'png'"),
    "binarize": ("boolean", "multipart and .npy bodies: threshold binary outputs to 0/1"),
    "return_logvar": ("boolean", "multipart and .npy bodies to /encode: also return logvar"),
    "threshold": ("number", "multipart and .npy bodies to /anomaly-score: threshold override"),
}


def npy_field(model: type[BaseModel]) -> str | None:
    """The field an ``application/x-npy`` body carries for ``model`` (None: no .npy body)."""
    return next((f for f in ("inputs", "latents") if f in model.model_fields), None)


def request_body(
    model: type[BaseModel], example: dict[str, Any], *, multipart: bool = False
) -> dict[str, Any]:
    """``openapi_extra`` documenting a body the route reads itself: JSON, multipart (if
    ``multipart``), and one .npy array for schemas with ``inputs`` or ``latents`` (as
    ``codecs.read_request`` decides)."""
    content: dict[str, Any] = {
        "application/json": {"schema": model.model_json_schema(), "example": example}
    }
    extra: dict[str, Any] = {"requestBody": {"required": True, "content": content}}
    fields = model.model_fields
    npy = npy_field(model)
    if npy is not None:
        content["application/x-npy"] = {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": f"'{npy}' as one NumPy .npy array (options in the query)",
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
            }
        }
    if multipart or npy is not None:
        extra["parameters"] = [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": kind},
                "description": text,
            }
            for name, (kind, text) in _QUERY_OPTIONS.items()
            if name in fields
        ]
    return extra
