"""Real Open Inference Protocol clients against ``python -m service``: tritonclient's HTTP
client (sync and asyncio) and its gRPC client. Their answers equal the REST API's."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

from tests.live_server import free_port, live_server

from .conftest import glyphs


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    grpc: str  # 127.0.0.1:PORT

    @property
    def http(self) -> str:
        return self.url.removeprefix("http://")

    def rest(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=10, trust_env=False)


@pytest.fixture(scope="module")
def server(zoo_dir: Path) -> Iterator[Server]:
    grpc_port = free_port()
    with live_server(zoo_dir, AESERVE_GRPC_PORT=str(grpc_port)) as url:
        yield Server(url, f"127.0.0.1:{grpc_port}")


def rest_json(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = server.rest(path, body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def as_f32(values: Any) -> np.ndarray:
    return np.asarray(values).astype(np.float32)


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize(("compress_in", "compress_out"), [(None, None), ("gzip", "deflate")])
def test_http_sync_client(
    server: Server, binary: bool, compress_in: str | None, compress_out: str | None
) -> None:
    client = httpclient.InferenceServerClient(server.http)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("glyph") and not client.is_model_ready("nope")
    assert client.get_server_metadata()["name"] == "aeserve"
    meta = client.get_model_metadata("glyph")
    assert meta["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [-1, 7, 5]}
    x = glyphs(3)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=binary)
        for name in ("x_hat", "score", "is_anomaly")
    ]
    result = client.infer(
        "glyph",
        [inp],
        outputs=outputs,
        request_id="r-1",
        request_compression_algorithm=compress_in,
        response_compression_algorithm=compress_out,
    )
    rec = rest_json(server, "/reconstruct", {"model": "glyph", "inputs": x.tolist()})
    ano = rest_json(server, "/anomaly-score", {"model": "glyph", "inputs": x.tolist()})
    assert np.array_equal(result.as_numpy("x_hat"), as_f32(rec["outputs"]))
    assert np.array_equal(result.as_numpy("score"), np.asarray(ano["scores"]))
    assert result.as_numpy("is_anomaly").tolist() == ano["is_anomaly"]
    assert result.get_response()["id"] == "r-1"
    client.close()


def test_http_sync_client_errors_equal_rest(server: Server) -> None:
    client = httpclient.InferenceServerClient(server.http)
    x = glyphs(1)[:, :3, :]  # wrong shape
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as info:
        client.infer("glyph", [inp])
    detail = server.rest("/reconstruct", {"model": "glyph", "inputs": x.tolist()}).json()["detail"]
    assert info.value.message() == detail
    assert info.value.status() == "422"
    with pytest.raises(InferenceServerException) as info:
        client.infer("nope", [inp])
    detail = server.rest("/reconstruct", {"model": "nope", "inputs": x.tolist()}).json()["detail"]
    assert info.value.message() == detail and info.value.status() == "404"
    words = httpclient.InferInput("x", [1], "BYTES")
    words.set_data_from_numpy(np.array([b"a"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as info:
        client.infer("glyph", [words])
    assert "datatype 'BYTES'" in info.value.message() and info.value.status() == "422"
    client.close()


def test_http_asyncio_client(server: Server) -> None:
    async def main() -> None:
        client = aioclient.InferenceServerClient(server.http)
        try:
            assert await client.is_server_live()
            assert await client.is_server_ready()
            assert await client.is_model_ready("glyph-vae")
            meta = await client.get_model_metadata("glyph-vae")
            assert [o["name"] for o in meta["outputs"]][:3] == ["z", "mu", "logvar"]
            x = glyphs(2)
            inp = aioclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            outputs = [aioclient.InferRequestedOutput(n) for n in ("mu", "logvar")]
            results = await asyncio.gather(
                *(client.infer("glyph-vae", [inp], outputs=outputs) for _ in range(8))
            )
            enc = rest_json(
                server,
                "/encode",
                {"model": "glyph-vae", "inputs": x.tolist(), "return_logvar": True},
            )
            for result in results:
                assert np.array_equal(result.as_numpy("mu"), as_f32(enc["latents"]))
                assert np.array_equal(result.as_numpy("logvar"), as_f32(enc["logvar"]))
            with pytest.raises(InferenceServerException) as info:
                await client.infer("nope", [inp])
            assert info.value.status() == "404"
        finally:
            await client.close()

    asyncio.run(main())


def test_grpc_client(server: Server) -> None:
    client = grpcclient.InferenceServerClient(server.grpc)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("table") and not client.is_model_ready("nope")
        assert client.get_server_metadata().name == "aeserve"
        meta = client.get_model_metadata("table", as_json=True)
        assert meta["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}
        x = np.array([[10, -2, 0.5, 100], [30, 4, 9, -50]], dtype=np.float32)
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outputs = [
            grpcclient.InferRequestedOutput(n)
            for n in ("score", "percentile", "is_anomaly", "contributions", "threshold")
        ]
        result = client.infer("table", [inp], outputs=outputs, request_id="g-1")
        ano = rest_json(
            server, "/anomaly-score", {"model": "table", "inputs": x.tolist(), "top_features": 4}
        )
        assert np.array_equal(result.as_numpy("score"), np.asarray(ano["scores"]))
        assert np.array_equal(result.as_numpy("percentile"), np.asarray(ano["percentiles"]))
        assert result.as_numpy("is_anomaly").tolist() == ano["is_anomaly"]
        assert result.as_numpy("threshold").tolist() == [ano["threshold"]]
        assert result.as_numpy("contributions").shape == (2, 4)
        assert result.get_response().id == "g-1"
        # Sampling: parameters, no inputs.
        sampled = client.infer(
            "glyph",
            [],
            parameters={"n": 2, "seed": 5},
            outputs=[grpcclient.InferRequestedOutput("z")],
        )
        smp = rest_json(server, "/sample", {"model": "glyph", "n": 2, "seed": 5})
        assert np.array_equal(sampled.as_numpy("z"), as_f32(smp["latents"]))
        # Errors: the REST messages, as gRPC status codes.
        bad = grpcclient.InferInput("x", [1, 3], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
        with pytest.raises(InferenceServerException) as info:
            client.infer("table", [bad])
        detail = server.rest("/reconstruct", {"model": "table", "inputs": [[0, 0, 0]]}).json()
        assert info.value.message() == detail["detail"]
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
        with pytest.raises(InferenceServerException) as info:
            client.infer("nope", [bad])
        assert info.value.status() == "StatusCode.NOT_FOUND"
        with pytest.raises(InferenceServerException) as info:
            client.get_model_metadata("nope")
        assert info.value.status() == "StatusCode.NOT_FOUND"
        ints = grpcclient.InferInput("x", [1, 4], "INT64")  # converted like any numeric input
        ints.set_data_from_numpy(np.array([[10, -2, 1, 100]], dtype=np.int64))
        got = client.infer("table", [ints], outputs=[grpcclient.InferRequestedOutput("score")])
        ano = rest_json(server, "/anomaly-score", {"model": "table", "inputs": [[10, -2, 1, 100]]})
        assert got.as_numpy("score").tolist() == ano["scores"]
        index = client.get_model_repository_index(as_json=True)
        assert {m["name"] for m in index["models"]} >= {"glyph", "table"}
    finally:
        client.close()


def test_kserve_sdk_rest_client(server: Server) -> None:
    """KServe's SDK in its own process: its generated protobuf messages and tritonclient's
    both claim ``inference.*`` in protobuf's default pool, so one process cannot import both."""
    x = np.random.default_rng(3).random((2, 28, 28), dtype=np.float32)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("kserve_client.py")), server.url],
        input=orjson.dumps(x.tolist()),
        capture_output=True,
        check=True,
        timeout=60,
    )
    got = orjson.loads(out.stdout)
    rec = rest_json(server, "/reconstruct", {"model": "pixels28", "inputs": x.tolist()})
    assert got["checks"] == [True, True, True]
    assert got["id"] == "k-1"
    assert np.array_equal(as_f32(got["x_hat"]), as_f32(rec["outputs"]))
    assert got["score"] == rec["scores"]
