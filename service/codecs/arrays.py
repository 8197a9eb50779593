"""JSON numbers and tabular records -> numpy, in one call each.

Large arrays are parsed once with orjson and converted by numpy in one call; shape, dtype and
finiteness are checked on the ndarray (see ModelRuntime.to_model_space), never number by number.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from service.runtime.columns import ColumnError
from service.runtime.errors import BadRequest, InvalidInput, UnsupportedOperation, clip
from service.runtime.model import ModelRuntime
from service.runtime.sessions import F32

# Bodies above this many bytes are converted in the thread pool by the transports; smaller ones
# on the event loop (a thread hop costs more than the work).
LARGE_BODY = 256 * 1024


def json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # NaN / Infinity literals (Python's json.dumps writes them) and numbers beyond float64
        # are not JSON, but the client's mistake is a value: parse them so that the finiteness
        # checks answer 422 naming the field. Only this error path pays for the slow parser.
        try:
            data = json.loads(body, parse_int=_json_int)
            # json accepts lone UTF-16 surrogates ("\ud800"), which are no text: they could
            # not be written back (e.g. in an error naming the model) and would give a 500.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
            data = None
        if not isinstance(data, dict):
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _json_int(text: str) -> int | float:
    """An integer literal; one too long for Python's int() (4,300 digits) is beyond every
    float range anyway: infinity, which the finiteness checks refuse with 422."""
    return int(text) if len(text) <= 4000 else float("inf")


# -- JSON arrays ---------------------------------------------------------------------------


def array_from_json(value: Any, what: str) -> F32:
    """Nested JSON numbers (or a decoded .npy array) -> float32 ndarray, in one numpy call."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InvalidInput(f"{what} must be a numeric array, got dtype {value.dtype}")
        with np.errstate(over="ignore"):
            cast: F32 = value.astype(np.float32, copy=False)
        return cast
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be an array of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{what} is ragged or mixes arrays and numbers; every sample must have the same shape"
        ) from None
    if arr.dtype.kind not in "iuf":
        raise InvalidInput(
            f"{what} must contain only numbers (found strings, booleans, nulls or objects)"
        )
    with np.errstate(over="ignore"):  # beyond float32 range -> inf, reported as non-finite
        out: F32 = arr.astype(np.float32)
    return out


def _record_features(runtime: ModelRuntime, records: Any) -> list[str]:
    """The model's feature names, once ``records`` is a list of a batch's size for a tabular
    model (UnsupportedOperation, InvalidInput otherwise)."""
    features = runtime.features
    if features is None:
        raise UnsupportedOperation(
            f"model '{runtime.name}' takes {runtime.kind} inputs; records are for tabular models"
        )
    if not isinstance(records, list):
        raise InvalidInput("records must be an array of objects keyed by feature name")
    runtime.check_batch(len(records), "records")
    return features


def records_to_array(runtime: ModelRuntime, records: Any) -> F32:
    """Tabular records (objects keyed by feature name, raw values) -> [N, n_features]."""
    features = _record_features(runtime, records)
    if runtime.columns is not None:  # raw columns: categories and missing cells (columns.py)
        try:
            return to_float32(runtime.columns.encode(records))
        except ColumnError as exc:
            raise InvalidInput(str(exc)) from None
    rows = record_rows(runtime, records)
    if rows is not None:
        try:
            out = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the per-value loop makes it inf
            pass
        else:
            return to_float32(out)
    return _records_one_by_one(runtime, features, records)


def record_rows(runtime: ModelRuntime, records: list[Any]) -> list[list[Any]] | None:
    """The common case in one pass: every record has exactly the features, every value is a
    number (bool is not: type() is exact); the rows in feature order. None for anything else
    (then :func:`records_to_array`'s checks name the problem)."""
    if runtime.columns is not None and not runtime.columns.plain:
        return None  # categorical or indicator features: records_to_array encodes them
    keys, features = runtime.feature_set, runtime.features or []
    rows = []
    for record in records:
        if type(record) is not dict or record.keys() != keys:
            return None
        row = [record[f] for f in features]
        if not _NUMBERS.issuperset(map(type, row)):
            return None
        rows.append(row)
    return rows


_NUMBERS = frozenset((int, float))


