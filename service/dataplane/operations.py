"""The operation registry: every inference operation defined once.

An :class:`Operation` is what a client can ask of a model: its name (the REST path is
``/{name}``), its request options and answer schemas (pydantic; they also feed OpenAPI), the
kind of inputs it takes, which models support it, the checks of one request, and its batch
work on the runtime's public API (inputs of many requests -> one ONNX call -> each request's
answer fields). :data:`OPERATIONS` lists them; every transport and every endpoint list (REST
routes, ``/models``' ``endpoints``, what the express lane takes) is derived from it.

Adding an operation: write its schemas in ``schemas.py``, its checks and batch work here,
register it in :data:`OPERATIONS` and add its tests; ``tests/service/test_registry.py`` fails
while a registered operation lacks a route, a schema, an example or documentation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from service.codecs.arrays import (
    array_from_json,
    array_with_gaps,
    mask_from_json,
    records_to_array,
    records_with_gaps,
    to_float32,
)
from service.codecs.flatjson import exact32
from service.codecs.images import images_from_base64, images_to_array, png_base64
from service.dataplane import schemas, tabular
from service.runtime.errors import InvalidInput, UnsupportedOperation
from service.runtime.model import AnomalyResult, ModelRuntime, Reconstruction
from service.runtime.sessions import F32, F64

if TYPE_CHECKING:
    from service.dataplane.plane import Context

Fields = dict[str, Any]
Takes = Literal["samples", "latents", "none"]


@dataclass(eq=False, slots=True)
class Job:
    """One request of one operation on one model, as the scheduler sees it.

    ``x`` holds the request's wire inputs [n, ...] (samples, latents or drawn latents), checked
    for shape; large flat JSON bodies keep their float64 rows in ``wide`` and tabular records
    their raw rows in ``rows`` until the batch makes one array of them. ``reply`` gets the
    answer fields or the error; ``cancelled`` says the client is gone.
    """

    op: Operation
    runtime: ModelRuntime
    options: Any
    x: F32
    n: int
    reply: Callable[[Fields | BaseException], None] = field(default=lambda _: None)
    cancelled: Callable[[], bool] = field(default=lambda: False)
    ids: list[tabular.Id] | None = None
    rows: list[list[Any]] | None = None
    wide: F64 | None = None
    finite: bool = False  # values already checked finite (tabular, naming the feature)
    mask: npt.NDArray[np.bool_] | None = None  # /impute: values to fill besides the NaNs
    seed: int | None = None  # /sample: the seed used
    queued_at: float = 0.0  # time.perf_counter() when the scheduler queued it
    started_at: float = 0.0  # ... when its batch's work began (tracing)
    finished_at: float = 0.0  # ... and ended
    batch_size: int = 0  # jobs in its batch


Check = Callable[[ModelRuntime, Any, "Context"], None]
Work = Callable[[ModelRuntime, list[Job], "Context"], list[Fields]]


@dataclass(frozen=True)
class Operation:
    """One inference operation (see the module docstring)."""

    name: str  # the REST path is /{name}
    summary: str  # one line: what it does (OpenAPI)
    options: type[BaseModel]  # request schema
    answer: type[BaseModel]  # answer schema (documentation: bodies are written by orjson)
    example: dict[str, Any]  # a request that works on the shipped zoo
    takes: Takes  # samples (inputs | images | records | uploads), latents, or none
    work: Work  # a batch of jobs -> each job's fields after model and version
    check: Check = lambda runtime, options, ctx: None  # one request's options, before inputs
    supports: Callable[[ModelRuntime], bool] = lambda runtime: True
    # What the answer holds per sample (leading axis N): the fields a .npy answer carries.
    outputs_images: bool = False  # answers images (binarize / output_format apply)
    # Its batch costs about one forward pass (so a model fast enough may run it on the event
    # loop); False: it may cost many more (impute iterates; neighbors searches the reference
    # set), so it always runs in the model's inference thread.
    loop_safe: bool = True

    @property
    def default_options(self) -> Any:
        """The options of a body that gives only the model and its inputs (samples only)."""
        options = _DEFAULTS.get(self.name)
        if options is None:
            options = _DEFAULTS[self.name] = self.options.model_validate({})
        return options

    @property
    def uploads(self) -> bool:
        """Takes multipart image uploads (as its inputs)."""
        return self.takes == "samples"


_DEFAULTS: dict[str, Any] = {}


# -- inputs of a batch ------------------------------------------------------------------------


def bounds(jobs: list[Job]) -> list[tuple[int, int]]:
    """Each job's rows [a, b) in the batch."""
    out, a = [], 0
    for job in jobs:
        out.append((a, a + job.n))
        a += job.n
    return out


