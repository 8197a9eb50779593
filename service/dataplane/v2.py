"""The Open Inference Protocol (v2) on the operation registry, for its REST and gRPC transports.

Each model is one v2 model. Its inputs: ``x`` [-1, *input.shape] (wire units: raw feature
values in manifest order for tabular models) or ``z`` [-1, latent.dim] for decoding; none for
sampling (parameters ``n``, ``seed``, ``scale``). Each output it can give belongs to one
operation, and a request runs only the operations of the outputs it asks for:

============================  ==============================  =============================
output                        operation (input)               REST field
============================  ==============================  =============================
``z`` (VAE: ``mu``)           encode (``x``); sample (none)   ``latents``
``logvar`` (VAE)              encode (``x``)                  ``logvar``
``x_hat``                     reconstruct (``x``); decode     ``outputs``
                              (``z``); sample (none)
``score``                     anomaly-score if it runs,       ``scores``
                              else reconstruct (``x``)
``percentile``, ``is_anomaly``  anomaly-score (``x``)         ``percentiles``, ``is_anomaly``
``threshold`` [1]             anomaly-score (``x``)           ``threshold``
``contributions`` [-1, F]     anomaly-score, tabular (``x``)  ``results[i].contributions``
``denoised``                  denoise, denoisers (``x``)      ``outputs``
``probabilities`` [-1, C],    classify, classifiers (``x``)   ``probabilities``,
``labels`` INT64                                              ``labels``
``imputed``, ``filled``       impute (``x``: NaN = missing)   ``outputs``, ``filled``
``neighbor_ids``,             neighbors, models with a        ``ids``, ``labels``,
``neighbor_labels``,          reference set (``x``)           ``distances``
``neighbor_distances``
============================  ==============================  =============================

The outputs of classify, impute and neighbors come only when a request names them (a request
without ``outputs`` gets the others): they are other questions than "encode and reconstruct
this", and neighbors and impute cost more.

Request ``parameters`` set the operations' options by their REST names (:data:`OPTIONS`:
``binarize``, ``threshold``, ``n``, ``seed``, ``scale``, ``k``, ``iterations``, ``tolerance``) and
are validated by the same schemas; the REST API's other options (the model and version, the
input forms, ``output_format``: the answer is tensors) are not parameters; others (e.g. Triton's
``binary_data_output``) are the transport's. The jobs go to the same schedulers
as every REST request, so the numbers are the REST answers' bit for bit.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from service.dataplane.operations import (
    ANOMALY_SCORE,
    BY_NAME,
    CLASSIFY,
    DECODE,
    DENOISE,
    ENCODE,
    IMPUTE,
    NEIGHBORS,
    RECONSTRUCT,
    SAMPLE,
    Fields,
    Operation,
)
from service.dataplane.plane import DataPlane
from service.runtime.errors import InvalidInput, invalid_fields
from service.runtime.model import ModelRuntime
from service.runtime.repository import ModelRepository

Array = npt.NDArray[Any]
PLATFORM = "aeserve_autoencoder"
# The REST options a request's parameters may set (each operation reads those it has).
OPTIONS = frozenset(("binarize", "threshold", "n", "seed", "scale", "k", "iterations", "tolerance"))
# What an input is for: the samples of most operations, latents to decode.
SAMPLES, LATENTS = "x", "z"


@dataclass
class InferRequest:
    """A v2 inference request, as both transports read it (tensors already decoded)."""

    model: str
    version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Array] = field(default_factory=dict)
    outputs: list[str] | None = None  # None: every output the inputs allow


@dataclass
class InferResponse:
    """A v2 answer: the model, its version, the request id, output tensors in request order."""

    runtime: ModelRuntime
    id: str | None
    outputs: list[tuple[str, Array]]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of a model's metadata: -1 is the batch axis."""

    name: str
    datatype: str
    shape: list[int]


# -- what each model offers ---------------------------------------------------------------------


def inputs_of(runtime: ModelRuntime) -> list[TensorInfo]:
    return [
        TensorInfo(SAMPLES, "FP32", [-1, *runtime.shape]),
        TensorInfo(LATENTS, "FP32", [-1, runtime.latent_dim]),
    ]


