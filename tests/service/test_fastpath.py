"""The lean dispatcher (service/fastpath.py) and FastAPI's routing give identical answers."""

from __future__ import annotations

from typing import Any

import pytest

from service.app import FAST_PATHS

from .conftest import FEATURES, ClientFactory, glyphs

REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/reconstruct", {"json": {"inputs": glyphs(2).tolist(), "binarize": True}}),
    ("/reconstruct", {"json": {"model": "pixels28", "inputs": [[0.5] * 784]}}),
    ("/anomaly-score", {"json": {"model": "table", "records": [dict.fromkeys(FEATURES, 1.0)]}}),
    ("/anomaly-score", {"json": {"model": "table", "inputs": [[1.0, 2.0, 3.0, 4.0]]}}),
    (
        "/encode",
        {"json": {"model": "glyph-vae", "inputs": glyphs(1).tolist(), "return_logvar": True}},
    ),
    ("/encode", {"json": {"inputs": glyphs(1).tolist(), "return_logvar": True}}),  # 422: not a VAE
    ("/decode", {"json": {"model": "glyph-vae", "latents": [[0.0, 1.0, 0.0, 0.0]]}}),
    ("/sample", {"json": {"n": 2, "seed": 3}}),
    ("/sample", {"json": {"n": 100000}}),  # 422
    ("/denoise", {"json": {"inputs": glyphs(1).tolist()}}),  # 422: not a denoiser
    ("/reconstruct", {"json": {"model": "nope", "inputs": [[0]]}}),  # 404
    ("/reconstruct", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("/reconstruct", {"content": b"x", "headers": {"content-type": "text/plain"}}),  # 415
    (
        "/reconstruct",
        {"content": b'{"inputs": [[NaN]]}', "headers": {"content-type": "application/json"}},
    ),
    ("/reconstruct", {"json": {"inputs": [[2.0] * 35]}}),  # 422 out of range
    ("/reconstruct", {"json": {"inputs": glyphs(1).tolist(), "extra": 1}}),  # 422 unknown field
    ("/reconstruct", {"content": b"x" * 5000, "headers": {"content-type": "application/json"}}),
]


def answers(client: Any) -> list[tuple[int, str, Any, str]]:
    out = []
    for path, kwargs in REQUESTS:
        r = client.post(path, **kwargs)
        body = r.json()
        if isinstance(body, dict):
            body.pop("request_id", None)
        out.append(
            (r.status_code, r.headers["content-type"], body, r.headers.get("retry-after", ""))
        )
    out.append((client.get("/reconstruct").status_code, "", None, ""))  # 405 by FastAPI
    return out


def test_fast_path_and_fastapi_give_identical_answers(make_client: ClientFactory) -> None:
    results = {}
    for fast in (True, False):
        with make_client(fast_path=fast, max_body_bytes=4096) as client:
            results[fast] = answers(client)
            metrics = client.get("/metrics").text
            assert (
                'aeserve_requests_total{endpoint="/reconstruct",model="glyph",status="200"} 1.0'
                in metrics
            )
    assert results[True] == results[False]
    statuses = [s for s, *_ in results[True]]
    assert statuses == [200] * 5 + [422, 200, 200, 422, 422, 404, 400, 415, 422, 422, 422, 413, 405]


def test_every_inference_route_is_on_the_fast_path(make_client: ClientFactory) -> None:
    from service.fastpath import FastPathMiddleware

    with make_client() as client:
        stack: Any = client.app.middleware_stack  # type: ignore[attr-defined]
        while stack is not None and not isinstance(stack, FastPathMiddleware):
            stack = getattr(stack, "app", None)
        assert stack is not None, "FastPathMiddleware is not in the middleware stack"
        assert sorted(stack.targets) == sorted(FAST_PATHS)


@pytest.mark.parametrize("fast", [True, False])
def test_not_ready_is_503_on_both_paths(make_client: ClientFactory, fast: bool) -> None:
    import threading

    from service import repository

    gate = threading.Event()
    original = repository.ModelRepository.load

    def slow(*args: Any, **kwargs: Any) -> Any:
        gate.wait(5)
        return original(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(repository.ModelRepository, "load", slow)
    try:
        with make_client(ready=False, fast_path=fast) as client:
            r = client.post("/reconstruct", json={"inputs": glyphs(1).tolist()})
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            gate.set()
    finally:
        gate.set()
        mp.undo()
