"""ModelRuntime: one served model. Owns its ONNX sessions (encoder, decoder, and the optional
classifier) and every number it touches.

Reshape, cast, scaling (tabular scaler), scoring, sampling and percentiles live here; the HTTP
layer only passes arrays in and out. Every ONNX call goes through :meth:`ModelRuntime._run`, the
single spot a batching queue or per-call metrics can wrap later.

Spaces: *wire* values are what clients send and receive (raw feature values for tabular models,
the manifest's input range for images); *model* values are what the ONNX graphs see (tabular:
standardised with the manifest's scaler). Scores are computed in model space.

The ONNX work of an operation is :meth:`ModelRuntime.infer` (``encode``, ``decode`` or
``forward`` = encode then decode, on a model-space batch); rows never influence each other, so
concatenated requests give the same rows. The data plane (``service.dataplane``) builds its
operations from the public pieces here (spaces, :meth:`~ModelRuntime.infer`, scores,
results) and decides where they run; the runtime itself never schedules anything.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from service.runtime import scoring
from service.runtime.columns import ColumnEncoder
from service.runtime.errors import InvalidInput, ModelLoadError, UnsupportedOperation
from service.runtime.impute import Imputation, impute
from service.runtime.manifest import Manifest
from service.runtime.reference import ReferenceIndex
from service.runtime.sessions import F32, F64

logger = logging.getLogger(__name__)

# Image values may exceed the manifest range by float rounding (e.g. 255/255 * 1.0).
RANGE_TOLERANCE = 1e-6
MAX_SAMPLE_SCALE = 10.0


# What :meth:`ModelRuntime.infer` can run: encoder, decoder, or both (the encoder's first output,
# the VAE mean, fed to the decoder); ``classify``: the encoder's first output fed to the
# classifier (models with ``classifier.onnx``).
Op = Literal["encode", "decode", "forward", "classify"]


@dataclass(frozen=True)
class Encoded:
    latents: F32  # [N, dim]; VAE: the posterior mean
    logvar: F32 | None  # [N, dim]; VAE only


@dataclass(frozen=True)
class Reconstruction:
    outputs: F32  # [N, *shape], wire space
    scores: F64  # [N], the manifest's score per sample


@dataclass(frozen=True)
class AnomalyResult:
    scores: F64  # [N]
    threshold: float
    is_anomaly: npt.NDArray[np.bool_]  # [N], score > threshold
    percentiles: F64  # [N], in percent (0..100) of the calibration scores

    def fields(self, rows: slice = slice(None)) -> dict[str, Any]:
        """The answer's fields for these rows (all by default): scores, threshold, flags,
        percentiles."""
        return {
            "scores": self.scores[rows],
            "threshold": self.threshold,
            "is_anomaly": self.is_anomaly[rows],
            "percentiles": self.percentiles[rows],
        }


@dataclass(frozen=True)
class Explained:
    """A tabular anomaly answer with the why: per-feature parts of each score (issue 5)."""

    result: AnomalyResult
    inputs: F32  # [N, F] raw values as received
    outputs: F32  # [N, F] raw reconstructions (wire space)
    # [N, F]: feature j's part of the score, (x_j - x_hat_j)^2 / F in the standardised space;
    # each row sums to that row's score.
    contributions: F64


@dataclass(frozen=True)
class Classified:
    labels: npt.NDArray[np.int64]  # [N], the most probable class
    label_names: list[str]  # [N], its name
    probabilities: F64  # [N, classes], softmax of the logits


@dataclass(frozen=True)
class Neighbors:
    ids: npt.NDArray[np.int64]  # [N, k], reference ids, nearest first
    labels: npt.NDArray[np.int64]  # [N, k]
    label_names: list[list[str]]  # [N, k]
    distances: F64  # [N, k]
    rows: npt.NDArray[np.int64]  # [N, k], rows of the reference set (for its items)


@dataclass(frozen=True)
class Samples:
    latents: F32  # [n, dim]
    outputs: F32  # [n, *shape], wire space
    seed: int


class ModelRuntime:
    """A loaded model: the manifest plus encoder and decoder sessions (and the classifier's,
    for models with ``classifier.onnx``)."""

    def __init__(
        self,
        manifest: Manifest,
        encoder: Any,
        decoder: Any,
        *,
        model_dir: Path,
        max_batch: int = 1024,
        classifier: Any = None,
        reference: ReferenceIndex | None = None,
    ) -> None:
        self.manifest = manifest
        self.model_dir = model_dir
        self.max_batch = max_batch
        self._encoder = encoder
        self._decoder = decoder
        self._classifier = classifier
        # Label names in logit order (models with a classifier), else None.
        self.classes: list[str] | None = (
            list(manifest.classes) if classifier is not None and manifest.classes else None
        )
        # The reference set of /neighbors (reference.npz), or None.
        self.reference = reference
        self._impute_start: F32 | None = None

        spec = manifest.input
        self.shape: tuple[int, ...] = tuple(spec.shape)
        self.size = math.prod(self.shape)
        self.latent_dim = manifest.latent.dim
        self.is_vae = manifest.family == "vae"
        self._encoder_outputs = ["mu", "logvar"] if self.is_vae else ["z"]
        self._range = spec.range
        # Tabular: feature names in column order, and as a set (records are checked against it).
        self.features: list[str] | None = list(spec.features) if spec.features is not None else None
        self.feature_set = frozenset(self.features or ())
        # Models fitted on a user's table: raw records (categories, missing cells) -> features.
        self.columns = ColumnEncoder(manifest.tabular) if manifest.tabular is not None else None
        self._mean: F32 | None = None
        self._std: F32 | None = None
        if spec.scaler is not None:
            self._mean = np.asarray(spec.scaler.mean, dtype=np.float32)
            self._std = np.asarray(spec.scaler.std, dtype=np.float32)

        # Sampling: z = mean + scale * eps @ factor.T with factor @ factor.T = cov.
        prior = manifest.latent.prior
        self._prior_mean = np.zeros(self.latent_dim)
        self._prior_factor = np.eye(self.latent_dim)
        if prior.kind == "empirical" and prior.mean is not None and prior.cov is not None:
            self._prior_mean = np.asarray(prior.mean, dtype=np.float64)
            cov = np.asarray(prior.cov, dtype=np.float64)
            # eigh instead of cholesky: a rank-deficient (PSD, not PD) covariance still works.
            w, v = np.linalg.eigh((cov + cov.T) / 2)
            self._prior_factor = v * np.sqrt(np.clip(w, 0.0, None))

        cal = manifest.score.calibration
        self._cal_levels = np.asarray(cal.levels, dtype=np.float64)
        self._cal_values = np.asarray(cal.values, dtype=np.float64)

    # -- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def kind(self) -> str:
        return self.manifest.input.kind

    @property
    def denoiser(self) -> bool:
        return self.manifest.denoiser

    @property
    def binary(self) -> bool:
        return self.manifest.input.binary

    @property
    def png(self) -> bool:
        """Outputs can be returned as PNG: grayscale [H, W] image models."""
        return self.kind == "image" and len(self.shape) == 2

    # -- the one inference call -------------------------------------------------------------

    def _run(self, session: Any, outputs: Sequence[str], feeds: dict[str, F32]) -> list[F32]:
        """Run one ONNX session. Every ONNX call goes through here."""
        result: list[F32] = session.run(list(outputs), feeds)
        return result

    def infer(self, op: Op, x: F32) -> list[F32]:
        """The ONNX work of one operation on a model-space batch ``x`` [N, ...] -> arrays [N, ...].

        ``encode``: [z] (VAE: [mu, logvar]); ``decode``: [x_hat]; ``forward``: [x_hat] from the
        encoder's first output. Row i of every output depends on row i of ``x`` only, so a batching
        queue may concatenate requests and split the rows back.
        """
        if op == "encode":
            return self._run(self._encoder, self._encoder_outputs, {"x": x})
        if op == "decode":
            return self._run(self._decoder, ["x_hat"], {"z": x})
        z = self._run(self._encoder, self._encoder_outputs[:1], {"x": x})[0]
        if op == "classify":
            if self._classifier is None:
                raise UnsupportedOperation(f"model '{self.name}' has no classifier")
            return self._run(self._classifier, ["logits"], {"z": z})
        return self._run(self._decoder, ["x_hat"], {"z": z})

    def forward_seconds(self, samples: int = 1, repeats: int = 15) -> float:
        """Shortest wall time of :meth:`infer` ``forward`` on ``samples`` mid-range samples.

        The minimum, not the median: the call's own cost, which other processes on a shared
        machine can only lengthen."""
        lo, hi = self._range or (0.0, 0.0)
        x = np.full((samples, *self.shape), (lo + hi) / 2, dtype=np.float32)
        self.infer("forward", x)  # warm-up: the first run allocates
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.infer("forward", x)
            times.append(time.perf_counter() - start)
        return min(times)

    # -- validation and spaces ----------------------------------------------------------------

    def check_batch(self, n: int, what: str) -> None:
        """At least one and at most ``max_batch`` samples."""
        if n == 0:
            raise InvalidInput(f"{what} is empty; send at least one sample")
        if n > self.max_batch:
            raise InvalidInput(
                f"{what} has {n} samples; at most {self.max_batch} are accepted per request "
                "(AESERVE_MAX_BATCH)"
            )

    def to_model_space(self, x: F32, what: str = "inputs", *, finite: bool = False) -> F32:
        """Check wire inputs ``[N, *shape]`` or ``[N, prod(shape)]`` and return model inputs.

        ``finite``: the caller has already refused non-finite values (with its own message).
        """
        return self.model_inputs(self.shaped(x, what), what, finite=finite)

    def shaped(self, x: F32, what: str = "inputs") -> F32:
        """Wire inputs ``[N, *shape]`` or ``[N, prod(shape)]`` as ``[N, *shape]``, with 1 to
        ``max_batch`` samples; InvalidInput naming the expected shape otherwise."""
        if x.ndim >= 1:
            self.check_batch(x.shape[0], what)
        if tuple(x.shape[1:]) == self.shape:
            return x
        if x.ndim == 2 and x.shape[1] == self.size:
            return x.reshape((x.shape[0], *self.shape))
        shape = list(self.shape)
        hint = ""
        if tuple(x.shape) == self.shape:
            hint = "; wrap a single sample in a list to add the batch axis"
        flat = f" or [N, {self.size}]" if len(shape) > 1 else ""
        raise InvalidInput(
            f"{what} has shape {list(x.shape)}; model '{self.name}' expects "
            f"[N, {', '.join(map(str, shape))}]{flat}{hint}"
        )

    def model_inputs(self, x: F32, what: str = "inputs", *, finite: bool = False) -> F32:
        """Wire inputs already :meth:`shaped` -> model inputs: values checked against the
        input range (or finite), tabular values standardised with the manifest's scaler.

        Row by row: a batch of requests gives each request's rows the same bits as alone."""
        if self._range is not None:
            # min and max are NaN or infinite when any value is: one check for both.
            lo, hi = self._range
            x_min, x_max = float(x.min()), float(x.max())
            if not (math.isfinite(x_min) and math.isfinite(x_max)):
                self._check_finite(x, what)
            if x_min < lo - RANGE_TOLERANCE or x_max > hi + RANGE_TOLERANCE:
                raise InvalidInput(
                    f"{what} values must lie in [{lo:g}, {hi:g}] for model '{self.name}'; "
                    f"got values from {x_min:g} to {x_max:g}"
                )
        elif not finite:
            self._check_finite(x, what)
        if self._mean is not None and self._std is not None:
            with np.errstate(over="ignore"):  # beyond float32 once standardised: refused below
                x = (x - self._mean) / self._std
            self._check_finite(x, f"{what} (standardised with the model's scaler)")
        return np.ascontiguousarray(x, dtype=np.float32)

    def to_wire_space(self, x_hat: F32) -> F32:
        """Decoder outputs to what clients see (tabular: undo the scaler).

        Outputs that are not finite (latents or inputs far outside what the model was trained
        on overflow its layers) are refused with a 422: JSON has no number for them.
        """
        if self._mean is not None and self._std is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                x_hat = x_hat * self._std + self._mean
        if not np.isfinite(x_hat).all():
            raise InvalidInput(
                f"model '{self.name}' gives non-finite outputs for these values: they lie far "
                "outside what it was trained on (send latents of the size /encode returns, "
                "or inputs of the training data's magnitude)"
            )
        return np.ascontiguousarray(x_hat, dtype=np.float32)

    @staticmethod
    def _check_finite(x: F32, what: str) -> None:
        finite = np.isfinite(x)
        if not finite.all():
            bad = np.argwhere(~finite)[0].tolist()
            raise InvalidInput(
                f"{what} contains a non-finite number (NaN, Infinity or beyond float32) at {bad}"
            )

    def check_latents(self, z: F32) -> F32:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise InvalidInput(
                f"latents has shape {list(z.shape)}; model '{self.name}' expects "
                f"[N, {self.latent_dim}]"
            )
        self.check_batch(z.shape[0], "latents")
        self._check_finite(z, "latents")
        return np.ascontiguousarray(z, dtype=np.float32)

    # -- operations (wire arrays in, wire arrays out) ---------------------------------------

    def encode(self, x: F32) -> Encoded:
        """Wire inputs -> latents (VAE: the mean, and the log-variance)."""
        return self._encode(self.to_model_space(x))

    def decode(self, z: F32) -> F32:
        """Latents [N, dim] -> wire outputs [N, *shape]."""
        return self.to_wire_space(self._decode(self.check_latents(z)))

    def reconstruct(self, x: F32) -> Reconstruction:
        """Encode (VAE: the mean), decode, score."""
        xm = self.to_model_space(x)
        return self.reconstruction(xm, self.infer("forward", xm)[0])

    def denoise(self, x: F32) -> F32:
        """Noisy wire inputs -> cleaned outputs (only meaningful for models trained to denoise)."""
        xm = self.denoise_input(x)
        return self.to_wire_space(self.infer("forward", xm)[0])

    def denoise_input(self, x: F32) -> F32:
        if not self.denoiser:
            raise UnsupportedOperation(f"model '{self.name}' was not trained as a denoiser")
        return self.to_model_space(x)

    def reconstruction(self, xm: F32, x_hat: F32) -> Reconstruction:
        return Reconstruction(self.to_wire_space(x_hat), self.scores(xm, x_hat))

    def encoded(self, out: list[F32]) -> Encoded:
        return Encoded(out[0], out[1] if self.is_vae else None)

    def _encode(self, x: F32) -> Encoded:
        return self.encoded(self.infer("encode", x))

    def _decode(self, z: F32) -> F32:
        return self.infer("decode", z)[0]

    def scores(self, x: F32, x_hat: F32) -> F64:
        """The manifest's per-sample score, in model space (:func:`scoring.scores`)."""
        return scoring.scores(x, x_hat, self.manifest.score.kind)

    def percentiles(self, scores: F64) -> F64:
        """Rank of each score among the calibration scores, in percent (0..100).

        Linear interpolation of the score into the calibration quantiles; scores outside the
        calibrated range get the lowest / highest calibrated level.
        """
        ranks: F64 = np.interp(scores, self._cal_values, self._cal_levels) * 100.0
        return ranks

    def anomaly(self, x: F32, threshold: float | None = None) -> AnomalyResult:
        """Scores of wire inputs against a threshold (the manifest's unless given), percentiles."""
        # Tabular answers with per-feature contributions: explain().
        return self.anomaly_result(self.reconstruct(x), threshold)

    def anomaly_result(self, rec: Reconstruction, threshold: float | None) -> AnomalyResult:
        thr = self.manifest.score.threshold if threshold is None else float(threshold)
        return AnomalyResult(rec.scores, thr, rec.scores > thr, self.percentiles(rec.scores))

    def contributions(self, xm: F32, x_hat: F32) -> F64:
        """Each value's part of the MSE score, in model space: ``(x - x_hat)**2 / size``.

        [N, size]; row sums equal :meth:`scores` for ``mse`` models (tabular models' score).
        """
        self.check_mse()
        squared = scoring.squared_errors(xm, x_hat)
        parts: F64 = squared / squared.shape[1]
        return parts

    def check_mse(self) -> None:
        if self.manifest.score.kind != "mse":
            raise UnsupportedOperation(
                f"model '{self.name}' scores with {self.manifest.score.kind}; per-feature "
                "contributions are defined for mse (tabular) models"
            )

    def explain(self, x: F32, threshold: float | None = None, *, finite: bool = False) -> Explained:
        """:meth:`anomaly` plus raw inputs, reconstructions and per-feature contributions."""
        self.check_mse()
        xm = self.to_model_space(x, finite=finite)
        return self.explained(x, xm, self.infer("forward", xm)[0], threshold)

    def explained(self, x: F32, xm: F32, x_hat: F32, threshold: float | None) -> Explained:
        # The squared errors once: the score is their row mean, the contributions each over
        # the row length (the same bits as scores() and contributions()).
        squared = scoring.squared_errors(xm, x_hat)
        scores = scoring.mean_rows(squared)
        rec = Reconstruction(self.to_wire_space(x_hat), scores)
        n = xm.shape[0]
        return Explained(
            result=self.anomaly_result(rec, threshold),
            inputs=np.asarray(x, dtype=np.float32).reshape(n, -1),
            outputs=rec.outputs.reshape(n, -1),
            contributions=squared / squared.shape[1],
        )

    def sample(self, n: int, seed: int | None = None, scale: float = 1.0) -> Samples:
        """Draw ``n`` latents from the prior (scaled about its mean) and decode them.

        VAEs: the standard normal; plain autoencoders: the empirical Gaussian of training codes.
        The same seed gives the same samples.
        """
        z, seed = self.draw(n, seed, scale)
        return Samples(z, self.to_wire_space(self._decode(z)), seed)

    def draw(self, n: int, seed: int | None, scale: float) -> tuple[F32, int]:
        if not (math.isfinite(scale) and 0 < scale <= MAX_SAMPLE_SCALE):
            raise InvalidInput(f"scale must be in (0, {MAX_SAMPLE_SCALE:g}], got {scale}")
        self.check_batch(n, "n")
        if seed is None:
            seed = secrets.randbits(63)
        eps = np.random.default_rng(seed).standard_normal((n, self.latent_dim))
        z: F32 = (self._prior_mean + scale * eps @ self._prior_factor.T).astype(np.float32)
        return z, seed

    # -- classes, imputation, neighbours (issue 17) -----------------------------------------

    def classified(self, logits: F32) -> Classified:
        """Logits [N, classes] -> the most probable class, its name, and the softmax (float64;
        the largest logit first subtracted, so no overflow)."""
        classes = self.classes or []
        wide = logits.astype(np.float64)
        e = np.exp(wide - wide.max(axis=1, keepdims=True))
        probabilities: F64 = e / e.sum(axis=1, keepdims=True)
        labels = logits.argmax(axis=1).astype(np.int64)
        return Classified(labels, [classes[i] for i in labels.tolist()], probabilities)

    def imputation(
        self, x: F32, missing: npt.NDArray[np.bool_], iterations: int, tolerance: float
    ) -> Imputation:
        """Fill the ``missing`` entries of wire inputs ``x`` [N, *shape] (their values are
        ignored; the others are checked as every input is) by iterated reconstruction with the
        known values clamped (:func:`service.runtime.impute.impute`), in model space.

        The first guess of a missing value is the training mean for tabular models (0 once
        standardised) and, for images, the decoding of the prior's mean code (the manifest holds
        no pixel means). The answer holds wire values: the known ones exactly as sent."""
        lo, hi = self._range or (0.0, 0.0)
        if self._mean is not None:
            placeholder: Any = self._mean
        else:
            placeholder = np.float32((lo + hi) / 2)
        known = np.where(missing, placeholder, x).astype(np.float32)
        xm = self.model_inputs(known)
        res = impute(
            lambda a: self.infer("forward", a)[0],
            xm,
            missing,
            start=self.impute_start(),
            iterations=iterations,
            tolerance=tolerance,
        )
        values = np.where(missing, self.to_wire_space(res.values), known).astype(np.float32)
        return Imputation(values, res.filled, res.iterations, res.converged)

    def impute_start(self) -> F32:
        """The first guess of missing values, in model space [*shape] (see :meth:`imputation`)."""
        if self._impute_start is None:
            if self._mean is not None or self.kind == "tabular":
                start: F32 = np.zeros(self.shape, dtype=np.float32)
            else:
                z = self._prior_mean.astype(np.float32)[None, :]
                start = self.infer("decode", z)[0][0]
            self._impute_start = start
        return self._impute_start

    def neighbors(self, z: F32, k: int) -> Neighbors:
        """The ``k`` nearest reference items of each code ``z`` [N, dim]."""
        ref = self.reference
        if ref is None:
            raise UnsupportedOperation(f"model '{self.name}' has no reference set")
        rows, distances = ref.nearest(z, k)
        labels = ref.labels[rows]
        names = ref.label_names
        return Neighbors(
            ids=ref.ids[rows],
            labels=labels,
            label_names=[[names[j] for j in row] for row in labels.tolist()],
            distances=distances,
            rows=rows,
        )

    def reference_items(self, rows: npt.NDArray[np.int64]) -> Any:
        """The reference items at ``rows`` [N, k]: [N, k, *shape] wire values (images from
        their stored pixels, tabular rows as stored raw values), or uint8 pixels for PNG."""
        ref = self.reference
        if ref is None or ref.inputs is None:
            raise UnsupportedOperation(
                f"model '{self.name}''s reference set holds no items to return; ask without "
                "return_references"
            )
        items = ref.inputs[rows]
        if items.dtype == np.uint8:
            return self.from_pixels(items.reshape(-1, *self.shape)).reshape(items.shape)
        return items.astype(np.float32)

    # -- output forms ----------------------------------------------------------------------

    def binarize(self, outputs: F32) -> npt.NDArray[np.uint8]:
        """0/1 outputs for binary models, thresholded at the middle of the input range."""
        if not self.binary:
            raise UnsupportedOperation(
                f"model '{self.name}' does not model binary data; binarize is only for "
                "models whose input.binary is true"
            )
        lo, hi = self._range or (0.0, 1.0)
        return (outputs >= (lo + hi) / 2).astype(np.uint8)

    def to_pixels(self, outputs: F32 | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Image outputs [N, H, W] in the input range -> uint8 grey levels for PNG."""
        if not self.png:
            raise UnsupportedOperation(
                f"model '{self.name}' has {self.kind} inputs of shape {list(self.shape)}; "
                "PNG outputs need an image model with [H, W] inputs"
            )
        lo, hi = self._range or (0.0, 1.0)
        unit = (np.asarray(outputs, dtype=np.float32) - lo) / (hi - lo)
        pixels: npt.NDArray[np.uint8] = np.rint(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)
        return pixels

    def from_pixels(self, pixels: npt.NDArray[np.uint8]) -> F32:
        """uint8 grey levels [N, H, W] -> wire values in the input range."""
        lo, hi = self._range or (0.0, 1.0)
        x: F32 = (pixels.astype(np.float32) / np.float32(255.0)) * np.float32(hi - lo) + np.float32(
            lo
        )
        return x

    # -- load-time checks -------------------------------------------------------------------

    def verify(self) -> None:
        """Check the ONNX signatures against the manifest and run a batch of 2 through both.

        Raises ModelLoadError with the first disagreement.
        """
        self._check_signature(self._encoder, "encoder", "x", [*self.shape], self._encoder_outputs)
        self._check_signature(self._decoder, "decoder", "z", [self.latent_dim], ["x_hat"])
        if self._classifier is not None:
            self._check_signature(
                self._classifier, "classifier", "z", [self.latent_dim], ["logits"]
            )
        lo, hi = self._range or (0.0, 0.0)
        x = np.full((2, *self.shape), (lo + hi) / 2, dtype=np.float32)
        try:
            enc = self._encode(x)
            x_hat = self._decode(enc.latents)
        except Exception as exc:  # onnxruntime raises its own (untyped) errors
            raise ModelLoadError(f"a test batch of 2 failed to run: {exc}") from exc
        expected = {
            "encoder output": (enc.latents.shape, (2, self.latent_dim)),
            "decoder output": (x_hat.shape, (2, *self.shape)),
        }
        if enc.logvar is not None:
            expected["encoder logvar"] = (enc.logvar.shape, (2, self.latent_dim))
        if self._classifier is not None and self.classes is not None:
            try:
                logits = self.infer("classify", x)[0]
            except Exception as exc:  # onnxruntime raises its own (untyped) errors
                raise ModelLoadError(f"a test batch of 2 failed to classify: {exc}") from exc
            expected["classifier output"] = (logits.shape, (2, len(self.classes)))
        for what, (got, want) in expected.items():
            if tuple(got) != want:
                raise ModelLoadError(
                    f"{what} has shape {list(got)} for a batch of 2; manifest says {list(want)}"
                )

    @staticmethod
    def _check_signature(
        session: Any, which: str, input_name: str, dims: list[int], outputs: list[str]
    ) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != input_name:
            names = [i.name for i in inputs]
            raise ModelLoadError(f"{which} inputs are {names}; the contract says ['{input_name}']")
        if inputs[0].type != "tensor(float)":
            raise ModelLoadError(f"{which} input is {inputs[0].type}; expected tensor(float)")
        shape = inputs[0].shape
        if len(shape) != 1 + len(dims) or any(
            isinstance(got, int) and got != want for got, want in zip(shape[1:], dims, strict=True)
        ):
            raise ModelLoadError(
                f"{which} input '{input_name}' has shape {shape}; manifest says [N, "
                f"{', '.join(map(str, dims))}]"
            )
        if isinstance(shape[0], int) and shape[0] != -1:
            raise ModelLoadError(f"{which} has a fixed batch size {shape[0]}; it must be dynamic")
        have = [o.name for o in session.get_outputs()]
        missing = [o for o in outputs if o not in have]
        if missing:
            raise ModelLoadError(f"{which} outputs are {have}; missing {missing}")
