"""The model-repository contract: one pydantic model for ``model.json``.

Training writes manifests with :meth:`Manifest.write`; the service reads them with
:meth:`Manifest.read`. A model directory holds::

    models/<name>/
      model.json      this manifest
      encoder.onnx    "x" [N, *input.shape] float32 -> "z" [N, latent.dim]  (VAE: "mu", "logvar")
      decoder.onnx    "z" [N, latent.dim] -> "x_hat" [N, *input.shape] float32
      classifier.onnx optional: "z" [N, latent.dim] -> "logits" [N, len(classes)] float32
      card.md         the model card, with the *.png plots it references

Everything here is plain data (no numpy, no torch) so both halves can import it.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Final = 1
MANIFEST_FILE = "model.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
CLASSIFIER_FILE = "classifier.onnx"
CARD_FILE = "card.md"

Family = Literal["ae", "vae"]
InputKind = Literal["image", "tabular"]
ScoreKind = Literal["mse", "bce"]
# Strings that mean "no value" in a raw tabular cell (compared stripped, case-insensitively).
DEFAULT_MISSING_VALUES: Final = ["", "NA", "N/A", "NaN", "null", "None", "?"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scaler(_Strict):
    """Per-feature standardisation the service applies to raw tabular values: (x - mean) / std."""

    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _check(self) -> Scaler:
        if len(self.mean) != len(self.std):
            raise ValueError("scaler mean and std differ in length")
        if any(not (s > 0 and math.isfinite(s)) for s in self.std):
            raise ValueError("scaler std must be finite and > 0")
        return self


class InputSpec(_Strict):
    """What one sample looks like on the wire and at the encoder's input."""

    kind: InputKind
    # Per-sample shape without the batch axis. Images are grayscale [H, W] (conv models add the
    # channel axis inside the graph); tabular inputs are [n_features].
    shape: list[int] = Field(min_length=1)
    # Valid value range of model inputs (images: [0, 1]); tabular: the standardised space is
    # unbounded, so the range is (-inf, inf) written as null.
    range: tuple[float, float] | None = (0.0, 1.0)
    # 0/1 data (font glyphs): the service can threshold outputs at 0.5.
    binary: bool = False
    # Tabular only: feature names in column order, and the scaler for raw values.
    features: list[str] | None = None
    scaler: Scaler | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @model_validator(mode="after")
    def _check(self) -> InputSpec:
        if any(d <= 0 for d in self.shape):
            raise ValueError(f"input shape must be positive, got {self.shape}")
        if self.kind == "tabular":
            if len(self.shape) != 1:
                raise ValueError("tabular input shape must be [n_features]")
            if self.features is None or len(self.features) != self.shape[0]:
                raise ValueError("tabular inputs need one feature name per column")
            if len(set(self.features)) != len(self.features):
                raise ValueError("feature names must be unique")
            if self.scaler is not None and len(self.scaler.mean) != self.shape[0]:
                raise ValueError("scaler length differs from the number of features")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"input range must be increasing, got {self.range}")
        return self


class Prior(_Strict):
    """Distribution `/sample` draws latents from.

    ``standard_normal`` for VAEs; ``empirical`` for plain autoencoders: a Gaussian with the mean
    and covariance of the training codes.
    """

    kind: Literal["standard_normal", "empirical"]
    mean: list[float] | None = None
    cov: list[list[float]] | None = None

    @model_validator(mode="after")
    def _check(self) -> Prior:
        if self.kind == "empirical" and (self.mean is None or self.cov is None):
            raise ValueError("an empirical prior needs mean and cov")
        if self.mean is not None and self.cov is not None:
            d = len(self.mean)
            if len(self.cov) != d or any(len(row) != d for row in self.cov):
                raise ValueError("prior cov must be [dim, dim]")
        return self


