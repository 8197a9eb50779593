"""Tabular answers of ``/anomaly-score``: row ids, records, per-row results with contributions.

A tabular request sends ``records`` (objects of raw values keyed by feature name, each with an
optional ``id``) or ``inputs`` (raw rows in the manifest's feature order, with optional ``ids``).
The answer keeps the column arrays every model gets (``scores``, ``is_anomaly``, ...) and adds
``results``: one object per row with its id, score, percentile, threshold, flag and the
``top_features`` largest per-feature contributions (the feature's part of the score, its share,
the raw value and the reconstruction), so an analyst can see why a row was flagged.

Contributions: feature j's part of a row's score is ``(x_j - x_hat_j)**2 / n_features`` in the
standardised space, so the parts of all features sum to the score (``mse``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.runtime.errors import InvalidInput, UnsupportedOperation
from service.runtime.model import Explained, ModelRuntime
from service.runtime.sessions import F32

DEFAULT_TOP = 3
ID_KEY = "id"
Id = str | int | None


def check_options(runtime: ModelRuntime, options: Any) -> None:
    """``ids`` and ``top_features`` only mean something for tabular models."""
    if runtime.kind == "tabular":
        return
    for field in ("ids", "top_features"):
        if options.__dict__.get(field) is not None:
            raise UnsupportedOperation(
                f"'{field}' is for tabular models; model '{runtime.name}' takes {runtime.kind} "
                "inputs"
            )


def check_id(value: Any, where: str) -> Id:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{where} must be a string or an integer, got {value!r:.40}")
    return value


def split_ids(runtime: ModelRuntime, records: Any) -> tuple[Any, list[Id] | None]:
    """Take the ``id`` key out of each record (unless the model has a feature named ``id``).

    Returns the records without ids and the ids (None when no record carries one).
    """
    if not isinstance(records, list) or ID_KEY in runtime.feature_set:
        return records, None
    ids: list[Id] = []
    out: list[Any] = []
    if not any(type(record) is dict and ID_KEY in record for record in records):
        return records, None  # the common case: no ids, records untouched
    for i, record in enumerate(records):
        if isinstance(record, dict) and ID_KEY in record:
            record = dict(record)
            ids.append(check_id(record.pop(ID_KEY), f"records[{i}].{ID_KEY}"))
        else:
            ids.append(None)
        out.append(record)
    return out, ids if any(v is not None for v in ids) else None


def check_finite(runtime: ModelRuntime, x: F32, records: bool) -> None:
    """Name the first non-finite value by row and feature (``records[3].amount``)."""
    finite = np.isfinite(x)
    if finite.all():
        return
    features = runtime.features or []
    row, col = (int(v) for v in np.argwhere(~finite)[0][:2])
    name = features[col] if col < len(features) else str(col)
    where = f"records[{row}].{name}" if records else f"inputs[{row}][{col}] (feature '{name}')"
    raise InvalidInput(
        f"{where} is not a finite number (NaN, Infinity or beyond float32); tabular values "
        "may be as extreme as you like, but finite"
    )


def top_count(runtime: ModelRuntime, requested: int | None) -> int:
    n = runtime.size
    if requested is None:
        return min(DEFAULT_TOP, n)
    if requested > n:
        raise InvalidInput(f"top_features is {requested}; model '{runtime.name}' has {n} features")
    return requested


def results(
    runtime: ModelRuntime, explained: Explained, ids: list[Id] | None, top: int
) -> list[dict[str, Any]]:
    """One JSON-ready object per row, contributions largest first.

    One argsort for the order (stable: ties keep feature order), then plain lists: per-element
    numpy indexing costs more than the whole row in Python.
    """
    features = runtime.features or []
    res = explained.result
    parts = explained.contributions
    order = np.argsort(-parts, axis=1, kind="stable")[:, :top].tolist()
    all_parts = parts.tolist()
    all_values = explained.inputs.tolist()
    all_recon = explained.outputs.tolist()
    scores = res.scores.tolist()
    percentiles = res.percentiles.tolist()
    flags = res.is_anomaly.tolist()
    threshold = res.threshold
    out = []
    for i, cols in enumerate(order):
        score = scores[i]
        row_parts, values, recon = all_parts[i], all_values[i], all_recon[i]
        contributions = []
        for c in cols:
            p = row_parts[c]
            contributions.append(
                {
                    "feature": features[c],
                    "contribution": p,
                    "share": p / score if score > 0 else 0.0,
                    "value": values[c],
                    "reconstruction": recon[c],
                }
            )
        out.append(
            {
                "id": ids[i] if ids is not None else None,
                "score": score,
                "percentile": percentiles[i],
                "threshold": threshold,
                "is_anomaly": flags[i],
                "contributions": contributions,
            }
        )
    return out
