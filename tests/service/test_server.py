"""The real thing: ``python -m service`` under uvicorn on a free port, over HTTP with httpx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import glyphs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(zoo_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "AESERVE_MODEL_DIR": str(zoo_dir),
        "AESERVE_DEFAULT_MODEL": "glyph",
        "AESERVE_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0].decode()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells.
        assert proc.returncode in (0, -15), out
        assert "Traceback" not in out, out


@pytest.mark.slow
def test_real_server_over_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        x = glyphs(4).tolist()
        r = http.post("/reconstruct", json={"inputs": x, "binarize": True})
        assert r.status_code == 200 and r.json()["outputs"] == x
        assert r.headers["x-request-id"]
        bad = http.post("/reconstruct", json={"model": "nope", "inputs": x})
        assert bad.status_code == 404
        assert bad.headers["content-type"] == "application/problem+json"
        metrics = http.get("/metrics").text
        assert 'aeserve_requests_total{endpoint="/reconstruct",model="glyph",status="200"} 1.0' in (
            metrics
        )
        assert 'aeserve_requests_total{endpoint="/reconstruct",model="",status="404"} 1.0' in (
            metrics
        )
        assert "aeserve_models_loaded 5.0" in metrics
