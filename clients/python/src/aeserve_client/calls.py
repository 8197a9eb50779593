"""Each operation defined once: the request it sends and how its answer is read. The sync and
async clients only send them (``client.py``)."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import numpy as np

from aeserve_client.errors import ApiError
from aeserve_client.results import (
    AnomalyScores,
    Decoded,
    Denoised,
    Encoded,
    Reconstruction,
    Samples,
)

T = TypeVar("T")
NPY = "application/x-npy"
# Batches of at least this many samples go as .npy both ways (JSON numbers cost ~10x the bytes
# and the parsing); smaller ones as JSON.
NPY_MIN_SAMPLES = 64


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its 200 answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    json: Any = None
    content: bytes | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


def result(call: Call[T], response: httpx.Response) -> T:
    """The call's result, or ApiError carrying the problem document's detail."""
    if response.status_code >= 400:
        raise error(response)
    return call.read(response)


def error(response: httpx.Response) -> ApiError:
    problem: dict[str, Any] = {}
    try:
        data = response.json()
        if isinstance(data, dict):
            problem = data
    except ValueError:
        pass
    detail = (
        problem.get("detail") or problem.get("error") or response.text or response.reason_phrase
    )
    return ApiError(response.status_code, str(detail), problem)


# -- bodies --------------------------------------------------------------------------------


def _npy(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _fields(response: httpx.Response) -> dict[str, Any]:
    """The answer's fields: JSON, or a structured .npy with the rest in headers."""
    if response.headers.get("content-type", "").startswith(NPY):
        table = np.load(io.BytesIO(response.content), allow_pickle=False)
        fields: dict[str, Any] = {name: table[name] for name in table.dtype.names or ()}
        headers = response.headers
        fields["model"] = headers.get("x-model", "")
        fields["version"] = headers.get("x-model-version", "")
        for key in ("threshold", "seed"):
            if f"x-{key}" in headers:
                fields[key] = headers[f"x-{key}"]
        return fields
    data: dict[str, Any] = response.json()
    return data


def _samples_call(
    path: str,
    read: Callable[[httpx.Response], T],
    inputs: Any,
    model: str | None,
    options: dict[str, Any],
    field_name: str = "inputs",
) -> Call[T]:
    """A request whose samples are ``inputs`` (ndarray or nested lists) or ``records``."""
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(inputs, np.ndarray) and len(inputs) >= NPY_MIN_SAMPLES:
        params = {"model": model, **options} if model else options
        return Call("POST", path, read, content=_npy(inputs), params=params,
                    headers={"content-type": NPY, "accept": NPY})  # fmt: skip
    body: dict[str, Any] = {**options}
    if model is not None:
        body["model"] = model
    if inputs is not None:
        body[field_name] = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
    return Call("POST", path, read, json=body)


def _f32(value: Any) -> Any:
    return np.asarray(value, dtype=np.float32)


def _read_encoded(r: httpx.Response) -> Encoded:
    f = _fields(r)
    logvar = f.get("logvar")
    return Encoded(
        f["model"], f["version"], _f32(f["latents"]), None if logvar is None else _f32(logvar)
    )


def _read_decoded(r: httpx.Response) -> Decoded:
    f = _fields(r)
    return Decoded(f["model"], f["version"], _f32(f["outputs"]))


def _read_reconstruction(r: httpx.Response) -> Reconstruction:
    f = _fields(r)
    return Reconstruction(
        f["model"], f["version"], _f32(f["outputs"]), np.asarray(f["scores"], dtype=np.float64)
    )


def _read_denoised(r: httpx.Response) -> Denoised:
    f = _fields(r)
    return Denoised(f["model"], f["version"], _f32(f["outputs"]))


def _read_samples(r: httpx.Response) -> Samples:
    f = _fields(r)
    return Samples(f["model"], f["version"], int(f["seed"]), _f32(f["latents"]), _f32(f["outputs"]))


def _read_anomaly(r: httpx.Response) -> AnomalyScores:
    f = _fields(r)
    return AnomalyScores(
        f["model"],
        f["version"],
        np.asarray(f["scores"], dtype=np.float64),
        float(f["threshold"]),
        np.asarray(f["is_anomaly"], dtype=bool),
        np.asarray(f["percentiles"], dtype=np.float64),
        f.get("results"),
    )


# -- the operations --------------------------------------------------------------------------


def encode(inputs: Any, model: str | None = None, *, return_logvar: bool = False) -> Call[Encoded]:
    return _samples_call(
        "/encode", _read_encoded, inputs, model, {"return_logvar": return_logvar or None}
    )


def decode(latents: Any, model: str | None = None, *, binarize: bool = False) -> Call[Decoded]:
    return _samples_call(
        "/decode", _read_decoded, latents, model, {"binarize": binarize or None}, "latents"
    )


def reconstruct(
    inputs: Any, model: str | None = None, *, binarize: bool = False
) -> Call[Reconstruction]:
    return _samples_call(
        "/reconstruct", _read_reconstruction, inputs, model, {"binarize": binarize or None}
    )


def denoise(inputs: Any, model: str | None = None, *, binarize: bool = False) -> Call[Denoised]:
    return _samples_call("/denoise", _read_denoised, inputs, model, {"binarize": binarize or None})


def sample(
    n: int = 1, model: str | None = None, *, seed: int | None = None, scale: float | None = None
) -> Call[Samples]:
    return _samples_call(
        "/sample", _read_samples, None, model, {"n": n, "seed": seed, "scale": scale}
    )


def anomaly_score(
    inputs: Any = None,
    model: str | None = None,
    *,
    records: list[dict[str, Any]] | None = None,
    threshold: float | None = None,
    top_features: int | None = None,
) -> Call[AnomalyScores]:
    options = {"threshold": threshold, "top_features": top_features}
    if records is not None:
        return _samples_call("/anomaly-score", _read_anomaly, records, model, options, "records")
    return _samples_call("/anomaly-score", _read_anomaly, inputs, model, options)


def models() -> Call[dict[str, Any]]:
    return Call("GET", "/models", lambda r: r.json())


def model(name: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/models/{name}", lambda r: r.json())


def ready() -> Call[bool]:
    return Call("GET", "/readyz", lambda r: r.status_code == 200)
