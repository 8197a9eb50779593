"""The thin client (clients/python, ``aeserve_client``) against a live server: typed results
equal to the REST answers, .npy for large batches, the API key, problem details as
exceptions, retries that honour 503 Retry-After; and it installs without the server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aeserve_client import ApiError, AsyncClient, Client, TransportError

from tests.live_server import live_server
from tests.service.conftest import glyphs, zoo_dir

__all__ = ["zoo_dir"]  # the fixture

REPO = Path(__file__).resolve().parents[2]
KEY = "s3cret"


@pytest.fixture(scope="module")
def url(zoo_dir: Path) -> Iterator[str]:
    factory = "tests.clients.keyed_app:create"
    express = "service.http.express:ExpressProtocol"
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--http", express]
    env = {"AESERVE_TEST_KEY": KEY, "AESERVE_DEFAULT_MODEL": "glyph"}
    with live_server(zoo_dir, command, **env) as u:
        yield u


def rest(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(url + path, json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=10)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_typed_results_equal_rest(url: str) -> None:
    x = glyphs(3)
    with Client(url, api_key=KEY) as client:
        rec = client.reconstruct(x, model="glyph")
        want = rest(url, "/reconstruct", {"model": "glyph", "inputs": x.tolist()})
        assert rec.model == "glyph" and rec.outputs.dtype == np.float32
        assert np.array_equal(rec.outputs, np.asarray(want["outputs"], dtype=np.float32))
        assert rec.scores.tolist() == want["scores"]
        enc = client.encode(x, "glyph-vae", return_logvar=True)
        assert enc.latents.shape == (3, 4) and enc.logvar is not None
        dec = client.decode(enc.latents, "glyph-vae")
        assert dec.outputs.shape == (3, 7, 5)
        s1, s2 = client.sample(2, "glyph", seed=4), client.sample(2, "glyph", seed=4)
        assert s1.seed == 4 and np.array_equal(s1.outputs, s2.outputs)
        records = [{"alpha": 10.0, "beta": -2.0, "gamma": 0.5, "delta": 100.0, "id": "r1"}]
        ano = client.anomaly_score(model="table", records=records, top_features=2)
        assert ano.results is not None and ano.results[0]["id"] == "r1"
        assert ano.is_anomaly.dtype == bool and ano.threshold > 0
        assert client.denoise(x, "glyph-denoise", binarize=True).outputs.shape == (3, 7, 5)
        assert client.ready()


def test_large_batches_go_as_npy_with_the_same_numbers(url: str) -> None:
    x = glyphs(100)
    with Client(url, api_key=KEY) as client:
        big = client.reconstruct(x, model="glyph")  # .npy both ways
        small = [client.reconstruct(x[i : i + 50], model="glyph") for i in (0, 50)]
        assert np.array_equal(big.outputs, np.concatenate([s.outputs for s in small]))
        assert np.array_equal(big.scores, np.concatenate([s.scores for s in small]))
        assert big.version == small[0].version
        ano = client.anomaly_score(x, "glyph")
        assert ano.threshold > 0 and ano.is_anomaly.shape == (100,)


def test_errors_are_exceptions_with_the_problem_detail(url: str) -> None:
    with Client(url, api_key=KEY) as client:
        with pytest.raises(ApiError) as info:
            client.reconstruct(np.zeros((1, 3), np.float32), model="glyph")
        assert info.value.status == 422 and "expects [N, 7, 5]" in info.value.detail
        assert info.value.request_id
        with pytest.raises(ApiError) as info:
            client.encode(glyphs(1), model="nope")
        assert info.value.status == 404 and "unknown model 'nope'" in info.value.detail
    with Client(url) as client, pytest.raises(ApiError) as info:  # no key
        client.reconstruct(glyphs(1))
    assert info.value.status == 401 and info.value.detail == "send Authorization: Bearer KEY"


def test_async_client(url: str) -> None:
    async def main() -> None:
        async with AsyncClient(url, api_key=KEY) as client:
            x = glyphs(2)
            results = await asyncio.gather(*(client.reconstruct(x, "glyph") for _ in range(8)))
            assert all(np.array_equal(r.outputs, results[0].outputs) for r in results)
            assert (await client.sample(1, "glyph", seed=1)).seed == 1
            with pytest.raises(ApiError):
                await client.decode(np.zeros((1, 2), np.float32), "glyph")

    asyncio.run(main())


def test_retries_honour_503_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        httpx.Response(503, headers={"retry-after": "2"}, json={"detail": "loading"}),
        httpx.Response(503, headers={"retry-after": "1"}, json={"detail": "loading"}),
        httpx.Response(
            200, json={"model": "m", "version": "1", "outputs": [[1.0]], "scores": [0.5]}
        ),
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    waits: list[float] = []
    monkeypatch.setattr("aeserve_client.client.time.sleep", waits.append)
    client = Client("http://x", api_key="k", transport=httpx.MockTransport(handler))
    assert client.reconstruct([[1.0]]).scores.tolist() == [0.5]
    assert waits == [2.0, 1.0]
    assert all(r.headers["authorization"] == "Bearer k" for r in seen)
    # Out of retries: the last 503 is the error.
    seen.clear()
    answers[:] = [httpx.Response(503, headers={"retry-after": "1"}, json={"detail": "busy"})] * 3
    client = Client("http://x", retries=2, transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError) as info:
        client.reconstruct([[1.0]])
    assert info.value.status == 503 and info.value.detail == "busy" and len(seen) == 3

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = Client("http://x", retries=1, transport=httpx.MockTransport(refuse))
    with pytest.raises(TransportError):
        client.models()


def test_the_client_installs_without_the_server() -> None:
    project = tomllib.loads((REPO / "clients/python/pyproject.toml").read_text())["project"]
    assert sorted(d.split(">")[0] for d in project["dependencies"]) == ["httpx", "numpy"]
    code = (
        "import sys, aeserve_client; "
        "bad = [m for m in ('service', 'fastapi', 'onnxruntime', 'starlette', 'torch') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
