"""Writing answers: JSON by orjson straight from numpy, or one structured .npy array."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.codecs.npy import NPY, npy_table
from service.runtime.model import ModelRuntime

JSON = "application/json"
# Answers above this many numbers are serialised in the thread pool; smaller ones on the event
# loop (a thread hop costs more than the work).
LARGE_ANSWER = 64 * 1024


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response written by orjson (numpy arrays serialised natively)."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type=JSON,
    )


async def json_answer(runtime: ModelRuntime, fields: dict[str, Any]) -> bytes:
    """The JSON answer: ``model``, ``version``, then ``fields`` (large ones written in a
    thread)."""
    body = {"model": runtime.name, "version": runtime.version, **fields}
    if sum(v.size for v in fields.values() if isinstance(v, np.ndarray)) > LARGE_ANSWER:
        data: bytes = await run_in_threadpool(orjson.dumps, body, None, orjson.OPT_SERIALIZE_NUMPY)
        return data
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def npy_response(runtime: ModelRuntime, fields: dict[str, Any]) -> Response:
    """Per-sample arrays (leading axis N) as fields of one structured .npy; the rest in headers.

    ``np.load(io.BytesIO(body))["outputs"]`` is then the [N, *shape] outputs.
    """
    body, headers = npy_parts(runtime, fields)
    return Response(body, media_type=NPY, headers=headers)


def npy_parts(runtime: ModelRuntime, fields: dict[str, Any]) -> tuple[memoryview, dict[str, str]]:
    """The .npy answer's body and its ``x-`` headers (the ASGI path's and the express lane's)."""
    headers = {"x-model": runtime.name, "x-model-version": runtime.version}
    columns: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            columns[key] = value
        elif isinstance(value, list) and value and _texts(value):
            columns[key] = np.asarray(value)  # label names per sample: a unicode column
        elif isinstance(value, str | int | float | np.generic):
            headers[f"x-{key.replace('_', '-')}"] = str(value)
        # Anything else (a tabular answer's per-record ``results``, with their contributions)
        # fits neither a numeric table nor a header: JSON answers carry it.
    return npy_table(columns), headers


def _texts(value: list[Any]) -> bool:
    """Strings per sample (``label_names``), or per sample a list of them (``/neighbors``)."""
    first = value[0]
    if isinstance(first, list):
        return all(isinstance(v, list) and len(v) == len(first) for v in value) and all(
            isinstance(t, str) for v in value for t in v
        )
    return all(isinstance(v, str) for v in value)