def outputs_of(runtime: ModelRuntime) -> list[TensorInfo]:
    """Every output the model can give (sampled latents are ``z`` for both families)."""
    latent = [-1, runtime.latent_dim]
    shape = [-1, *runtime.shape]
    out = [TensorInfo("z", "FP32", latent)]
    if runtime.is_vae:
        out += [TensorInfo("mu", "FP32", latent), TensorInfo("logvar", "FP32", latent)]
    out += [
        TensorInfo("x_hat", "FP32", shape),
        TensorInfo("score", "FP64", [-1]),
        TensorInfo("percentile", "FP64", [-1]),
        TensorInfo("is_anomaly", "BOOL", [-1]),
        TensorInfo("threshold", "FP64", [1]),
    ]
    if runtime.kind == "tabular":
        out.append(TensorInfo("contributions", "FP64", [-1, runtime.size]))
    if runtime.denoiser:
        out.append(TensorInfo("denoised", "FP32", shape))
    if runtime.classes is not None:
        out.append(TensorInfo("probabilities", "FP64", [-1, len(runtime.classes)]))
        out.append(TensorInfo("labels", "INT64", [-1]))
    if IMPUTE.supports(runtime):
        out += [TensorInfo("imputed", "FP32", shape), TensorInfo("filled", "BOOL", shape)]
    if runtime.reference is not None:
        out += [
            TensorInfo("neighbor_ids", "INT64", [-1, -1]),
            TensorInfo("neighbor_labels", "INT64", [-1, -1]),
            TensorInfo("neighbor_distances", "FP64", [-1, -1]),
        ]
    return out


# Outputs given only when a request names them (see the module docstring).
ON_REQUEST = frozenset(
    {
        "probabilities",
        "labels",
        "imputed",
        "filled",
        "neighbor_ids",
        "neighbor_labels",
        "neighbor_distances",
    }
)


def metadata(runtime: ModelRuntime, versions: list[str]) -> dict[str, Any]:
    """The v2 model metadata document (``versions``: every loaded version of the model)."""
    return {
        "name": runtime.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [_info(t) for t in inputs_of(runtime)],
        "outputs": [_info(t) for t in outputs_of(runtime)],
    }


def _info(t: TensorInfo) -> dict[str, Any]:
    return {"name": t.name, "datatype": t.datatype, "shape": t.shape}


def model(repository: ModelRepository, name: str, version: str | None) -> ModelRuntime:
    """The named model (the serving version, or ``version`` when given): 404 with the REST
    API's message otherwise (the same lookup as its ``model`` and ``version`` options)."""
    return repository.get(name, version)


def versions(repository: ModelRepository, name: str) -> list[str]:
    """Every loaded version of a loaded model, sorted."""
    return sorted(repository.versions.get(name, {}))


def index(repository: ModelRepository) -> list[dict[str, Any]]:
    """The repository index: every loaded version READY, refused models UNAVAILABLE with the
    reason (version '')."""
    rows: list[dict[str, Any]] = [
        {"name": name, "version": version, "state": "READY", "reason": ""}
        for name, loaded in repository.versions.items()
        for version in loaded
    ]
    rows += [
        {"name": name, "version": "", "state": "UNAVAILABLE", "reason": reason}
        for name, reason in repository.failed.items()
    ]
    return sorted(rows, key=lambda r: (str(r["name"]), str(r["version"])))