def _records_one_by_one(runtime: ModelRuntime, features: list[str], records: list[Any]) -> F32:
    index = {name: i for i, name in enumerate(features)}
    out = np.empty((len(records), len(features)), dtype=np.float64)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"records[{i}] must be an object keyed by feature name")
        unknown = [k for k in record if k not in index]
        if unknown:
            raise InvalidInput(
                f"records[{i}] has unknown feature(s) {unknown}; model '{runtime.name}' "
                f"expects {features}"
            )
        missing = [f for f in features if f not in record]
        if missing:
            raise InvalidInput(f"records[{i}] is missing feature(s) {missing}")
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"records[{i}].{key} must be a number, got {value!r:.40}")
            try:
                out[i, index[key]] = value
            except OverflowError:  # an integer beyond float64: reported as non-finite later
                out[i, index[key]] = np.inf
    return to_float32(out)


def to_float32(out: npt.NDArray[np.float64]) -> F32:
    with np.errstate(over="ignore"):  # beyond float32 -> inf, reported as non-finite
        result: F32 = out.astype(np.float32)
    return result


# -- inputs with gaps (/impute) ----------------------------------------------------------------


def array_with_gaps(value: Any, what: str) -> F32:
    """:func:`array_from_json`, where a JSON null (or a NaN of a .npy body) is a value to fill:
    it becomes NaN. Strings, booleans and objects are still refused."""
    if not isinstance(value, list):
        return array_from_json(value, what)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = None
    if arr is not None and arr.dtype.kind in "iuf":
        return array_from_json(value, what)
    if arr is None or arr.dtype != object:
        raise InvalidInput(
            f"{what} must contain only numbers and nulls (a ragged array, strings or booleans "
            "were found)"
        )
    flat = arr.reshape(-1)
    if not all(v is None or type(v) in _NUMBERS for v in flat.tolist()):
        raise InvalidInput(
            f"{what} must contain only numbers and nulls, and every sample the same shape"
        )
    out = np.array([_gap_value(v) for v in flat.tolist()], dtype=np.float64)
    return to_float32(out).reshape(arr.shape)


def _gap_value(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except OverflowError:  # an integer beyond float64: refused as non-finite later
        return math.inf


def records_with_gaps(runtime: ModelRuntime, records: Any) -> F32:
    """Tabular records where an absent feature or a null is a value to fill (NaN); the other
    values must be numbers. [N, n_features] in feature order."""
    features = _record_features(runtime, records)
    index = {name: i for i, name in enumerate(features)}
    out = np.full((len(records), len(features)), np.nan, dtype=np.float64)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"records[{i}] must be an object keyed by feature name")
        unknown = [k for k in record if k not in index]
        if unknown:
            raise InvalidInput(
                f"records[{i}] has unknown feature(s) {[clip(k) for k in unknown[:20]]}; model "
                f"'{runtime.name}' expects {features}"
            )
        for key, value in record.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(
                    f"records[{i}].{key} must be a number or null (to fill), got {value!r:.40}"
                )
            try:
                out[i, index[key]] = value
            except OverflowError:  # an integer beyond float64: refused as non-finite later
                out[i, index[key]] = np.inf
    return to_float32(out)


def mask_from_json(value: Any, shape: tuple[int, ...], size: int) -> npt.NDArray[np.bool_]:
    """A ``mask`` of booleans or 0/1 for inputs of ``shape`` [N, ...]: [N, ...] or [N, size]
    flags, True (1) for a value to fill."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, list):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):
            raise InvalidInput("mask is ragged; send one flag per input value") from None
    else:
        raise InvalidInput(f"mask must be an array of booleans or 0/1, got {type(value).__name__}")
    if arr.dtype.kind == "b":
        flags = arr
    elif arr.dtype.kind in "iuf" and np.isin(arr, (0, 1)).all():
        flags = arr != 0
    else:
        raise InvalidInput("mask must hold only booleans or 0/1 (true or 1: fill this value)")
    n = shape[0]
    if flags.shape == shape:
        return flags
    if flags.ndim == 2 and flags.shape == (n, size):
        return flags.reshape(shape)
    raise InvalidInput(
        f"mask has shape {list(flags.shape)}; the inputs have shape {list(shape)}: send one "
        f"flag per value, [{', '.join(map(str, shape))}] or [{n}, {size}]"
    )