class LatentSpec(_Strict):
    """The code space."""

    dim: int = Field(gt=0)
    prior: Prior
    # Per-dimension bounds of the training codes (for plots and sanity checks, not enforced).
    low: list[float] | None = None
    high: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> LatentSpec:
        if self.prior.mean is not None and len(self.prior.mean) != self.dim:
            raise ValueError("prior mean length differs from latent dim")
        for bound in (self.low, self.high):
            if bound is not None and len(bound) != self.dim:
                raise ValueError("latent bounds must have one value per dimension")
        return self


class FileInfo(_Strict):
    """One ONNX file of the model and its sha256 (hex)."""

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Files(_Strict):
    encoder: FileInfo
    decoder: FileInfo
    # Optional: codes -> class logits (stacked-autoencoder classifiers); ``Manifest.classes``
    # names the logits.
    classifier: FileInfo | None = None

    def all(self) -> list[FileInfo]:
        """Every file entry present, the encoder first."""
        return [f for f in (self.encoder, self.decoder, self.classifier) if f is not None]

    @classmethod
    def hash(cls, model_dir: Path) -> Files:
        """The entries for the ONNX files as they are now in ``model_dir`` (``classifier.onnx``
        only when it exists)."""

        def info(name: str) -> FileInfo:
            return FileInfo(path=name, sha256=sha256_file(model_dir / name))

        has_classifier = (model_dir / CLASSIFIER_FILE).is_file()
        return cls(
            encoder=info(ENCODER_FILE),
            decoder=info(DECODER_FILE),
            classifier=info(CLASSIFIER_FILE) if has_classifier else None,
        )


class Calibration(_Strict):
    """Quantiles of held-out normal scores: ``values[i]`` is the ``levels[i]`` quantile.

    The percentile of a score is its rank among these, found by linear interpolation.
    """

    levels: list[float]
    values: list[float]
    n: int = Field(gt=0, description="how many held-out scores the quantiles were taken from")
    split: str = Field(description="which data the scores came from, e.g. 'validation (normal)'")

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        if len(self.levels) != len(self.values) or len(self.levels) < 2:
            raise ValueError("calibration needs >= 2 levels and one value per level")
        if any(b < a for a, b in zip(self.levels, self.levels[1:], strict=False)):
            raise ValueError("calibration levels must be non-decreasing")
        if any(b < a for a, b in zip(self.values, self.values[1:], strict=False)):
            raise ValueError("calibration values must be non-decreasing")
        if self.levels[0] < 0 or self.levels[-1] > 1:
            raise ValueError("calibration levels must lie in [0, 1]")
        return self


class ScoreSpec(_Strict):
    """The anomaly score: per-sample mean reconstruction error (``mse`` or ``bce``).

    Computed on the model's input space (tabular: the standardised space).
    """

    kind: ScoreKind
    calibration: Calibration
    threshold: float
    threshold_rule: str = Field(
        description="how the threshold was chosen, e.g. 'quantile:0.99' or 'best_f1'"
    )


class Metric(_Strict):
    """One evaluation figure and the data split it was measured on."""

    value: float
    split: str
    description: str = ""
    # Optional target it was checked against, as text (e.g. '<= 0.2').
    target: str | None = None


class Denoising(_Strict):
    kind: Literal["bitflip", "gaussian", "masking"]
    level: float = Field(description="flip probability, noise factor or masked fraction")


class Regularizer(_Strict):
    kind: Literal["l1", "kl_sparsity", "contractive"]
    weight: float
    rho: float | None = Field(default=None, description="target activation for kl_sparsity")


