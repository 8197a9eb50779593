"""Everything a client can send gets a 2xx or a 4xx problem+json that says what to fix."""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.runtime.model import ModelRuntime
from service.runtime.repository import ModelRepository

from .conftest import ClientFactory, assert_problem, glyphs, wait_ready

GLYPH = glyphs(1).tolist()


def _png(size: tuple[int, int], fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.new("L", size).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    ("body", "status", "needles"),
    [
        ({"model": "nope", "inputs": GLYPH}, 404, ["unknown model 'nope'", "glyph, glyph-denoise"]),
        ({"inputs": [[[0] * 6] * 7]}, 422, ["shape [1, 7, 6]", "expects [N, 7, 5] or [N, 35]"]),
        ({"inputs": [[0] * 5] * 7}, 422, ["wrap a single sample"]),
        ({"inputs": [[0] * 35, [0] * 34]}, 422, ["ragged"]),
        ({"inputs": [[0] * 34 + ["x"]]}, 422, ["only numbers"]),
        ({"inputs": [[0] * 34 + [None]]}, 422, ["only numbers"]),
        ({"inputs": [[True] * 35]}, 422, ["only numbers"]),
        ({"inputs": [[0] * 34 + [1e39]]}, 422, ["non-finite", "at [0, 6, 4]"]),
        ({"inputs": [[0] * 34 + [2]]}, 422, ["must lie in [0, 1]", "to 2"]),
        ({"inputs": [[0] * 34 + [-0.5]]}, 422, ["must lie in [0, 1]"]),
        ({"inputs": []}, 422, ["empty"]),
        ({"inputs": "zeros"}, 422, ["must be an array"]),
        ({"inputs": [[0] * 35] * 9}, 422, ["9 samples", "at most 8", "AESERVE_MAX_BATCH"]),
        ({}, 422, ["exactly one of 'inputs', 'images' or 'records'"]),
        ({"inputs": GLYPH, "images": []}, 422, ["(got inputs, images)"]),
        ({"inputs": GLYPH, "colour": "red"}, 422, ["colour", "Extra inputs"]),
        ({"inputs": GLYPH, "binarize": "maybe"}, 422, ["binarize"]),
        ({"inputs": GLYPH, "output_format": "gif"}, 422, ["output_format"]),
        ({"model": "pixels28", "inputs": [[0] * 784], "binarize": True}, 422, ["not binary"]),
        ({"model": "table", "inputs": [[0] * 4], "output_format": "png"}, 422, ["'png' needs"]),
        ({"images": ["***"]}, 422, ["images[0] is not valid base64"]),
        ({"images": [base64.b64encode(b"hello").decode()]}, 422, ["not a readable PNG or JPEG"]),
        ({"images": [_png((5, 7), "GIF")]}, 422, ["GIF image; send PNG or JPEG"]),
        ({"images": [_png((8, 8))]}, 422, ["8x8 pixels", "expects 5x7"]),
        ({"images": [_png((5000, 4000))], "resize": True}, 422, ["at most 16777216"]),
        ({"images": [1]}, 422, ["images.0"]),
        ({"model": "table", "images": [_png((5, 7))]}, 422, ["tabular inputs"]),
        ({"model": "table", "records": [{"alpha": 1, "beta": 1, "gamma": 1}]}, 422, ["'delta'"]),
        (
            {
                "model": "table",
                "records": [{"alpha": 1, "beta": 1, "gamma": 1, "delta": 1, "z": 2}],
            },
            422,
            ["unknown feature(s) ['z']", "expects ['alpha'"],
        ),
        (
            {"model": "table", "records": [{"alpha": "1", "beta": 1, "gamma": 1, "delta": 1}]},
            422,
            ["records[0].alpha must be a number"],
        ),
        ({"model": "table", "records": [[1, 2, 3, 4]]}, 422, ["records[0] must be an object"]),
        ({"records": [{"a": 1}]}, 422, ["records are for tabular models"]),
    ],
)
def test_reconstruct_client_errors(
    make_client: ClientFactory, body: dict[str, Any], status: int, needles: list[str]
) -> None:
    with make_client(max_batch=8) as client:
        r = client.post("/reconstruct", json=body)
        problem = assert_problem(r, status, *needles)
        assert problem["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "body", "needles"),
    [
        ("/decode", {"latents": [[0.0] * 34]}, ["[1, 34]", "expects [N, 35]"]),
        ("/decode", {"latents": [0.0] * 35}, ["expects [N, 35]"]),
        ("/decode", {"latents": [[1e39] * 35]}, ["non-finite"]),
        ("/decode", {}, ["latents", "Field required"]),
        ("/sample", {"n": 9}, ["n=9 is too many samples", "AESERVE_MAX_SAMPLES"]),
        ("/sample", {"n": 0}, ["n: Input should be greater than or equal to 1"]),
        ("/sample", {"scale": -1}, ["scale"]),
        ("/sample", {"seed": -1}, ["seed"]),
        ("/sample", {"seed": 2**70}, ["seed"]),
        ("/anomaly-score", {"inputs": GLYPH, "threshold": "high"}, ["threshold"]),
        ("/encode", {"inputs": GLYPH, "return_logvar": True}, ["return_logvar is for VAEs"]),
    ],
)
def test_other_endpoint_errors(
    make_client: ClientFactory, path: str, body: dict[str, Any], needles: list[str]
) -> None:
    with make_client(max_samples=8) as client:
        assert_problem(client.post(path, json=body), 422, *needles)


