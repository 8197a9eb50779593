"""The express lane (service/express.py): the same answers as the ASGI path, on a real server.

``python -m service`` runs uvicorn with :class:`ExpressProtocol`; the in-process TestClient
goes through the ASGI app only, so it is the reference. Every answer must be the same bytes,
whichever way the request went, and /metrics tells which requests the lane took.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.codecs import LARGE_BODY
from tests.live_server import live_server

from .conftest import ClientFactory, glyphs

RID = {"x-request-id": "express-test-1"}

# (path, JSON body, whether the lane answers it itself)
CASES: list[tuple[str, Any, bool]] = [
    ("/reconstruct", {"model": "glyph", "inputs": glyphs(3).tolist()}, True),
    ("/reconstruct", {"inputs": glyphs(1).tolist()}, True),  # the default model
    ("/reconstruct", {"model": "glyph", "inputs": glyphs(2).tolist(), "binarize": True}, True),
    ("/reconstruct", {"model": "pixels28", "inputs": np.full((2, 784), 0.25).tolist()}, True),
    (
        "/reconstruct",
        {"model": "glyph", "inputs": glyphs(1).tolist(), "output_format": "png"},
        True,
    ),
    ("/anomaly-score", {"model": "glyph", "inputs": glyphs(2).tolist()}, True),
    ("/anomaly-score", {"model": "glyph", "inputs": glyphs(2).tolist(), "threshold": 0.5}, True),
    (
        "/anomaly-score",
        {
            "model": "table",
            "records": [
                {"id": "a", "alpha": 10.0, "beta": -2.0, "gamma": 0.5, "delta": 100.0},
                {"alpha": 30.0, "beta": 1.0, "gamma": 0.0, "delta": 10.0},
            ],
            "top_features": 2,
        },
        True,
    ),
    ("/anomaly-score", {"model": "table", "inputs": [[1, 2, 3, 4]], "ids": [7]}, True),
    # Errors: the lane hands them to the full path, which answers problem+json.
    ("/reconstruct", {"model": "nope", "inputs": glyphs(1).tolist()}, False),
    ("/reconstruct", {"model": "glyph", "inputs": [[0.5] * 10]}, False),
    ("/reconstruct", {"model": "glyph", "inputs": [["a"] * 35]}, False),
    ("/reconstruct", {"model": "glyph", "inputs": glyphs(1).tolist(), "extra": 1}, False),
    ("/reconstruct", {"model": "glyph", "inputs": glyphs(1).tolist(), "binarize": "x"}, False),
    ("/reconstruct", {"model": "pixels28", "inputs": np.full((1, 784), 9.0).tolist()}, False),
    ("/reconstruct", [1, 2], False),
    ("/reconstruct", "", False),
    ("/anomaly-score", {"model": "table", "records": [{"alpha": 1.0}]}, False),
    ("/anomaly-score", {"model": "glyph", "inputs": glyphs(1).tolist(), "top_features": 2}, False),
    ("/anomaly-score", {"model": "table", "inputs": [[1e39, 2, 3, 4]]}, False),
]


@pytest.fixture(scope="module")
def server(zoo_dir: Path) -> Iterator[str]:
    with live_server(zoo_dir, AESERVE_DEFAULT_MODEL="glyph") as url:
        yield url


def express_count(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    return sum(
        float(v) for v in re.findall(r"^aeserve_express_requests_total\{.*\} (\S+)$", text, re.M)
    )


def answer(r: httpx.Response) -> tuple[int, str, bytes]:
    return r.status_code, r.headers["content-type"], r.content


def raw_body(body: Any) -> bytes:
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


@pytest.mark.slow
def test_answers_are_the_same_bytes_as_the_asgi_path(
    server: str, make_client: ClientFactory
) -> None:
    headers = {**RID, "content-type": "application/json"}
    with make_client() as local, httpx.Client(base_url=server, timeout=10) as http:
        for path, body, taken in CASES:
            before = express_count(http)
            live = http.post(path, content=raw_body(body), headers=headers)
            want = local.post(path, content=raw_body(body), headers=headers)
            assert answer(live) == answer(want), (path, body)
            assert live.headers["x-request-id"] == RID["x-request-id"]
            assert express_count(http) - before == (1 if taken else 0), (path, body)


@pytest.mark.slow
def test_requests_the_lane_does_not_take_go_the_full_path(
    server: str, make_client: ClientFactory
) -> None:
    body = raw_body({"model": "glyph", "inputs": glyphs(1).tolist()})
    json_ct = {"content-type": "application/json"}
    variants: list[tuple[str, dict[str, str], Any]] = [
        ("/reconstruct?model=glyph", json_ct, body),  # a query string
        ("/reconstruct", {**json_ct, "accept": "application/x-npy"}, body),
        ("/reconstruct", {"content-type": "text/plain"}, body),  # 415
        ("/reconstruct", json_ct, iter([body[:10], body[10:]])),  # chunked
        ("/encode", json_ct, body),  # not an express path
    ]
    with make_client() as local, httpx.Client(base_url=server, timeout=10) as http:
        for path, headers, content in variants:
            before = express_count(http)
            live = http.post(path, content=content, headers={**RID, **headers})
            if not isinstance(content, bytes):
                content = body
            want = local.post(path, content=content, headers={**RID, **headers})
            assert answer(live) == answer(want), (path, headers)
            assert express_count(http) == before, (path, headers)


@pytest.mark.slow
def test_a_body_above_uvicorns_64_kb_read_pause_is_read_whole(server: str) -> None:
    x = np.random.default_rng(0).random((25, 784)).round(6)  # ~180 KB of JSON numbers
    body = raw_body({"model": "pixels28", "inputs": x.tolist()})
    assert 64 * 1024 < len(body) <= LARGE_BODY
    with httpx.Client(base_url=server, timeout=10) as http:
        before = express_count(http)
        r = http.post("/reconstruct", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200 and len(r.json()["scores"]) == 25
        assert express_count(http) - before == 1


def read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``n`` HTTP/1.1 responses (content-length framed) from ``sock``, in order."""
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        while len(buf) < length:
            chunk = sock.recv(65536)
            assert chunk
            buf += chunk
        out.append((status, headers, buf[:length]))
        buf = buf[length:]
    return out


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