def batch_inputs(runtime: ModelRuntime, jobs: list[Job]) -> F32:
    """The batch's wire inputs [N, ...]. Raw tabular rows of all its jobs become one array (as
    records_to_array makes them: float64, then float32) checked finite naming the feature;
    large flat bodies' float64 rows are cast to float32 at once."""
    wide = [job.wide for job in jobs if job.wide is not None]
    if wide:
        x = exact(np.concatenate(wide) if len(wide) > 1 else wide[0])
        x = x.reshape((x.shape[0], *runtime.shape))
        if len(wide) == len(jobs):
            return x
        a = 0
        for job in jobs:
            if job.wide is not None:
                job.x, a = x[a : a + job.n], a + job.n
                job.wide = None
    rows = [row for job in jobs if job.rows is not None for row in job.rows]
    if rows:
        table = to_float32(np.array(rows, dtype=np.float64))  # OverflowError: each job alone
        tabular.check_finite(runtime, table, records=True)
        a = 0
        for job in jobs:
            if job.rows is not None:
                job.x, a = table[a : a + job.n], a + job.n
                job.rows, job.finite = None, True
        if len(jobs) == 1:
            return table
    return jobs[0].x if len(jobs) == 1 else np.concatenate([job.x for job in jobs])


def exact(rows: F64) -> F32:
    """Flat float64 rows as float32, if every value is within +-2**53 (else ValueError: each
    job alone, and the transport that made them declines)."""
    x = exact32(rows)
    if x is None:
        raise ValueError("values beyond 2**53")
    return x


def samples_in_model_space(runtime: ModelRuntime, jobs: list[Job]) -> tuple[F32, F32]:
    """Wire inputs and model inputs of a batch of samples."""
    x = batch_inputs(runtime, jobs)
    return x, runtime.model_inputs(x, finite=all(job.finite for job in jobs))


# -- answers -------------------------------------------------------------------------------


def check_output_options(runtime: ModelRuntime, options: Any) -> None:
    """Refuse output options the model cannot honour, before running it."""
    get = options.__dict__.get
    if get("binarize", False) and not runtime.binary:
        raise UnsupportedOperation(
            f"binarize is only for binary models; model '{runtime.name}' is not binary"
        )
    if get("output_format", "array") == "png" and not runtime.png:
        raise UnsupportedOperation(
            f"output_format 'png' needs a grayscale [H, W] image model; model '{runtime.name}' "
            f"takes {runtime.kind} inputs of shape {list(runtime.shape)}"
        )


def encode_outputs(runtime: ModelRuntime, outputs: F32, options: Any) -> Any:
    """Wire outputs as asked: floats, 0/1 (binarize), or base64 PNG."""
    get = options.__dict__.get
    binarize = get("binarize", False)
    result: Any = runtime.binarize(outputs) if binarize else outputs
    if get("output_format", "array") == "png":
        pixels = result * np.uint8(255) if binarize else runtime.to_pixels(result)
        return png_base64(pixels)
    return result


# -- the operations ----------------------------------------------------------------------


def _encode_check(runtime: ModelRuntime, options: Any, ctx: Context) -> None:
    if options.return_logvar and not runtime.is_vae:
        raise UnsupportedOperation(f"return_logvar is for VAEs; model '{runtime.name}' is an AE")