class TrainingInfo(_Strict):
    """How the model was made; ``command`` rebuilds it."""

    dataset: str
    seed: int
    epochs: int
    duration_s: float
    architecture: dict[str, Any]
    command: str
    recipe: str | None = None
    denoising: Denoising | None = None
    regularizer: Regularizer | None = None
    final_loss: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class TabularColumn(_Strict):
    """One raw column of a model fitted on a user's table (``aeserve fit-csv``).

    Numeric columns become one feature (plus ``<name>:missing``, 0/1, with ``indicator``);
    categorical ones one 0/1 feature ``<name>=<category>`` per known category (one-hot).
    """

    name: str = Field(min_length=1)
    kind: Literal["numeric", "categorical"]
    # Categorical: the known values (as text), in one-hot order. Any other value is refused.
    categories: list[str] | None = None
    # A missing cell (null, absent, or one of TabularSpec.missing_values): ``refuse`` it, or
    # ``impute`` it: numeric columns take ``fill``, categorical ones an all-zero one-hot row.
    missing: Literal["refuse", "impute"] = "refuse"
    fill: float | None = Field(default=None, description="numeric, impute: the value used")
    indicator: bool = Field(default=False, description="numeric: add the 0/1 feature name:missing")

    def features(self) -> list[str]:
        """The model features this column becomes, in order."""
        if self.kind == "categorical":
            return [f"{self.name}={c}" for c in self.categories or []]
        return [self.name, f"{self.name}:missing"] if self.indicator else [self.name]

    @model_validator(mode="after")
    def _check(self) -> TabularColumn:
        if self.kind == "categorical":
            if not self.categories:
                raise ValueError(f"categorical column {self.name!r} needs its categories")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"column {self.name!r} lists a category twice")
            if self.fill is not None or self.indicator:
                raise ValueError(f"fill and indicator are for numeric columns ({self.name!r})")
        else:
            if self.categories is not None:
                raise ValueError(f"numeric column {self.name!r} cannot have categories")
            if self.missing == "impute" and (self.fill is None or not math.isfinite(self.fill)):
                raise ValueError(f"numeric column {self.name!r} imputes: it needs a finite fill")
        return self


class TabularSpec(_Strict):
    """The raw columns clients send as ``records`` and how they become the model's features
    (``service.columns`` does it, for training and serving alike)."""

    columns: list[TabularColumn] = Field(min_length=1)
    # Raw strings that mean "missing" (compared stripped, case-insensitively); null and an absent
    # key are missing too.
    missing_values: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING_VALUES))

    def features(self) -> list[str]:
        return [f for column in self.columns for f in column.features()]

    @model_validator(mode="after")
    def _check(self) -> TabularSpec:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("tabular column names must be unique")
        return self


class Manifest(_Strict):
    """``model.json``: everything the service needs to serve a model, and how it was made."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=1, description="changes whenever the weights do")
    created_at: str
    description: str = ""
    family: Family
    input: InputSpec
    latent: LatentSpec
    files: Files
    score: ScoreSpec
    metrics: dict[str, Metric] = Field(default_factory=dict)
    training: TrainingInfo
    # Models fitted on a user's table: the raw columns records carry (categories, missing values).
    tabular: TabularSpec | None = None
    # Label names in logit order; present exactly when ``files.classifier`` is.
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if self.tabular is not None:
            if self.input.kind != "tabular":
                raise ValueError("a 'tabular' section needs input.kind 'tabular'")
            if self.input.features != self.tabular.features():
                raise ValueError(
                    "input.features must be the tabular columns' features, in order "
                    f"({self.tabular.features()})"
                )
        if (self.classes is None) != (self.files.classifier is None):
            raise ValueError("classes and files.classifier come together (a classifier model)")
        if self.classes is not None and (
            len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)
        ):
            raise ValueError("classes must be at least two distinct label names")
        return self

    @property
    def denoiser(self) -> bool:
        return self.training.denoising is not None

    @classmethod
    def read(cls, model_dir: Path) -> Manifest:
        return cls.model_validate_json((model_dir / MANIFEST_FILE).read_text(encoding="utf-8"))

    def write(self, model_dir: Path) -> Path:
        path = model_dir / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def content_version(encoder_sha256: str, decoder_sha256: str, *more: str) -> str:
    """The version that names a model's weights: a short hash of the files' sha256 (``more``:
    the classifier's, for models that have one; ``Files.all()`` gives them in order)."""
    return hashlib.sha256(":".join([encoder_sha256, decoder_sha256, *more]).encode()).hexdigest()[
        :12
    ]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
