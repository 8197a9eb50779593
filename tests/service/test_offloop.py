"""Which requests are converted in the thread pool, and which are not worth the hop.

Large JSON bodies (their numbers become an array) and images go to the thread pool so they
cannot stall the loop (issue 18); a .npy body is an array already, and a v2 request's binary
buffers become arrays without a copy: handing those to a thread and back costs more than
checking their shape (issue 12's .npy figure).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
import pytest

from service.codecs.arrays import LARGE_BODY
from service.http.routes import inference
from service.http.v2 import routes as v2_routes

from .conftest import glyphs


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions the inference routes hand to the thread pool."""
    seen: list[str] = []
    for module in (inference, v2_routes):
        real = module.run_in_threadpool

        async def counted(fn: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            seen.append(getattr(fn, "__name__", repr(fn)))
            return await _real(fn, *args, **kwargs)

        monkeypatch.setattr(module, "run_in_threadpool", counted)
    return seen


def test_a_large_npy_body_is_prepared_on_the_loop(make_client: Any, hops: list[str]) -> None:
    x = glyphs(2000)
    body = _npy(x)
    assert len(body) > LARGE_BODY
    with make_client(max_batch=4096) as client:
        r = client.post(
            "/reconstruct?model=glyph", content=body, headers={"content-type": "application/x-npy"}
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["outputs"]) == 2000
    assert hops == []


def test_a_large_json_body_is_still_converted_in_the_thread_pool(
    make_client: Any, hops: list[str]
) -> None:
    body = orjson.dumps({"model": "glyph", "inputs": glyphs(2000).tolist()})
    assert len(body) > LARGE_BODY
    with make_client(max_batch=4096) as client:
        r = client.post("/reconstruct", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert hops  # parsed and converted off the loop


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 900_000, 900_000),  # JSON only: the whole body
        ("120", 900_000, 120),  # the JSON part of a binary request
        ("900001", 900_000, 900_000),  # beyond the body: wire.read refuses it
        ("-5", 900_000, 900_000),
        ("abc", 900_000, 900_000),
    ],
)
def test_the_json_part_of_a_v2_body(header: str | None, size: int, expected: int) -> None:
    assert v2_routes._json_part(header, size) == expected