# -- the plan: which operations run ------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _sample_outputs(runtime: ModelRuntime) -> dict[str, Operation]:
    """The outputs of input ``x`` and their operations (once per model: read-only)."""
    by_name: dict[str, Operation] = {}
    if runtime.is_vae:
        by_name["mu"] = by_name["logvar"] = ENCODE
    else:
        by_name["z"] = ENCODE
    by_name.update(
        x_hat=RECONSTRUCT,
        score=RECONSTRUCT,
        percentile=ANOMALY_SCORE,
        is_anomaly=ANOMALY_SCORE,
        threshold=ANOMALY_SCORE,
    )
    if runtime.kind == "tabular":
        by_name["contributions"] = ANOMALY_SCORE
    if runtime.denoiser:
        by_name["denoised"] = DENOISE
    if runtime.classes is not None:
        by_name["probabilities"] = by_name["labels"] = CLASSIFY
    if IMPUTE.supports(runtime):
        by_name["imputed"] = by_name["filled"] = IMPUTE
    if runtime.reference is not None:
        by_name["neighbor_ids"] = by_name["neighbor_labels"] = NEIGHBORS
        by_name["neighbor_distances"] = NEIGHBORS
    return by_name


def plan(
    runtime: ModelRuntime, request: InferRequest
) -> tuple[str, list[tuple[Operation, list[str]]]]:
    """The input used (``x``, ``z`` or ``""`` for sampling) and the operations to run, each
    with the outputs it gives (in the order of the outputs asked)."""
    outputs = tuple(request.outputs) if request.outputs is not None else None
    return _plan(runtime, tuple(request.inputs), outputs)


@functools.lru_cache(maxsize=1024)
def _plan(
    runtime: ModelRuntime, names: tuple[str, ...], outputs: tuple[str, ...] | None
) -> tuple[str, list[tuple[Operation, list[str]]]]:
    """:func:`plan` by model, input names and outputs (once each: read-only)."""
    unknown = [n for n in names if n not in (SAMPLES, LATENTS)]
    if unknown or len(names) > 1:
        raise InvalidInput(
            f"inputs are {list(names)}; model '{runtime.name}' takes one input: '{SAMPLES}' "
            f"[-1, {', '.join(map(str, runtime.shape))}] (samples) or '{LATENTS}' "
            f"[-1, {runtime.latent_dim}] (latents to decode), or none to sample"
        )
    given = names[0] if names else ""
    offered: dict[str, Operation]
    if given == SAMPLES:
        offered = _sample_outputs(runtime)
    elif given == LATENTS:
        offered = {"x_hat": DECODE}
    else:
        offered = {"z": SAMPLE, "x_hat": SAMPLE}
    wanted = list(outputs) if outputs is not None else [o for o in offered if o not in ON_REQUEST]
    if len(set(wanted)) != len(wanted):
        raise InvalidInput(f"outputs {wanted} name an output more than once")
    missing = [o for o in wanted if o not in offered]
    if missing:
        what = f"input '{given}'" if given else "no input (sampling)"
        raise InvalidInput(
            f"output(s) {missing} are not available from model '{runtime.name}' with {what}; "
            f"it gives {list(offered)}"
        )
    # score comes from anomaly-score when that runs anyway, else from reconstruct.
    anomaly = any(offered[w] is ANOMALY_SCORE and w != "score" for w in wanted)
    ops: dict[str, tuple[Operation, list[str]]] = {}
    for name in wanted:
        op = ANOMALY_SCORE if name == "score" and anomaly else offered[name]
        ops.setdefault(op.name, (op, []))[1].append(name)
    return given, list(ops.values())


def options_for(
    op: Operation,
    runtime: ModelRuntime,
    outputs: list[str],
    parameters: Mapping[str, Any],
    inputs: Array | None,
) -> Any:
    """The operation's REST options: its parameters (by REST name), its inputs, the answer
    fields its outputs need; validated by the operation's schema (the REST messages)."""
    if not parameters:  # the options of no parameters, validated once per model and outputs
        base = _plain_options(op.name, runtime, tuple(outputs))
        if inputs is None:
            return base
        return base.model_copy(update={"latents" if op is DECODE else "inputs": inputs})
    fields = op.options.model_fields
    data: dict[str, Any] = {k: v for k, v in parameters.items() if k in OPTIONS and k in fields}
    if op is ENCODE:
        data["return_logvar"] = "logvar" in outputs
    if op is ANOMALY_SCORE and "contributions" in outputs:
        data["top_features"] = runtime.size
    if inputs is not None:
        data["latents" if op is DECODE else "inputs"] = inputs
    try:
        return op.options.model_validate(data)
    except ValidationError as exc:  # the REST API's message, naming the parameter
        raise invalid_fields(list(exc.errors()), "parameters") from None


