"""Request and response models, named by role.

Each operation of the registry (``service.dataplane.operations``) names its request and
response model here; the transports validate with them and OpenAPI documents them. Requests are
validated with these models, except the large numeric arrays (``inputs``,
``latents``, ``records``): those fields are typed ``Any`` with a documented JSON schema, so
pydantic passes them through untouched and the codecs turn them into numpy in one go
(validating ``list[list[float]]`` number by number costs ~8x in throughput). Responses are
serialised with orjson; the response models here document them in OpenAPI.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

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
            "items": {
                "type": "object",
                "additionalProperties": {"type": ["number", "string", "null"]},
            },
            "description": "tabular models: one object per sample, raw values by feature name "
            "(numbers; models with a 'tabular' manifest section, fitted on a CSV, also take "
            "category strings, numeric strings and null or empty cells as missing values)",
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


def _integral(value: Any) -> Any:
    """JSON Schema's integers include 6283.0: an integral float is that integer (requests are
    validated strictly, so a bool or a string is still refused)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# On an integer option, after its bounds (so that OpenAPI shows them as minimum/maximum): 3 and
# 3.0 are the same JSON Schema integer; true or "3" in JSON are not.
_INTEGRAL = BeforeValidator(_integral)

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

# A handwritten 7 from MNIST's test set, 28x28 (examples/digit-7.png, base64): the /classify
# example (a short string in the docs where 784 numbers were).
DIGIT_7_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAwUlEQVR42mNgGDaAEUKFpD77sfTFHeyS9xQY"
    "GBg+X4UKPuk6w8DAwMDAAuGm6l/TMnSweCzLwPDntSTDozPIOhkYGBgYBA3PmDIw/Lh1XShnGi5nBP+9KIRL"
    "Tuzl/2AokwlDMlv0/U1cGq1//rPD6fHWf7tZcclxnv1hhVNj3b9tOOW8f3+wxCUnfPffMlxyzKf/3VbGJan2"
    "758vLjn5B/+KGXF78Z8JLjnbT+iSSGFrw8Nw9wuKJAsy56LzO+ITGABpETyQcCy90wAAAABJRU5ErkJggg=="
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="model name (see GET /models); default: the configured default model"
    )
    version: str | None = Field(
        None, description="pin one loaded version of the model; default: the newest"
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
    top_features: Annotated[int, Field(ge=0), _INTEGRAL] | None = Field(
        None,
        description="tabular models: how many features with the largest contributions each "
        "result lists (default 3; at most the number of features)",
    )


GappyArray = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {},
            "description": "nested numbers [N, *input.shape] or flattened rows [N, prod(shape)]; "
            "null (or NaN in a .npy body) marks a value to fill",
        }
    ),
]
MaskArray = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {},
            "description": "[N, *input.shape] or [N, prod(shape)] of booleans or 0/1: true (1) "
            "marks a value to fill",
        }
    ),
]
MAX_ITERATIONS = 1000
MAX_NEIGHBORS = 100


class ClassifyRequest(_Inputs):
    pass


class ImputeRequest(_Inputs, _Outputs):
    inputs: GappyArray | None = Field(
        None, description="numeric inputs (tabular: raw values); null marks a value to fill"
    )
    records: RecordArray | None = Field(
        None,
        description="tabular models: one object per sample; an absent feature or null is filled",
    )
    mask: MaskArray | None = Field(
        None,
        description="which values to fill, beside nulls and NaNs (images sent as PNG need it)",
    )
    iterations: Annotated[int, Field(ge=1, le=MAX_ITERATIONS), _INTEGRAL] = Field(
        100, description="at most this many reconstructions per sample"
    )
    tolerance: float = Field(
        1e-4,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="a sample is done when no filled value moves by more than this in a step "
        "(in the model's input space: standardised units for tabular models)",
    )


class NeighborsRequest(_Inputs):
    k: Annotated[int, Field(ge=1, le=MAX_NEIGHBORS), _INTEGRAL] = Field(
        5, description="how many nearest references per input (at most the reference set's size)"
    )
    return_references: bool = Field(
        False, description="also return each neighbour's item (image or raw record)"
    )
    output_format: Literal["array", "png"] = Field(
        "array", description="'png': the references of image models as base64 PNG strings"
    )


class SampleRequest(_Request, _Outputs):
    n: Annotated[int, Field(ge=1), _INTEGRAL] = Field(
        1, description="how many samples (at most AESERVE_MAX_SAMPLES)"
    )
    seed: Annotated[int, Field(ge=0, le=2**63 - 1), _INTEGRAL] | None = Field(
        None, description="same seed, same samples; omitted: a random seed"
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


class ClassifyResponse(_Response):
    labels: list[int] = Field(description="per sample, the most probable class (its index)")
    label_names: list[str] = Field(description="per sample, that class's name")
    probabilities: list[list[float]] = Field(
        description="[N, classes] softmax of the classifier's logits, in the order of the "
        "model's classes (GET /models)"
    )


class ImputeResponse(_Response):
    outputs: OutputArray = Field(
        description="the completed inputs: values sent kept as they are, the missing ones filled"
    )
    filled: list[Any] = Field(description="[N, *input.shape] booleans: true where filled")
    filled_features: list[list[str]] | None = Field(
        None, description="tabular models: per row, the names of the features filled"
    )
    iterations: list[int] = Field(
        description="reconstructions each sample took (0: nothing to fill)"
    )
    converged: list[bool] = Field(
        description="the last step moved no filled value by more than the tolerance"
    )


class NeighborsResponse(_Response):
    split: str = Field(description="the dataset split the reference items come from")
    ids: list[list[int]] = Field(
        description="[N, k] the nearest references' ids (row numbers in that split), nearest first"
    )
    labels: list[list[int]] = Field(description="[N, k] their labels (indices into label names)")
    label_names: list[list[str]] = Field(description="[N, k] their label names")
    distances: list[list[float]] = Field(
        description="[N, k] Euclidean distances between the codes (VAE: the posterior means)"
    )
    references: list[Any] | None = Field(
        None,
        description="with return_references: [N, k, *input.shape] the items (images in the "
        "input range, raw tabular values), or [N, k] base64 PNG strings",
    )


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
    version: str = Field(description="the version that serves by default (the newest)")
    versions: list[str] = Field(description="every loaded version; a request may pin one")
    description: str
    family: str
    input: InputInfo
    latent_dim: int
    prior: str
    denoiser: bool
    classes: list[str] | None = Field(
        None, description="models with a classifier: label names in probability order"
    )
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