def _encode(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    _, xm = samples_in_model_space(runtime, jobs)
    enc = runtime.encoded(runtime.infer("encode", xm))
    out = []
    for job, (a, b) in zip(jobs, bounds(jobs), strict=True):
        fields: Fields = {"latents": enc.latents[a:b]}
        if job.options.return_logvar:
            fields["logvar"] = enc.logvar[a:b] if enc.logvar is not None else None
        out.append(fields)
    return out


def _decode(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    z = jobs[0].x if len(jobs) == 1 else np.concatenate([job.x for job in jobs])
    outputs = runtime.to_wire_space(runtime.infer("decode", z)[0])
    return [
        {"outputs": encode_outputs(runtime, outputs[a:b], job.options)}
        for job, (a, b) in zip(jobs, bounds(jobs), strict=True)
    ]


def _sample_check(runtime: ModelRuntime, options: Any, ctx: Context) -> None:
    if options.n > ctx.max_samples:
        raise InvalidInput(
            f"n={options.n} is too many samples; at most {ctx.max_samples} (AESERVE_MAX_SAMPLES)"
        )


def _sample(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    z = jobs[0].x if len(jobs) == 1 else np.concatenate([job.x for job in jobs])
    outputs = runtime.to_wire_space(runtime.infer("decode", z)[0])
    return [
        {
            "seed": job.seed,
            "latents": job.x,
            "outputs": encode_outputs(runtime, outputs[a:b], job.options),
        }
        for job, (a, b) in zip(jobs, bounds(jobs), strict=True)
    ]


def _reconstruct(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    _, xm = samples_in_model_space(runtime, jobs)
    rec = runtime.reconstruction(xm, runtime.infer("forward", xm)[0])
    return [
        {
            "outputs": encode_outputs(runtime, rec.outputs[a:b], job.options),
            "scores": rec.scores[a:b],
        }
        for job, (a, b) in zip(jobs, bounds(jobs), strict=True)
    ]


def _denoise_check(runtime: ModelRuntime, options: Any, ctx: Context) -> None:
    if not runtime.denoiser:
        able = ", ".join(ctx.supporting(DENOISE)) or "none is loaded"
        raise UnsupportedOperation(
            f"model '{runtime.name}' was not trained as a denoiser; models that can denoise: {able}"
        )


def _denoise(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    _, xm = samples_in_model_space(runtime, jobs)
    outputs = runtime.to_wire_space(runtime.infer("forward", xm)[0])
    return [
        {"outputs": encode_outputs(runtime, outputs[a:b], job.options)}
        for job, (a, b) in zip(jobs, bounds(jobs), strict=True)
    ]


def _anomaly_check(runtime: ModelRuntime, options: Any, ctx: Context) -> None:
    tabular.check_options(runtime, options)


def _anomaly(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    if runtime.kind == "tabular":
        return _tabular_anomaly(runtime, jobs, ctx)
    _, xm = samples_in_model_space(runtime, jobs)
    rec = runtime.reconstruction(xm, runtime.infer("forward", xm)[0])
    results = _per_threshold(runtime, rec, jobs)
    ctx.metrics.observe_anomalies(
        runtime.name, _flags(results, jobs), _joined(results, "percentiles")
    )
    return [res.fields(rows) for res, rows in results]


def _per_threshold(
    runtime: ModelRuntime, rec: Reconstruction, jobs: list[Job]
) -> list[tuple[AnomalyResult, slice]]:
    """Each job's anomaly result and its rows: one for all jobs at the manifest's threshold,
    a job of its own where the request sets one."""
    shared: AnomalyResult | None = None
    out = []
    for job, (a, b) in zip(jobs, bounds(jobs), strict=True):
        threshold = job.options.threshold
        if threshold is None:
            if shared is None:
                shared = runtime.anomaly_result(rec, None)
            out.append((shared, slice(a, b)))
        else:
            part = Reconstruction(rec.outputs[a:b], rec.scores[a:b])
            out.append((runtime.anomaly_result(part, threshold), slice(None)))
    return out


def _flags(results: list[tuple[AnomalyResult, slice]], jobs: list[Job]) -> Any:
    return _joined(results, "is_anomaly")


def _joined(results: list[tuple[AnomalyResult, slice]], name: str) -> Any:
    """One field of the batch's anomaly results, every job's rows in order."""
    if len(results) == 1 or all(res is results[0][0] for res, _ in results):
        return getattr(results[0][0], name)
    return np.concatenate([getattr(res, name)[rows] for res, rows in results])


def _tabular_anomaly(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    runtime.check_mse()
    x, xm = samples_in_model_space(runtime, jobs)
    x_hat = runtime.infer("forward", xm)[0]
    plain = all(job.options.threshold is None and job.options.top_features is None for job in jobs)
    if plain:  # one explanation and one table of results for the whole batch
        explained = runtime.explained(x, xm, x_hat, None)
        ids: list[tabular.Id] | None = None
        if any(job.ids is not None for job in jobs):
            ids = []
            for job in jobs:
                ids.extend(job.ids if job.ids is not None else [None] * job.n)
        rows = tabular.results(runtime, explained, ids, tabular.top_count(runtime, None))
        res = explained.result
        ctx.metrics.observe_anomalies(runtime.name, res.is_anomaly, res.percentiles)
        return [{**res.fields(slice(a, b)), "results": rows[a:b]} for a, b in bounds(jobs)]
    out = []
    for job, (a, b) in zip(jobs, bounds(jobs), strict=True):
        options = job.options
        part = runtime.explained(x[a:b], xm[a:b], x_hat[a:b], options.threshold)
        top = tabular.top_count(runtime, options.top_features)
        ctx.metrics.observe_anomalies(runtime.name, part.result.is_anomaly, part.result.percentiles)
        out.append(
            {**part.result.fields(), "results": tabular.results(runtime, part, job.ids, top)}
        )
    return out


ENCODE = Operation(
    name="encode",
    summary="Encode inputs to latent codes (VAE: the posterior mean; ``logvar`` on request).",
    options=schemas.EncodeRequest,
    answer=schemas.EncodeResponse,
    example={"model": "font", "inputs": [schemas.GLYPH]},
    takes="samples",
    check=_encode_check,
    work=_encode,
)
DECODE = Operation(
    name="decode",
    summary="Decode latent codes ``[N, latent.dim]`` to outputs.",
    options=schemas.DecodeRequest,
    answer=schemas.DecodeResponse,
    example={"model": "font", "latents": [[0.0, 0.0]]},
    takes="latents",
    work=_decode,
    outputs_images=True,
)
RECONSTRUCT = Operation(
    name="reconstruct",
    summary="Reconstruct inputs: ``outputs`` and per-sample ``scores`` (the manifest's score).",
    options=schemas.ReconstructRequest,
    answer=schemas.ReconstructResponse,
    example={"model": "font", "inputs": [schemas.GLYPH], "binarize": True},
    takes="samples",
    work=_reconstruct,
    outputs_images=True,
)
DENOISE = Operation(
    name="denoise",
    summary="Clean noisy inputs; only models trained as denoisers (``training.denoising``).",
    options=schemas.DenoiseRequest,
    answer=schemas.DenoiseResponse,
    example={"model": "font-denoise", "inputs": [schemas.GLYPH], "binarize": True},
    takes="samples",
    check=_denoise_check,
    supports=lambda runtime: runtime.denoiser,
    work=_denoise,
    outputs_images=True,
)
SAMPLE = Operation(
    name="sample",
    summary="Draw ``n`` samples from the model's prior (VAE: N(0, I); AE: empirical Gaussian).",
    options=schemas.SampleRequest,
    answer=schemas.SampleResponse,
    example={"model": "font", "n": 4, "seed": 0, "scale": 1.0, "binarize": True},
    takes="none",
    check=_sample_check,
    work=_sample,
    outputs_images=True,
)
ANOMALY_SCORE = Operation(
    name="anomaly-score",
    summary="Anomaly scores with the threshold, ``is_anomaly`` and calibration percentiles "
    "(0-100); tabular models add per-row results with the top contributing features.",
    options=schemas.AnomalyScoreRequest,
    answer=schemas.AnomalyScoreResponse,
    example={"model": "font", "inputs": [schemas.GLYPH]},
    takes="samples",
    check=_anomaly_check,
    work=_anomaly,
)

# -- issue 17: classify, impute, neighbors -----------------------------------------------------


def _classify_check(runtime: ModelRuntime, options: Any, ctx: Context) -> None:
    if runtime.classes is None:
        able = ", ".join(ctx.supporting(CLASSIFY)) or "none is loaded"
        raise UnsupportedOperation(
            f"model '{runtime.name}' has no classifier (classifier.onnx); models that can "
            f"classify: {able}"
        )


def _classify(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    _, xm = samples_in_model_space(runtime, jobs)
    res = runtime.classified(runtime.infer("classify", xm)[0])
    return [
        {
            "labels": res.labels[a:b],
            "label_names": res.label_names[a:b],
            "probabilities": res.probabilities[a:b],
        }
        for a, b in bounds(jobs)
    ]


def _impute_check(runtime: ModelRuntime, options: Any, ctx: Context) -> None:
    columns = runtime.columns
    if columns is not None and not columns.plain:
        raise UnsupportedOperation(
            f"model '{runtime.name}' has categorical or missing-indicator features; /impute "
            "fills models whose features are all plain numbers"
        )


def _impute(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    x = batch_inputs(runtime, jobs)
    missing = np.isnan(x)
    for job, (a, b) in zip(jobs, bounds(jobs), strict=True):
        if job.mask is not None:
            missing[a:b] |= job.mask
    keys = {(job.options.iterations, job.options.tolerance) for job in jobs}
    if len(keys) == 1:  # one imputation for the batch (rows never influence each other)
        iterations, tolerance = keys.pop()
        done = runtime.imputation(x, missing, iterations, tolerance)
        parts = [(done, slice(a, b)) for a, b in bounds(jobs)]
    else:
        parts = [
            (
                runtime.imputation(
                    x[a:b], missing[a:b], job.options.iterations, job.options.tolerance
                ),
                slice(None),
            )
            for job, (a, b) in zip(jobs, bounds(jobs), strict=True)
        ]
    out = []
    for job, (res, rows) in zip(jobs, parts, strict=True):
        filled = res.filled[rows]
        fields: Fields = {
            "outputs": encode_outputs(runtime, res.values[rows], job.options),
            "filled": filled,
            "iterations": res.iterations[rows],
            "converged": res.converged[rows],
        }
        if runtime.features is not None:  # tabular: the names too
            names = runtime.features
            fields["filled_features"] = [
                [names[j] for j in np.flatnonzero(row).tolist()] for row in filled
            ]
        out.append(fields)
    return out


def _neighbors_check(runtime: ModelRuntime, options: Any, ctx: Context) -> None:
    ref = runtime.reference
    if ref is None:
        able = ", ".join(ctx.supporting(NEIGHBORS)) or "none is loaded"
        raise UnsupportedOperation(
            f"model '{runtime.name}' ships no reference set (reference.npz); models with one: "
            f"{able}"
        )
    if options.k > ref.size:
        raise InvalidInput(
            f"k={options.k} is more than the {ref.size} items of model '{runtime.name}''s "
            f"reference set; ask for 1 to {min(ref.size, schemas.MAX_NEIGHBORS)}"
        )
    if options.return_references and ref.inputs is None:
        raise UnsupportedOperation(
            f"model '{runtime.name}''s reference set holds no items to return; ask without "
            "return_references"
        )


def _neighbors(runtime: ModelRuntime, jobs: list[Job], ctx: Context) -> list[Fields]:
    _, xm = samples_in_model_space(runtime, jobs)
    z = runtime.infer("encode", xm)[0]  # VAE: the posterior mean
    # The largest k of the batch; a smaller k is its first columns (the order is stable).
    found = runtime.neighbors(z, max(job.options.k for job in jobs))
    split = runtime.reference.split if runtime.reference is not None else ""
    out = []
    for job, (a, b) in zip(jobs, bounds(jobs), strict=True):
        k = job.options.k
        fields: Fields = {
            "split": split,
            "ids": found.ids[a:b, :k],
            "labels": found.labels[a:b, :k],
            "label_names": [row[:k] for row in found.label_names[a:b]],
            "distances": found.distances[a:b, :k],
        }
        if job.options.return_references:
            fields["references"] = _references(runtime, found.rows[a:b, :k], job.options)
        out.append(fields)
    return out


def _references(runtime: ModelRuntime, rows: npt.NDArray[np.int64], options: Any) -> Any:
    """The reference items at ``rows`` [n, k]: wire values, or base64 PNG strings [n][k]."""
    if options.output_format == "png" and runtime.reference is not None:
        items = runtime.reference.inputs
        assert items is not None  # checked by _neighbors_check
        k = rows.shape[1]
        pngs = png_base64(items[rows].reshape(-1, *runtime.shape))
        return [pngs[i : i + k] for i in range(0, len(pngs), k)]
    return runtime.reference_items(rows)


CLASSIFY = Operation(
    name="classify",
    summary="Classify inputs: ``labels``, ``label_names`` and class ``probabilities``; only "
    "models with a classifier (``classifier.onnx``: codes -> logits).",
    options=schemas.ClassifyRequest,
    answer=schemas.ClassifyResponse,
    example={"model": "mnist-classifier", "images": [schemas.DIGIT_7_PNG]},
    takes="samples",
    check=_classify_check,
    supports=lambda runtime: runtime.classes is not None,
    work=_classify,
)
IMPUTE = Operation(
    name="impute",
    summary="Fill missing values (null or NaN, absent record features, or a ``mask``) by "
    "iterated reconstruction with the known values kept: the completed ``outputs`` and which "
    "values were ``filled``.",
    options=schemas.ImputeRequest,
    answer=schemas.ImputeResponse,
    example={"model": "font", "inputs": [[*schemas.GLYPH[:6], [0, None, None, None, 1]]]},
    takes="samples",
    check=_impute_check,
    supports=lambda runtime: runtime.columns is None or runtime.columns.plain,
    work=_impute,
    outputs_images=True,
    loop_safe=False,
)
NEIGHBORS = Operation(
    name="neighbors",
    summary="The ``k`` nearest items of the model's reference set to each input, by distance "
    "between codes: ids, labels, distances (and the items on request).",
    options=schemas.NeighborsRequest,
    answer=schemas.NeighborsResponse,
    example={"model": "font", "inputs": [schemas.GLYPH], "k": 3},
    takes="samples",
    check=_neighbors_check,
    supports=lambda runtime: runtime.reference is not None,
    work=_neighbors,
    loop_safe=False,
)

# In the order /models lists them.
OPERATIONS: tuple[Operation, ...] = (
    ENCODE,
    DECODE,
    RECONSTRUCT,
    DENOISE,
    SAMPLE,
    ANOMALY_SCORE,
    CLASSIFY,
    IMPUTE,
    NEIGHBORS,
)
BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}


def prepare(
    op: Operation,
    runtime: ModelRuntime,
    options: Any,
    ctx: Context,
    *,
    uploads: list[tuple[str, bytes]] | None = None,
) -> Job:
    """One request as a job: its options checked against the model, its inputs read from the
    options' one input form (or ``uploads``) and checked for shape. Values are checked by the
    batch work. Blocking (images are decoded here): large requests call it in a thread."""
    op.check(runtime, options, ctx)
    check_output_options(runtime, options)
    if op.takes == "none":
        z, seed = runtime.draw(options.n, options.seed, options.scale)
        return Job(op, runtime, options, z, len(z), seed=seed)
    if op.takes == "latents":
        z = runtime.check_latents(array_from_json(options.latents, "latents"))
        return Job(op, runtime, options, z, len(z))
    return _samples_job(op, runtime, options, uploads, ctx.max_pixels)


def _samples_job(
    op: Operation,
    runtime: ModelRuntime,
    options: Any,
    uploads: list[tuple[str, bytes]] | None,
    max_pixels: int,
) -> Job:
    ids: list[tabular.Id] | None = None
    finite = False
    if uploads is not None:
        x = images_to_array(runtime, uploads, options.resize, max_pixels)
    else:
        given = [k for k in ("inputs", "images", "records") if options.__dict__[k] is not None]
        if len(given) != 1:
            raise InvalidInput(
                "send exactly one of 'inputs', 'images' or 'records'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        tabular_answer = op is ANOMALY_SCORE and runtime.kind == "tabular"
        if given[0] == "images":
            x = images_from_base64(runtime, options.images, options.resize, max_pixels)
        elif op is IMPUTE:  # nulls and absent features are the values to fill
            if given[0] == "records":
                x = records_with_gaps(runtime, options.records)
            else:
                x = array_with_gaps(options.inputs, "inputs")
        elif given[0] == "records":
            records = options.records
            if tabular_answer:
                if options.ids is not None:
                    raise InvalidInput(
                        "'ids' goes with 'inputs'; with 'records', put an 'id' key in each record"
                    )
                records, ids = tabular.split_ids(runtime, records)
            x = records_to_array(runtime, records)
            if tabular_answer:
                tabular.check_finite(runtime, x, records=True)
                finite = True
        else:
            x = array_from_json(options.inputs, "inputs")
        if tabular_answer and given[0] != "records":
            if x.ndim == 2 and x.shape[1] == runtime.size:
                tabular.check_finite(runtime, x, records=False)
                finite = True
            if options.ids is not None:
                ids = [tabular.check_id(v, f"ids[{i}]") for i, v in enumerate(options.ids)]
                if len(ids) != len(x):
                    raise InvalidInput(f"ids has {len(ids)} entries for {len(x)} rows of inputs")
    x = runtime.shaped(x)
    mask = None
    if op is IMPUTE and options.mask is not None:
        mask = mask_from_json(options.mask, x.shape, runtime.size)
    return Job(op, runtime, options, x, len(x), ids=ids, finite=finite, mask=mask)