@functools.lru_cache(maxsize=1024)
def _plain_options(name: str, runtime: ModelRuntime, outputs: tuple[str, ...]) -> Any:
    op = BY_NAME[name]
    data: dict[str, Any] = {}
    if op is ENCODE:
        data["return_logvar"] = "logvar" in outputs
    if op is ANOMALY_SCORE and "contributions" in outputs:
        data["top_features"] = runtime.size
    if op is DECODE:
        data["latents"] = []
    return op.options.model_validate(data)


# -- running it ---------------------------------------------------------------------------------


async def infer(plane: DataPlane, runtime: ModelRuntime, request: InferRequest) -> InferResponse:
    """Run the request's operations (concurrently, on the models' schedulers) and gather the
    output tensors in the order asked."""
    given, ops = plan(runtime, request)
    x = request.inputs.get(given) if given else None
    jobs = [
        (
            op,
            outs,
            plane.prepare(op, runtime, options_for(op, runtime, outs, request.parameters, x)),
        )
        for op, outs in ops
    ]
    if len(jobs) == 1:  # one operation: no gather (the common case)
        answers = [await plane.run(jobs[0][2])]
    else:
        results = await asyncio.gather(
            *(plane.run(job) for _, _, job in jobs), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        answers = [r for r in results if not isinstance(r, BaseException)]
    return answer(runtime, request, [(op, outs) for op, outs, _ in jobs], answers)


def answer(
    runtime: ModelRuntime,
    request: InferRequest,
    ops: list[tuple[Operation, list[str]]],
    results: list[Fields],
) -> InferResponse:
    """The v2 answer from the operations' answer fields: the outputs in the order asked."""
    tensors: dict[str, Array] = {}
    parameters: dict[str, Any] = {}
    for (op, outs), result in zip(ops, results, strict=True):
        tensors.update(_tensors(runtime, outs, result))
        if op is SAMPLE:
            parameters["seed"] = result["seed"]
    order = request.outputs if request.outputs is not None else [n for _, o in ops for n in o]
    return InferResponse(runtime, request.id, [(n, tensors[n]) for n in order], parameters)


def _tensors(runtime: ModelRuntime, wanted: list[str], f: Fields) -> dict[str, Array]:
    out: dict[str, Array] = {}
    for name in wanted:
        if name in ("z", "mu"):
            out[name] = f["latents"]
        elif name == "logvar":
            out[name] = f["logvar"]
        elif name in ("x_hat", "denoised"):
            out[name] = np.asarray(f["outputs"], dtype=np.float32)  # binarized 0/1: as FP32
        elif name == "score":
            out[name] = f["scores"]
        elif name == "percentile":
            out[name] = f["percentiles"]
        elif name == "is_anomaly":
            out[name] = f["is_anomaly"]
        elif name == "threshold":
            out[name] = np.array([f["threshold"]], dtype=np.float64)
        elif name == "contributions":
            out[name] = contributions(runtime, f["results"])
        elif name == "probabilities":
            out[name] = f["probabilities"]
        elif name == "labels":
            out[name] = f["labels"]
        elif name == "imputed":
            out[name] = np.asarray(f["outputs"], dtype=np.float32)
        elif name == "filled":
            out[name] = f["filled"]
        elif name == "neighbor_ids":
            out[name] = f["ids"]
        elif name == "neighbor_labels":
            out[name] = f["labels"]
        elif name == "neighbor_distances":
            out[name] = f["distances"]
    return out


def contributions(runtime: ModelRuntime, results: list[dict[str, Any]]) -> Array:
    """[N, F] per-feature contributions in feature order, from the tabular results (every
    feature listed, largest first)."""
    column = {name: j for j, name in enumerate(runtime.features or [])}
    table = np.zeros((len(results), len(column)), dtype=np.float64)
    for i, row in enumerate(results):
        for part in row["contributions"]:
            table[i, column[part["feature"]]] = part["contribution"]
    return table
