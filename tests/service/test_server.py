"""The real thing: ``python -m service`` under uvicorn on a free port, over HTTP with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import live_server

from .conftest import glyphs


@pytest.fixture
def server(zoo_dir: Path) -> Iterator[str]:
    with live_server(zoo_dir, AESERVE_DEFAULT_MODEL="glyph") as url:
        yield url


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
