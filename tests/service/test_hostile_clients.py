"""Hostile clients against the real server (``python -m service``, loopback, bounded in time).

Each test reproduces an attack of issue 18: slow heads and bodies, silent and greedy
connections, huge headers, a body of base64 images that would hold the event loop, overload on
the express lane, SIGTERM with busy keep-alive connections.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.live_server import REPO, free_port, live_server, wait_ready

LIMITS = {
    "AESERVE_HEADER_TIMEOUT_S": "1",
    "AESERVE_BODY_TIMEOUT_S": "1.5",
    "AESERVE_KEEP_ALIVE_S": "1",
    "AESERVE_MAX_HEADER_BYTES": "8192",
    "AESERVE_MAX_CONNECTIONS": "32",
}


@pytest.fixture(scope="module")
def url(zoo_dir: Path) -> Iterator[str]:
    with live_server(zoo_dir, AESERVE_DEFAULT_MODEL="glyph", **LIMITS) as base:
        yield base


def _connect(url: str, timeout: float = 5.0) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def _post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body)
    )


GLYPH_BODY = json.dumps({"model": "glyph", "inputs": [[[0, 1, 0, 1, 0]] * 7]}).encode()


def test_a_silent_connection_is_closed_after_the_keep_alive_timeout(url: str) -> None:
    start = time.monotonic()
    with _connect(url) as sock:
        assert _read_until_closed(sock) == b""
    assert time.monotonic() - start < 3


def test_a_head_sent_byte_by_byte_gets_408(url: str) -> None:
    start = time.monotonic()
    with _connect(url) as sock:
        with pytest.raises(OSError):  # closed while we still send: 408, then reset or EPIPE
            for byte in b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-slow: " + b"a" * 100:
                sock.send(bytes([byte]))
                time.sleep(0.1)
        answer = _read_until_closed(sock)
    assert time.monotonic() - start < 4
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert b"connection: close" in answer


def test_a_body_sent_byte_by_byte_gets_408(url: str) -> None:
    start = time.monotonic()
    with _connect(url) as sock:
        sock.sendall(_post("/reconstruct", b" " * 1000)[:-1000])  # the head, no body
        with pytest.raises(OSError):
            for _ in range(60):
                sock.send(b" ")
                time.sleep(0.1)
        answer = _read_until_closed(sock)
    assert time.monotonic() - start < 5
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


@pytest.mark.parametrize("size", [20_000, 10 * 1024 * 1024])
def test_a_head_over_the_limit_gets_431_without_being_buffered(url: str, size: int) -> None:
    with _connect(url) as sock:
        with contextlib.suppress(OSError):  # answered and closed before 10 MB are sent
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * size)
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert b"application/problem+json" in answer and b"AESERVE_MAX_HEADER_BYTES" in answer
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_connections_beyond_the_limit_are_refused_with_503_then_served_again(url: str) -> None:
    held = [_connect(url) for _ in range(40)]  # the limit is 32 (the test's own included)
    try:
        for sock in held:
            sock.settimeout(0.5)
        answers = []
        for sock in held:
            try:
                answers.append(sock.recv(4096))
            except TimeoutError:
                answers.append(None)  # held open, within the limit
        refused = [a for a in answers if a]
        assert len(refused) >= 8, answers
        assert all(a.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in a for a in refused)
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_base64_images_are_decoded_off_the_event_loop(zoo_dir: Path) -> None:
    """Finding 1: a JSON body of base64 PNGs of 4096x4096 pixels (a few KB each) with resize
    decoded on the event loop, so /healthz waited for it. Now decoding runs in the thread pool
    (and the pixel budget, raised here, refuses such a request before decoding by default)."""
    buf = io.BytesIO()
    Image.new("L", (4096, 4096)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    body = json.dumps({"model": "glyph", "images": [png] * 6, "resize": True}).encode()
    with live_server(zoo_dir, AESERVE_MAX_DECODED_PIXELS=str(10**9)) as base:
        done: dict[str, float] = {}

        def heavy() -> None:
            start = time.monotonic()
            r = httpx.post(f"{base}/reconstruct", content=body, timeout=60)
            done["seconds"] = time.monotonic() - start
            done["status"] = r.status_code

        thread = threading.Thread(target=heavy)
        with httpx.Client(base_url=base) as client:
            client.get("/healthz")
            thread.start()
            time.sleep(0.05)
            took = []
            while thread.is_alive():
                start = time.monotonic()
                assert client.get("/healthz").status_code == 200
                took.append(time.monotonic() - start)
                time.sleep(0.01)
        thread.join()
    assert done["status"] == 200 and done["seconds"] > 0.2, done  # it did take a while
    took.sort()
    # On the loop the whole decode blocks /healthz (1.7 s here before). Off it, /healthz waits
    # only for the GIL at times: under 50 ms, but this shared 2-core machine can stall any
    # process for a while, so the slowest answer gets 250 ms and the median 50.
    shown = f"/healthz took {[round(t * 1000) for t in took]} ms while the images decoded"
    # The worst case is orjson parsing the 15 MB body (holds the GIL ~70 ms when the machine is
    # quiet); bounded loosely so a loaded CI machine does not fail it.
    assert took[len(took) // 2] < 0.05 and took[-1] < 1.0, shown


def test_the_express_lane_sheds_at_the_queue_limit(zoo_dir: Path) -> None:
    """Finding 4: the lane declined an overloaded request to the full path, which found the
    queue drained a loop turn later and served it: the limit never held. Now the lane answers
    503 with Retry-After itself."""
    with live_server(zoo_dir, AESERVE_BATCH_QUEUE_LIMIT="4", AESERVE_DEFAULT_MODEL="glyph") as base:
        socks = [_connect(base) for _ in range(96)]
        statuses: dict[int, int] = {}
        try:
            request = _post("/reconstruct", GLYPH_BODY)
            for _ in range(3):
                for sock in socks:  # every request in before the server reads any
                    sock.sendall(request)
                for sock in socks:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += sock.recv(65536)
                    status = int(head.split(b" ", 2)[1])
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 503:
                        assert b"retry-after: 1" in head and b"x-request-id: " in head
                    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                    rest = head.split(b"\r\n\r\n", 1)[1]
                    while len(rest) < length:
                        rest += sock.recv(65536)
        finally:
            for sock in socks:
                sock.close()
        metrics = httpx.get(f"{base}/metrics").text
    assert set(statuses) == {200, 503} and statuses[503] >= 96, statuses
    assert 'endpoint="/reconstruct",model="glyph",status="503"' in metrics


def test_sigterm_with_64_busy_keep_alive_connections_loses_no_request(zoo_dir: Path) -> None:
    """Finding 5: at SIGTERM the express lane's in-flight requests were reset. Now every
    request sent gets its answer, the last ones with Connection: close, and the process exits
    within the grace period."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        env={
            **os.environ,
            "AESERVE_MODEL_DIR": str(zoo_dir),
            "AESERVE_DEFAULT_MODEL": "glyph",
            "AESERVE_LOG_LEVEL": "warning",
            "AESERVE_SHUTDOWN_GRACE_S": "5",
        },
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, 30, lambda: proc.communicate()[0].decode())
        sent = [0] * 64
        answered = [0] * 64
        closed_cleanly = [False] * 64
        request = _post("/reconstruct", GLYPH_BODY)

        def client(i: int) -> None:
            with _connect(base, timeout=10) as sock:
                buffer = b""
                while True:
                    try:
                        sock.sendall(request)
                    except OSError:
                        return
                    sent[i] += 1
                    while b"\r\n\r\n" not in buffer:
                        chunk = sock.recv(65536)
                        if not chunk:
                            return  # closed with no answer: this request is lost
                        buffer += chunk
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                    while len(buffer) < length:
                        buffer += sock.recv(65536)
                    buffer = buffer[length:]
                    assert head.startswith(b"HTTP/1.1 200 "), head
                    answered[i] += 1
                    if b"connection: close" in head:
                        closed_cleanly[i] = True
                        return

        threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        assert sum(answered) > 64
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=10)
        out = proc.communicate(timeout=10)[0].decode()
        exited = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lost = sum(s - a for s, a in zip(sent, answered, strict=True))
    assert lost == 0, f"{lost} of {sum(sent)} requests lost"
    assert all(closed_cleanly), closed_cleanly.count(False)
    assert exited < 5 + 2 and proc.returncode in (0, -15), out
    assert "Traceback" not in out, out


def test_a_client_that_disconnects_mid_body_is_a_499_not_a_500(url: str) -> None:
    """Finding 8: counted as a 500 with a traceback (the 5xx ratio the alerts watch)."""
    body = json.dumps({"model": "glyph", "inputs": np.zeros((4, 7, 5)).tolist()}).encode()
    with _connect(url) as sock:  # a query string keeps it off the express lane
        sock.sendall(_post("/reconstruct?x=1", body)[: -len(body) // 2])
        time.sleep(0.3)
    time.sleep(0.3)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'endpoint="/reconstruct",model="",status="499"' in metrics, metrics[-2000:]
    assert 'status="500"' not in metrics
