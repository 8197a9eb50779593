"""The lean front (service/fastpath.py) and FastAPI's own path give identical answers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service.app import FAST_PATHS

from .conftest import FEATURES, ClientFactory, glyphs

JSON = "application/json"

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
    # Over the limit without a Content-Length (chunked): the streaming check answers 413.
    (
        "/reconstruct",
        {"chunks": [b"x" * 3000, b"x" * 3000], "headers": {"content-type": JSON}},
    ),
    # A broken multipart body: Starlette raises its HTTPException (400), mapped by the app.
    (
        "/reconstruct",
        {"content": b"--b\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
    ),
    # The client's request id is kept (answers() compares it).
    ("/encode", {"json": {"inputs": glyphs(1).tolist()}, "headers": {"x-request-id": "abc-1"}}),
]


def answers(client: Any) -> list[tuple[int, str, Any, str, str]]:
    out = []
    for path, kwargs in REQUESTS:
        if "chunks" in kwargs:  # a fresh iterator per request: sent without Content-Length
            kwargs = {**kwargs, "content": iter(kwargs["chunks"])}
            del kwargs["chunks"]
        r = client.post(path, **kwargs)
        body = r.json()
        rid = r.headers["x-request-id"]
        if isinstance(body, dict) and "request_id" in body:
            assert body.pop("request_id") == rid
        client_id = kwargs.get("headers", {}).get("x-request-id")
        out.append(
            (
                r.status_code,
                r.headers["content-type"],
                body,
                r.headers.get("retry-after", ""),
                rid if client_id else "",
            )
        )
    out.append((client.get("/reconstruct").status_code, "", None, "", ""))  # 405 by FastAPI
    return out


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    """aeserve_requests_total by (endpoint, model, status) from a /metrics page (without
    /readyz, polled a varying number of times while the models load)."""
    out = {}
    for line in text.splitlines():
        match = re.match(
            r'aeserve_requests_total\{endpoint="([^"]*)",model="([^"]*)",status="(\d+)"\} (\S+)',
            line,
        )
        if match and match.group(1) != "/readyz":
            out[match.group(1, 2, 3)] = float(match.group(4))
    return out


def test_fast_path_and_fastapi_give_identical_answers(make_client: ClientFactory) -> None:
    results = {}
    metrics = {}
    for fast in (True, False):
        with make_client(fast_path=fast, max_body_bytes=4096) as client:
            results[fast] = answers(client)
            metrics[fast] = request_counts(client.get("/metrics").text)
    assert results[True] == results[False]
    statuses = [s for s, *_ in results[True]]
    assert statuses == [200] * 5 + [422, 200, 200, 422, 422, 404, 400, 415, 422, 422, 422] + [
        413,
        413,
        400,
        200,
        405,
    ]
    assert results[True][-2][-1] == "abc-1"
    assert metrics[True] == metrics[False]
    assert metrics[True][("/reconstruct", "glyph", "200")] == 1.0
    assert metrics[True][("/reconstruct", "", "413")] == 1.0  # chunked: found while reading
    assert metrics[True][("unmatched", "", "413")] == 1.0  # Content-Length: before routing


def served_by_front(client: Any) -> list[str]:
    """Wraps the app's front so that the test sees which paths it served."""
    front: Any = client.app.front
    seen: list[str] = []
    serve = front.serve

    async def counting(target: Any, scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await serve(target, scope, receive, send)

    front.serve = counting
    return seen


def test_every_inference_route_is_on_the_fast_path(make_client: ClientFactory) -> None:
    with make_client() as client:
        assert sorted(client.app.front.targets) == sorted(FAST_PATHS)  # type: ignore[attr-defined]
        seen = served_by_front(client)
        assert client.post("/encode", json={"inputs": glyphs(1).tolist()}).status_code == 200
        assert client.get("/models").status_code == 200  # FastAPI's
        assert client.get("/reconstruct").status_code == 405  # FastAPI's
        assert seen == ["/encode"]


def test_fast_path_off_leaves_everything_to_fastapi(make_client: ClientFactory) -> None:
    with make_client(fast_path=False) as client:
        assert client.app.front is None  # type: ignore[attr-defined]


def test_cors_requests_go_through_the_cors_middleware(make_client: ClientFactory) -> None:
    origin = "https://example.org"
    with make_client(cors_origins=[origin]) as client:
        seen = served_by_front(client)
        body = {"inputs": glyphs(1).tolist()}
        r = client.post("/reconstruct", json=body, headers={"origin": origin})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert "x-request-id" in r.headers["access-control-expose-headers"]
        assert client.post("/reconstruct", json=body).status_code == 200  # no Origin: the front
        assert seen == ["/reconstruct"]


def test_an_unexpected_error_is_the_same_500_on_both_paths(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from service.runtime import ModelRuntime

    def broken(self: Any, *args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ModelRuntime, "reconstruct_async", broken)
    answers = {}
    for fast in (True, False):
        with make_client(fast_path=fast) as client:
            r = client.post(
                "/reconstruct",
                json={"inputs": glyphs(1).tolist()},
                headers={"x-request-id": "req-500"},
            )
            body = r.json()
            assert body["request_id"] == r.headers["x-request-id"] == "req-500"
            answers[fast] = (r.status_code, r.headers["content-type"], body)
            counts = request_counts(client.get("/metrics").text)
            assert counts[("/reconstruct", "glyph", "500")] == 1.0
    assert answers[True] == answers[False]
    assert answers[True][0] == 500
    assert answers[True][1] == "application/problem+json"
    assert "internal error" in answers[True][2]["detail"]
    assert "boom" in caplog.text  # logged with the traceback


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


def test_read_body_joins_chunks_and_raises_what_request_body_raises() -> None:
    """The front's body reader: the whole body, 413 past the limit, ClientDisconnect."""
    import asyncio

    from starlette.requests import ClientDisconnect

    from service.errors import PayloadTooLarge
    from service.middleware import read_body

    def receiver(*messages: dict[str, Any]) -> Any:
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            return queue.pop(0)

        return receive

    def chunk(body: bytes, more: bool) -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": more}

    one = asyncio.run(read_body(receiver(chunk(b"abc", False)), 10))
    assert one == b"abc"
    parts = receiver(chunk(b"ab", True), chunk(b"", True), chunk(b"cd", False))
    assert asyncio.run(read_body(parts, 10)) == b"abcd"
    assert asyncio.run(read_body(receiver({"type": "http.request"}), 10)) == b""
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(receiver(chunk(b"x" * 6, True), chunk(b"x" * 6, False)), 10))
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_body(receiver(chunk(b"ab", True), {"type": "http.disconnect"}), 10))
