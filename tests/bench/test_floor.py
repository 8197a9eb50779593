"""bench/floor.py answers the bench's two requests with the right rows: the same scores as the
baseline's formula, each concurrent request its own rows, answers in request order."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest

from bench.models import IMAGE_MODEL, TABULAR_FEATURES, TABULAR_MODEL, build_all
from service.runtime.manifest import Manifest
from tests.live_server import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_all(tmp_path_factory.mktemp("floor") / "models")


@pytest.fixture(scope="module")
def url(models: Path) -> Iterator[str]:
    port = free_port()
    log = models.parent / "floor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "--port", str(port), "--model-dir", str(models)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, 60, log.read_text)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert "Traceback" not in log.read_text(), log.read_text()


def _direct(model_dir: Path, x: np.ndarray) -> np.ndarray:
    """x_hat from onnxruntime alone, one input at a time."""
    enc = ort.InferenceSession(str(model_dir / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(model_dir / "decoder.onnx"), providers=["CPUExecutionProvider"])
    out: np.ndarray = dec.run(None, {"z": enc.run(None, {"x": x})[0]})[0]
    return out


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 784), dtype=np.float32)


def _records(n: int, seed: int) -> list[dict[str, float]]:
    values = np.random.default_rng(seed).normal(size=(n, len(TABULAR_FEATURES)))
    return [dict(zip(TABULAR_FEATURES, map(float, row), strict=True)) for row in values]


def _check_image(models: Path, x: np.ndarray, answer: dict[str, Any]) -> None:
    assert set(answer) == {"model", "version", "outputs", "scores"}
    assert answer["model"] == IMAGE_MODEL and answer["version"].startswith("bench-1+")
    outputs = np.asarray(answer["outputs"], dtype=np.float32)
    assert outputs.shape == (len(x), 28, 28)
    x3 = x.reshape(-1, 28, 28)
    x_hat = _direct(models / IMAGE_MODEL, x3)
    np.testing.assert_allclose(outputs, x_hat, rtol=0, atol=1e-6)
    expected = ((x3 - x_hat) ** 2).reshape(len(x), -1).mean(axis=1)  # the baseline's formula
    np.testing.assert_allclose(answer["scores"], expected, rtol=0, atol=1e-6)


def _check_records(models: Path, records: list[dict[str, float]], answer: dict[str, Any]) -> None:
    assert set(answer) == {"model", "version", "scores", "is_anomaly"}
    assert answer["model"] == TABULAR_MODEL and answer["version"].startswith("bench-1+")
    manifest = Manifest.read(models / TABULAR_MODEL)
    scaler = manifest.input.scaler
    assert scaler is not None
    raw = np.asarray([[r[f] for f in TABULAR_FEATURES] for r in records], dtype=np.float32)
    x = (raw - np.asarray(scaler.mean, np.float32)) / np.asarray(scaler.std, np.float32)
    x_hat = _direct(models / TABULAR_MODEL, x)
    expected = ((x - x_hat) ** 2).mean(axis=1)  # the baseline's formula
    assert len(answer["scores"]) == len(records)
    np.testing.assert_allclose(answer["scores"], expected, rtol=0, atol=1e-6)
    assert answer["is_anomaly"] == [bool(s > manifest.score.threshold) for s in answer["scores"]]


def test_reconstruct(url: str, models: Path) -> None:
    x = _images(3, seed=1)
    r = httpx.post(url + "/reconstruct", json={"model": IMAGE_MODEL, "inputs": x.tolist()})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    _check_image(models, x, r.json())


def test_anomaly_score(url: str, models: Path) -> None:
    records = _records(5, seed=2)
    r = httpx.post(url + "/anomaly-score", json={"model": TABULAR_MODEL, "records": records})
    assert r.status_code == 200
    _check_records(models, records, r.json())


def test_concurrent_requests_get_their_own_rows(url: str, models: Path) -> None:
    images = [_images(1 + i % 2, seed=10 + i) for i in range(8)]
    records = [_records(1 + i % 3, seed=20 + i) for i in range(8)]

    async def go() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            posts = [
                http.post("/reconstruct", json={"model": IMAGE_MODEL, "inputs": x.tolist()})
                for x in images
            ] + [
                http.post("/anomaly-score", json={"model": TABULAR_MODEL, "records": rec})
                for rec in records
            ]
            answers = await asyncio.gather(*posts)
        return answers[:8], answers[8:]

    for _ in range(3):  # some rounds batch more requests than others
        image_answers, record_answers = asyncio.run(go())
        for x, r in zip(images, image_answers, strict=True):
            assert r.status_code == 200
            _check_image(models, x, r.json())
        for rec, r in zip(records, record_answers, strict=True):
            assert r.status_code == 200
            _check_records(models, rec, r.json())


def _post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_pipelined_answers_come_in_request_order(url: str, models: Path) -> None:
    """Requests of both endpoints written at once on one connection: answers in that order."""
    x = _images(2, seed=3)
    records = _records(2, seed=4)
    image = orjson.dumps({"model": IMAGE_MODEL, "inputs": x.tolist()})
    table = orjson.dumps({"model": TABULAR_MODEL, "records": records})
    wire = (
        _post("/anomaly-score", table)
        + _post("/reconstruct", image)
        + b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n"
        + _post("/anomaly-score", table)
        + b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(wire)
        data = b""
        while chunk := s.recv(65536):  # the server closes after the last answer
            data += chunk
    bodies = []
    while data:
        head, rest = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        bodies.append(orjson.loads(rest[:length]))
        data = rest[length:]
    assert len(bodies) == 5
    _check_records(models, records, bodies[0])
    _check_image(models, x, bodies[1])
    assert bodies[2] == {"status": "ready"}
    _check_records(models, records, bodies[3])
    assert bodies[4] == {"status": "ready"}