@pytest.mark.slow
def test_pipelined_requests_are_answered_in_order(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    one = raw_body({"model": "glyph", "inputs": glyphs(1, seed=1).tolist()})
    two = raw_body({"model": "glyph", "inputs": glyphs(2, seed=2).tolist()})
    bad = raw_body({"model": "nope", "inputs": glyphs(1).tolist()})
    payload = (
        post("/reconstruct", one)
        + b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n"
        + post("/reconstruct", bad)
        + post("/anomaly-score", two)
        + post("/reconstruct", one, "connection: close\r\n")
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)  # all five in one write
        got = read_responses(sock, 5)
        assert sock.recv(1) == b""  # closed after the last, as asked
    assert [status for status, _, _ in got] == [200, 200, 404, 200, 200]
    assert len(json.loads(got[0][2])["scores"]) == 1
    assert json.loads(got[1][2]) == {"status": "ok"}
    assert got[2][1]["content-type"] == "application/problem+json"
    assert len(json.loads(got[3][2])["scores"]) == 2
    assert got[4][2] == got[0][2] and got[4][1]["connection"] == "close"


@pytest.mark.slow
def test_a_client_that_leaves_early_does_not_disturb_the_others(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    body = raw_body({"model": "pixels28", "inputs": np.full((64, 784), 0.5).tolist()})
    for _ in range(5):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(post("/reconstruct", body))
    with httpx.Client(base_url=server, timeout=10) as http:
        r = http.post("/reconstruct", json={"model": "glyph", "inputs": glyphs(1).tolist()})
        assert r.status_code == 200
