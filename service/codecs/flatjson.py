"""Large flat JSON bodies straight into numpy with simdjson.

``{"model"?: ..., "inputs": [[numbers...], ...]}`` with rows of one flat width is parsed into
float64 ``[N, width]`` without building Python numbers: exactly the values orjson and numpy
give (both parse numbers correctly rounded) as long as every value is within +-2**53, which
:func:`exact32` checks (for a whole batch at once) before casting to float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import simdjson

from service.runtime.sessions import F32

F64 = npt.NDArray[np.float64]

_PARSER = simdjson.Parser()
_FLAT_KEYS = frozenset(("model", "inputs"))
_EXACT = float(2**53)  # integers beyond: numpy's int64 -> float32 may round differently
# Bodies above this size try simdjson first (below, orjson is as fast).
FLAT_MIN = 2048


def flat_body(body: bytes | bytearray) -> tuple[Any, F64] | None:
    """``(model, rows)`` of a flat body, or None for any other body.

    The structure is checked strictly: N rows, each an array of ``width`` numbers and no other
    array anywhere in the body (it holds N + 1 ``[``); ``model`` absent or a string; no other
    key (a repeated key: orjson keeps the last, simdjson finds the first).
    """
    doc = inputs = row = None
    try:
        doc = _PARSER.parse(body)
        if not isinstance(doc, simdjson.Object):
            return None
        keys = list(doc.keys())
        if keys != ["inputs"] and not (len(keys) == 2 and set(keys) == _FLAT_KEYS):
            return None
        model = doc["model"] if "model" in keys else None  # a miss: a C++ exception, ~3 us
        if model is not None and type(model) is not str:
            return None
        inputs = doc["inputs"]
        if not isinstance(inputs, simdjson.Array):
            return None
        n = len(inputs)
        if n == 0 or _brackets(body, n + 2) != n + 1:
            return None
        flat = np.frombuffer(inputs.as_buffer(of_type="d"), dtype=np.float64)
        width = flat.size // n
        if width == 0 or flat.size != n * width:
            return None
        for row in inputs:
            if not isinstance(row, simdjson.Array) or len(row) != width:
                return None
    except (ValueError, TypeError, RuntimeError, KeyError):
        return None
    finally:
        doc = inputs = row = None  # the parser is reused: its proxies must be gone
    return model, flat.reshape(n, width)


def _brackets(body: bytes | bytearray, most: int) -> int:
    """How many ``[`` the body holds, counting no further than ``most`` (memchr, not a scan of
    every byte in Python's count)."""
    find, at, count = body.find, -1, 0
    while count < most:
        at = find(b"[", at + 1)
        if at < 0:
            break
        count += 1
    return count


def exact32(rows: F64) -> F32 | None:
    """float64 rows as float32 (numpy's cast, as for JSON numbers), or None when some value
    is beyond +-2**53 (then the orjson path, which rounds such integers its own way, decides)."""
    if not (rows.min() > -_EXACT and rows.max() < _EXACT):
        return None
    x: F32 = rows.astype(np.float32)
    return x
