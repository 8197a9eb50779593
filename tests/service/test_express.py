"""The express lane (service/http/express.py): the same answers as the ASGI path, on a real
server.

``python -m service`` runs uvicorn with :class:`ExpressProtocol`; the in-process TestClient
goes through the ASGI app only, so it is the reference. Every answer must be the same bytes,
whichever way the request went, and /metrics tells which requests the lane took.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.codecs.arrays import LARGE_BODY
from service.dataplane.operations import RECONSTRUCT, Job, batch_inputs
from service.http import express
from tests.live_server import live_server

from .conftest import ClientFactory, glyphs

RID = {"x-request-id": "express-test-1"}
EMPTY = np.empty((0,), dtype=np.float32)

# (path, JSON body, whether the lane answers it itself)
CASES: list[tuple[str, Any, bool]] = [
    ("/reconstruct", {"model": "glyph", "inputs": glyphs(3).tolist()}, True),
    ("/reconstruct", {"inputs": glyphs(1).tolist()}, True),  # the default model
    ("/reconstruct", {"model": "pixels28", "inputs": np.full((2, 784), 0.25).tolist()}, True),
    ("/reconstruct", {"model": "pixels28", "inputs": np.full((1, 28, 28), 0.5).tolist()}, True),
    ("/anomaly-score", {"model": "glyph", "inputs": glyphs(2).tolist()}, True),
    (
        "/anomaly-score",
        {
            "model": "table",
            "records": [
                {"id": "a", "alpha": 10.0, "beta": -2.0, "gamma": 0.5, "delta": 100.0},
                {"alpha": 30.0, "beta": 1.0, "gamma": 0.0, "delta": 10.0},
                {"id": 7, "alpha": 1e30, "beta": 1.0, "gamma": 0.0, "delta": 10.0},
            ],
        },
        True,
    ),
    (
        "/anomaly-score",
        {"model": "table", "records": [{"alpha": 1, "beta": 2, "gamma": 3, "delta": 4}]},
        True,
    ),
    ("/anomaly-score", {"model": "table", "inputs": [[1, 2, 3, 4], [5, 6, 7, 8]]}, True),
    # Issue 17's operations (plain bodies: the lane; nulls and missing features: the full path).
    ("/classify", {"model": "pixels28", "inputs": np.full((2, 784), 0.25).tolist()}, True),
    ("/impute", {"model": "glyph", "inputs": glyphs(2).tolist()}, True),
    ("/impute", {"model": "glyph", "inputs": [[0] * 34 + [None]]}, False),
    (
        "/impute",
        {"model": "table", "records": [{"alpha": 1, "beta": 2, "gamma": 3, "delta": 4}]},
        True,
    ),
    ("/impute", {"model": "table", "records": [{"alpha": 1.0, "delta": None}]}, False),
    ("/neighbors", {"model": "glyph", "inputs": glyphs(2).tolist()}, True),
    ("/neighbors", {"model": "glyph", "inputs": glyphs(2).tolist(), "k": 2}, False),
    ("/classify", {"model": "glyph", "inputs": glyphs(1).tolist()}, False),  # 422
    # Options other than the plain ones: the full path answers (the same bytes).
    ("/reconstruct", {"model": "glyph", "inputs": glyphs(2).tolist(), "binarize": True}, False),
    (
        "/reconstruct",
        {"model": "glyph", "inputs": glyphs(1).tolist(), "output_format": "png"},
        False,
    ),
    ("/anomaly-score", {"model": "glyph", "inputs": glyphs(2).tolist(), "threshold": 0.5}, False),
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
        False,
    ),
    ("/anomaly-score", {"model": "table", "inputs": [[1, 2, 3, 4]], "ids": [7]}, False),
    ("/anomaly-score", {"model": "table", "records": [{"alpha": 1, "beta": 2, "gamma": 3}]}, False),
    (
        "/anomaly-score",
        {"model": "table", "records": [{"alpha": "1", "beta": 2, "gamma": 3, "delta": 4}]},
        False,
    ),
    (
        "/anomaly-score",
        {
            "model": "table",
            "records": [{"id": True, "alpha": 1, "beta": 2, "gamma": 3, "delta": 4}],
        },
        False,
    ),
    ("/anomaly-score", {"model": "table", "records": []}, False),
    ("/reconstruct", {"model": "glyph", "inputs": []}, False),
    ("/reconstruct", {"model": "glyph", "inputs": [[True] * 35]}, False),
    ("/reconstruct", {"model": "glyph", "inputs": glyphs(1).tolist(), "model ": "x"}, False),
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


def assert_same_answers(
    server: str,
    make_client: ClientFactory,
    cases: list[tuple[str, Any, bool]],
    after_each: Any = None,
) -> None:
    """Each body through the live server and the ASGI app: the same status, type and bytes;
    /metrics says whether the lane answered it."""
    headers = {**RID, "content-type": "application/json"}
    with make_client() as local, httpx.Client(base_url=server, timeout=10) as http:
        for i, (path, body, taken) in enumerate(cases):
            before = express_count(http)
            live = http.post(path, content=raw_body(body), headers=headers)
            want = local.post(path, content=raw_body(body), headers=headers)
            assert answer(live) == answer(want), (i, path, live.text[:300])
            assert live.headers["x-request-id"] == RID["x-request-id"]
            assert express_count(http) - before == (1 if taken else 0), (i, path)
            if after_each is not None:
                after_each(http)


@pytest.mark.slow
def test_answers_are_the_same_bytes_as_the_asgi_path(
    server: str, make_client: ClientFactory
) -> None:
    assert_same_answers(server, make_client, CASES)


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
        ("/decode", json_ct, raw_body({"model": "glyph", "latents": [[0.0] * 35]})),  # latents
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


class FakeProtocol:
    """What ExpressLane needs of its protocol: the two ends (answer, decline)."""

    def __init__(self) -> None:
        self.answers: dict[int, tuple[str, bytes]] = {}
        self.declined: list[int] = []

    def express_answer(self, cycle: Any, request_id: str, data: bytes) -> None:
        self.answers[cycle.number] = (request_id, data)

    def express_decline(self, cycle: Any) -> None:
        self.declined.append(cycle.number)


class FakeCycle:
    def __init__(self, number: int, path: str, body: Any) -> None:
        self.number = number
        self.body = bytearray(raw_body(body))
        self.disconnected = False
        self.scope = {
            "path": path,
            "raw_path": path.encode(),
            "client": ("127.0.0.1", 1),
            "headers": [(b"x-request-id", f"r{number}".encode())],
        }


def take_all(client: Any, items: list[tuple[Any, FakeCycle]]) -> list[bool]:
    """lane.take for each (protocol, cycle) in one turn of the app's event loop, then let the
    schedulers flush."""
    lane = client.app.state.express

    async def run() -> list[bool]:
        taken = [lane.take(protocol, cycle) for protocol, cycle in items]
        for _ in range(5):
            await asyncio.sleep(0)
        return taken

    result: list[bool] = client.portal.call(run)
    return result


def test_one_flush_answers_a_batch_with_one_onnx_call_and_declines_only_the_bad_request(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    bodies: list[tuple[str, Any]] = [
        ("/reconstruct", {"model": "pixels28", "inputs": rng.random((n, 784)).tolist()})
        for n in (1, 3, 1, 2)
    ]
    bodies.insert(2, ("/reconstruct", {"model": "pixels28", "inputs": [[7.0] * 784]}))  # range
    # An integer beyond 2**53 (a large flat body: checked with the batch's values, not alone)
    bodies.insert(4, ("/reconstruct", {"model": "pixels28", "inputs": [[2**53 + 1] + [0] * 783]}))
    records = [{"alpha": float(a), "beta": -2.0, "gamma": 0.5, "delta": 100.0} for a in range(5)]
    bodies += [("/anomaly-score", {"model": "table", "records": records[:k]}) for k in (1, 2, 2)]
    bodies.append(("/anomaly-score", {"model": "table", "records": [{"id": 3, **records[4]}]}))
    with make_client(express=True) as client:
        lane = client.app.state.express
        repository = client.app.state.load.repository
        calls: dict[str, list[int]] = {"pixels28": [], "table": []}
        for name, log in calls.items():
            runtime = repository.models[name]
            monkeypatch.setattr(
                runtime,
                "infer",
                lambda op, x, f=runtime.infer, log=log: log.append(len(x)) or f(op, x),
            )
        protocol = FakeProtocol()
        for path, _ in bodies:
            assert lane.takes(
                {
                    "method": "POST",
                    "raw_path": path.encode(),
                    "query_string": b"",
                    "root_path": "",
                    "headers": [(b"content-length", b"10")],
                }
            )
        cycles = [(protocol, FakeCycle(i, path, body)) for i, (path, body) in enumerate(bodies)]
        assert all(take_all(client, cycles))
        # The out-of-range request and the one beyond 2**53: the full path answers them.
        assert protocol.declined == [2, 4]
        # One ONNX call for the table's requests together. The images' batch was refused before
        # its call (two requests' values are refused), so each image request ran alone.
        assert calls["table"] == [6]
        assert calls["pixels28"] == [1, 3, 1, 2]
        for i, (path, body) in enumerate(bodies):
            if i in (2, 4):
                continue
            want = client.post(path, json=body)
            request_id, data = protocol.answers[i]
            assert request_id == f"r{i}" and data == want.content, (path, body)


def test_a_flush_runs_up_to_max_size_samples_per_onnx_call(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(4)
    sizes = [3, 1, 2, 4, 1, 3]
    bodies = [{"model": "pixels28", "inputs": rng.random((n, 784)).tolist()} for n in sizes]
    with make_client(batch_max_size=8, express=True) as client:
        runtime = client.app.state.load.repository.models["pixels28"]
        calls: list[int] = []
        infer = runtime.infer
        monkeypatch.setattr(runtime, "infer", lambda op, x: calls.append(len(x)) or infer(op, x))
        protocol = FakeProtocol()
        cycles = [(protocol, FakeCycle(i, "/reconstruct", body)) for i, body in enumerate(bodies)]
        assert all(take_all(client, cycles))
        assert calls == [6, 8]  # 3+1+2, then 4+1+3: whole requests, at most 8 samples
        for i, body in enumerate(bodies):
            assert protocol.answers[i][1] == client.post("/reconstruct", json=body).content
    with make_client(batching=False, express=True) as client:
        # The lane batches by design: off with batching (the full path serves every request).
        assert not client.app.state.express.on
        assert client.post("/reconstruct", json=bodies[0]).status_code == 200


def _flat(rows: Any) -> str:
    return json.dumps(rows)


FLAT = np.random.default_rng(5).random((3, 784)).round(5).tolist()
FLAT_TEXT = _flat(FLAT)
# Bodies over 2 KB in the flat form are parsed by simdjson: the same answers as orjson's, and
# anything structurally off goes to orjson and, if need be, the full path.
SIMD_CASES: list[tuple[str, str, bool]] = [
    ("/reconstruct", '{"model": "pixels28", "inputs": ' + FLAT_TEXT + "}", True),
    ("/reconstruct", '{\n  "inputs" : ' + FLAT_TEXT + ' ,\n  "model":"pixels28"\n}', True),
    ("/anomaly-score", '{"model": "pixels28", "inputs": ' + FLAT_TEXT + "}", True),
    ("/reconstruct", '{"model": "pixels28", "inputs": ' + _flat([[0, 1] * 392]) + "}", True),
    (
        "/anomaly-score",
        '{"model": "table", "inputs": '
        + _flat([[1.123456, -2.123456, 300.123456, 4.123456]] * 60)
        + "}",
        True,
    ),
    # a repeated key: orjson (and so the full path) keeps the last one
    (
        "/reconstruct",
        '{"model": "nope", "model": "pixels28", "inputs": ' + FLAT_TEXT + "}",
        True,
    ),
    ("/reconstruct", '{"model": "pixels28", "inputs": ' + FLAT_TEXT + ', "inputs": [[1]]}', False),
    # integers beyond 2**53, numbers beyond float32, ragged and nested rows, non-numbers
    (
        "/reconstruct",
        '{"model": "pixels28", "inputs": [[9007199254740993' + ", 0" * 783 + "]]}",
        False,
    ),
    ("/reconstruct", '{"model": "pixels28", "inputs": [[1e39' + ", 0" * 783 + "]]}", False),
    ("/reconstruct", '{"model": "pixels28", "inputs": [[0.5' + ", 0" * 782 + "], [0.5]]}", False),
    ("/reconstruct", '{"model": "pixels28", "inputs": [[[], [1, 2]' + ", 0" * 782 + "]]}", False),
    ("/reconstruct", '{"model": "pixels28", "inputs": [["0.5"' + ", 0" * 783 + "]]}", False),
    ("/reconstruct", '{"model": "pixels28", "inputs": [[NaN' + ", 0" * 783 + "]]}", False),
    ("/reconstruct", '{"model": 5, "inputs": ' + FLAT_TEXT + "}", False),
    ("/reconstruct", '{"model": ["pixels28"], "inputs": ' + FLAT_TEXT + "}", False),
    ("/reconstruct", '{"model": "pixels28", "inputs": ' + FLAT_TEXT + ', "binarize": 1}', False),
    ("/reconstruct", '{"model": "glyph", "inputs": ' + FLAT_TEXT + "}", False),
    ("/reconstruct", "[" + FLAT_TEXT + "]", False),
]


@pytest.mark.slow
def test_large_flat_bodies_read_by_simdjson_answer_like_the_full_path(
    server: str, make_client: ClientFactory
) -> None:
    assert all(len(text) > 2048 for _, text, _ in SIMD_CASES)

    def parser_still_works(http: httpx.Client) -> None:
        # The parser is reused: a refused body must not leave it unusable.
        ok = http.post("/reconstruct", content=SIMD_CASES[0][1].encode(), headers=RID)
        assert ok.status_code == 200

    assert_same_answers(server, make_client, SIMD_CASES, parser_still_works)


def test_a_request_whose_answer_cannot_be_written_does_not_cost_the_others(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(FakeProtocol):
        """Its transport fails on write, as a socket closed under uvloop does."""

        def __init__(self) -> None:
            super().__init__()
            self.closed = False
            self.transport = self

        def express_answer(self, cycle: Any, request_id: str, data: bytes) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

        def close(self) -> None:
            self.closed = True

    bodies = [{"model": "pixels28", "inputs": np.full((1, 784), v).tolist()} for v in (0.1, 0.2)]
    with make_client(express=True) as client:
        good, broken = FakeProtocol(), Broken()
        cycles = [
            (broken, FakeCycle(0, "/reconstruct", bodies[0])),
            (good, FakeCycle(1, "/reconstruct", bodies[1])),
        ]
        assert all(take_all(client, cycles))  # one batch serves both
        assert (
            broken.closed
            and good.answers[1][1] == client.post("/reconstruct", json=bodies[1]).content
        )
        assert "answering a request failed" in caplog.text


def test_large_flat_bodies_are_cast_with_the_batch_only_within_2_to_the_53(
    make_client: ClientFactory,
) -> None:
    # All-integer inputs: the full path casts int64 to float32 directly, simdjson gives float64
    # first. 2**54 + 2**30 + 1 becomes the float64 2**54 + 2**30, a float32 tie, which rounds
    # down: one float32 step from the full path's value. So the lane takes none beyond 2**53.
    with make_client() as client:
        runtime = client.app.state.load.repository.models["pixels28"]
        ok = np.full((2, 784), 0.25)
        big = np.zeros((1, 784))
        big[0, 5] = 2**54 + 2**30 + 1
        assert np.float32(big[0, 5]) != np.asarray([2**54 + 2**30 + 1]).astype(np.float32)[0]

        def jobs(*rows: np.ndarray) -> list[Job]:
            out = []
            for r in rows:
                job = Job(RECONSTRUCT, runtime, RECONSTRUCT.default_options, EMPTY, len(r))
                job.wide = r
                out.append(job)
            return out

        x = batch_inputs(runtime, jobs(ok, ok[:1]))
        assert x.dtype == np.float32 and x.shape == (3, 28, 28) and (x == 0.25).all()
        with pytest.raises(ValueError):
            batch_inputs(runtime, jobs(ok, big))
        big[0, 5] = -(2**53)
        with pytest.raises(ValueError):
            batch_inputs(runtime, jobs(big))
        big[0, 5] = 2**53 - 1
        assert batch_inputs(runtime, jobs(big))[0, 0, 5] == np.float32(2**53 - 1)


class Transport:
    """An in-memory transport for ExpressProtocol: what it writes, and whether it was closed."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_keep_alive_after_lane_answers_closes_idle_connections_only(
    make_client: ClientFactory,
) -> None:
    # uvicorn closes a connection timeout_keep_alive after its last answer; after lane answers
    # one timer per idle spell does it, between one and two timeouts after the last request.
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    body = raw_body({"model": "glyph", "inputs": glyphs(1).tolist()})
    request = (
        b"POST /reconstruct HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    timeout = 0.3

    async def scenario() -> tuple[list[float], list[float], float]:
        loop = asyncio.get_running_loop()
        config = Config(client.app, timeout_keep_alive=timeout, access_log=False)
        config.load()
        state = ServerState()
        times: list[float] = []
        answered: list[float] = []
        # One request, then idle: closed between one and two timeouts later.
        idle, transport = express.ExpressProtocol(config, state, {}), Transport()
        idle.connection_made(transport)  # type: ignore[arg-type]
        start = loop.time()
        idle.data_received(request)
        while not transport.closed and loop.time() - start < 3 * timeout:
            await asyncio.sleep(0.01)
        closed_after = loop.time() - start
        assert len(transport.written) == 1 and transport.written[0].startswith(b"HTTP/1.1 200")
        # A request every third of a timeout for three timeouts: never closed meanwhile.
        busy, transport = express.ExpressProtocol(config, state, {}), Transport()
        busy.connection_made(transport)  # type: ignore[arg-type]
        start = loop.time()
        while loop.time() - start < 3 * timeout:
            busy.data_received(request)
            times.append(loop.time() - start)
            await asyncio.sleep(timeout / 3)
            answered.append(len(transport.written))
            assert not transport.closed
        busy.connection_lost(None)
        return times, answered, closed_after

    with make_client(express=True) as client:
        times, answered, closed_after = client.portal.call(scenario)
    assert timeout <= closed_after < 2 * timeout + 0.2
    assert answered == list(range(1, len(times) + 1))  # every request answered by the lane


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


# (path with the options in the query, .npy body, whether the lane answers it itself)
NPY_CASES: list[tuple[str, bytes, bool]] = [
    ("/reconstruct?model=glyph", npy_bytes(glyphs(3).astype(np.float32)), True),
    ("/reconstruct", npy_bytes(glyphs(2).astype(np.float32)), True),  # the default model
    ("/anomaly-score?model=glyph&threshold=0.25", npy_bytes(glyphs(4)), True),
    ("/encode?model=pixels28", npy_bytes(np.full((3, 28, 28), 0.5, dtype=np.float32)), True),
    ("/anomaly-score?model=table", npy_bytes(np.array([[1, 2, 3, 4], [5, 6, 7, 8.0]])), True),
    # Errors and what the lane leaves to the full path: the same bytes from it.
    ("/reconstruct?model=glyph", b"not a .npy file", False),  # 400
    ("/reconstruct?model=nope", npy_bytes(glyphs(1)), False),  # 404
    ("/reconstruct?model=glyph&binarize=maybe", npy_bytes(glyphs(1)), False),  # 422
    ("/reconstruct?model=glyph&output_format=png", npy_bytes(glyphs(1)), False),
    ("/reconstruct?model=glyph&inputs=1", npy_bytes(glyphs(1)), False),
    ("/reconstruct?model=glyph", npy_bytes(np.full((1, 10), 0.5)), False),  # wrong shape
]


@pytest.mark.slow
def test_npy_bodies_answered_as_npy_take_the_lane_with_the_same_answers(
    server: str, make_client: ClientFactory
) -> None:
    headers = {**RID, "content-type": "application/x-npy", "accept": "application/x-npy"}
    with make_client() as local, httpx.Client(base_url=server, timeout=10) as http:
        for path, body, taken in NPY_CASES:
            before = express_count(http)
            live = http.post(path, content=body, headers=headers)
            want = local.post(path, content=body, headers=headers)
            assert answer(live) == answer(want), (path, live.text[:300])
            assert {k: v for k, v in live.headers.items() if k.startswith("x-")} == {
                k: v for k, v in want.headers.items() if k.startswith("x-")
            }, path
            assert express_count(http) - before == (1 if taken else 0), path
        # A .npy body answered as JSON, and JSON options in a query: the full path.
        for path, extra in (
            ("/reconstruct?model=glyph", {"accept": "application/json"}),
            ("/reconstruct?model=glyph", {"accept": "application/x-npy, application/json"}),
        ):
            before = express_count(http)
            live = http.post(path, content=NPY_CASES[0][1], headers={**headers, **extra})
            want = local.post(path, content=NPY_CASES[0][1], headers={**headers, **extra})
            assert answer(live) == answer(want) and express_count(http) == before, extra