def test_http_level_errors(make_client: ClientFactory) -> None:
    with make_client(max_body_bytes=4096) as client:
        post = client.post
        assert_problem(post("/reconstruct", content=b"{nope"), 400, "not valid JSON")
        assert_problem(post("/reconstruct", content=b"[NaN]"), 400, "not valid JSON")
        assert_problem(post("/reconstruct", content=b""), 400, "body is empty")
        assert_problem(post("/reconstruct", content=b"[1, 2]"), 422, "must be a JSON object")
        r = post("/reconstruct", content=b"x", headers={"content-type": "text/plain"})
        assert_problem(r, 415, "'text/plain' is not supported", "multipart/form-data")
        r = post("/decode", files=[("files", ("a.png", b"x", "image/png"))])
        assert_problem(r, 415, "send application/json")
        big = {"inputs": [[0.123456] * 35] * 200}
        assert_problem(post("/reconstruct", json=big), 413, "larger than 4096 bytes")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"inputs": ['
            for _ in range(300):
                yield b"[" + b"0," * 34 + b"0],"
            yield b"[0]]}"

        assert_problem(post("/reconstruct", content=chunks()), 413, "AESERVE_MAX_BODY_BYTES")
        assert_problem(client.get("/nowhere"), 404, "no route /nowhere")
        r = client.get("/reconstruct")
        assert_problem(r, 405, "GET is not allowed on /reconstruct", "POST")
        assert_problem(client.get("/models/nope"), 404, "unknown model 'nope'")
        assert_problem(client.get("/models/glyph/files/secret.txt"), 404, "no plot")
        assert_problem(client.get("/models/glyph/files/..%2Fmodel.json"), 404)
        assert_problem(client.get("/models/glyph-vae/card"), 404, "no card.md")


def test_multipart_errors(client: TestClient) -> None:
    png = base64.b64decode(_png((5, 7)))
    files = [("files", ("a.png", png, "image/png"))]
    r = client.post("/reconstruct?model=glyph&colour=red", files=files)
    assert_problem(r, 422, "invalid query parameters", "colour")
    r = client.post("/reconstruct?model=nope", files=files)
    assert_problem(r, 404, "unknown model 'nope'")
    r = client.post("/reconstruct", data={"model": "glyph"}, files=files)
    assert_problem(r, 422, "form field 'model' is not a file")
    r = client.post("/reconstruct?model=table", files=files)
    assert_problem(r, 422, "images are for grayscale")
    r = client.post("/reconstruct", files=[("files", ("a.txt", b"text", "text/plain"))])
    assert_problem(r, 422, "a.txt is not a readable PNG or JPEG")
    r = client.post(
        "/reconstruct",
        content=b"--xx\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=xx"},
    )
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith("application/problem+json")


def test_not_ready_until_models_load(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_load = ModelRepository.load

    def slow_load(*args: Any, **kwargs: Any) -> ModelRepository:
        assert release.wait(10)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(ModelRepository, "load", slow_load)
    with make_client(ready=False) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert_problem(r, 503, "still loading")
        assert r.headers["retry-after"] == "1"
        assert_problem(client.post("/reconstruct", json={"inputs": GLYPH}), 503, "still loading")
        release.set()
        wait_ready(client)
        assert client.post("/reconstruct", json={"inputs": GLYPH}).status_code == 200


def test_empty_repository_is_never_ready(tmp_path: Path, make_client: ClientFactory) -> None:
    with make_client(ready=False, model_dir=tmp_path, default_model=None) as client:
        for _ in range(100):
            r = client.get("/readyz")
            if "still loading" not in r.text:
                break
        assert_problem(r, 503, "no model loaded")
        assert client.get("/healthz").status_code == 200


def test_internal_error_is_500_with_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(self: ModelRuntime, *args: Any) -> Any:
        raise RuntimeError("kaput")

    monkeypatch.setattr(ModelRuntime, "_run", boom)
    with caplog.at_level(logging.ERROR, logger="service"):
        r = client.post("/reconstruct", json={"inputs": GLYPH})
    body = assert_problem(r, 500, "internal error; quote request id")
    assert body["request_id"] in body["detail"]
    assert "kaput" not in r.text
    logged = [rec for rec in caplog.records if body["request_id"] in rec.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_client_request_id_is_echoed(client: TestClient) -> None:
    r = client.post("/reconstruct", json={"model": "nope"}, headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["request_id"] == "abc-123"
    r = client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


def test_fuzzed_bodies_never_500(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    values: list[Any] = [None, True, "s", 1, -1.5, [], {}, [[1]], [[[0.5]]], 1e308, [1e308]]
    keys = ["model", "inputs", "images", "records", "latents", "n", "seed", "scale", "threshold"]
    for _ in range(150):
        body = {str(k): values[rng.integers(len(values))] for k in rng.choice(keys, 3)}
        path = rng.choice(["/encode", "/decode", "/reconstruct", "/denoise", "/sample"])
        r = client.post(str(path), json=body)
        assert r.status_code < 500, (path, body, r.text)
