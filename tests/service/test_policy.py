"""No hidden bypass: every request passes the one policy (request id, admission, hooks, metrics),
whichever path answers it — the express lane included (service/http/policy.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from service.dataplane.operations import OPERATIONS
from tests.live_server import live_server

from .conftest import ClientFactory, glyphs

# A plain body per operation (the lane takes those of operations that take samples).
BODIES: dict[str, dict[str, Any]] = {
    "encode": {"model": "glyph", "inputs": glyphs(2).tolist()},
    "decode": {"model": "glyph", "latents": [[0.0] * 35]},
    "reconstruct": {"model": "pixels28", "inputs": np.full((1, 784), 0.5).tolist()},
    "denoise": {"model": "glyph-denoise", "inputs": glyphs(1).tolist()},
    "sample": {"model": "glyph-vae", "n": 2, "seed": 1},
    "anomaly-score": {"model": "table", "inputs": [[1, 2, 3, 4]]},
    "classify": {"model": "pixels28", "inputs": np.full((1, 784), 0.5).tolist()},
    "impute": {"model": "table", "inputs": [[1, 2, 3, 4]]},  # plain: the lane takes it
    "neighbors": {"model": "glyph", "inputs": glyphs(1).tolist()},
}


def express_count(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    return sum(
        float(v) for v in re.findall(r"^aeserve_express_requests_total\{.*\} (\S+)$", text, re.M)
    )


def test_every_operation_has_a_body_here() -> None:
    assert set(BODIES) == {op.name for op in OPERATIONS}


@pytest.mark.slow
def test_a_request_hook_sees_every_request_on_every_path(zoo_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "hook.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.service.hooked_app:create",
        "--http",
        "service.http.express:ExpressProtocol",
        "--no-access-log",
    ]
    with (
        live_server(zoo_dir, command, AESERVE_TEST_HOOK_LOG=str(log)) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        sent = []
        for i, op in enumerate(OPERATIONS):
            before = express_count(http)
            rid = f"hook-{i}"
            r = http.post(f"/{op.name}", json=BODIES[op.name], headers={"x-request-id": rid})
            assert r.status_code == 200, r.text
            # Operations that take samples were answered by the express lane.
            assert express_count(http) - before == (1 if op.takes == "samples" else 0), op.name
            sent.append(f"POST /{op.name} {rid}")
        # A refusal on the lane's path: the hook runs once, the app renders it.
        r = http.post(
            "/reconstruct",
            json=BODIES["reconstruct"],
            headers={"x-request-id": "hook-deny", "x-deny": "1"},
        )
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["request_id"] == "hook-deny" and r.headers["x-request-id"] == "hook-deny"
        sent.append("POST /reconstruct hook-deny")
        # A request the lane declines after admitting it (the full path names the problem):
        # admitted once, not twice.
        bad = {"model": "pixels28", "inputs": np.full((1, 784), 9.0).tolist()}
        r = http.post("/reconstruct", json=bad, headers={"x-request-id": "hook-bad"})
        assert r.status_code == 422
        sent.append("POST /reconstruct hook-bad")
    seen = [line for line in log.read_text().splitlines() if line.startswith("POST")]
    assert seen == sent


class Recorder:
    """An ordinary pure-ASGI middleware, added the documented way (app.add_middleware)."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Recorder.seen.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


def test_an_asgi_middleware_sees_every_request_and_turns_the_lane_off(
    make_client: ClientFactory, zoo_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from service.http.app import create_app
    from service.settings import Settings

    app = create_app(Settings(model_dir=zoo_dir), express=True)
    app.add_middleware(Recorder)
    Recorder.seen = []
    with TestClient(app) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
        assert not app.state.express.on  # the lane cannot run the middleware: off
        for op in OPERATIONS:
            assert client.post(f"/{op.name}", json=BODIES[op.name]).status_code == 200
    assert [s for s in Recorder.seen if s.startswith("POST")] == [
        f"POST /{op.name}" for op in OPERATIONS
    ]
    assert "express lane off: ASGI middleware Recorder" in caplog.text


def test_the_lane_is_off_unless_asked_for_and_says_so(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with make_client() as client:  # as uvicorn --factory service.http.app:create_app builds it
        assert not client.app.state.express.on
    assert "express lane off" in caplog.text
    caplog.clear()
    with make_client(express=True) as client:  # as python -m service builds it
        assert client.app.state.express.on
    assert "express lane on for POST /encode, /reconstruct, /denoise, /anomaly-score" in (
        caplog.text
    )
