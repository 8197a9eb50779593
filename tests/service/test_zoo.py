"""The shipped font models (models/font*) served through the API, on the real 32 glyphs."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.http.app import create_app
from service.settings import Settings
from training.datasets.font import glyphs

from .conftest import wait_ready

MODELS = Path(__file__).resolve().parents[2] / "models"
EXAMPLES = MODELS.parent / "examples"


@pytest.fixture(scope="module")
def zoo() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=MODELS))) as client:
        wait_ready(client)
        yield client


def post(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_font_models_load(zoo: TestClient) -> None:
    listing = zoo.get("/models").json()
    names = {m["name"] for m in listing["models"]}
    assert {"font", "font-denoise", "font-vae"} <= names, listing["failed"]
    assert listing["failed"] == []


def test_font_reconstructs_every_glyph_exactly(zoo: TestClient) -> None:
    x = glyphs()
    out = post(zoo, "/reconstruct", model="font", inputs=x.tolist(), binarize=True)
    wrong = (np.array(out["outputs"]) != x).sum(axis=(1, 2))
    assert wrong.tolist() == [0] * 32


def test_decode_of_encode_equals_reconstruct(zoo: TestClient) -> None:
    x = glyphs().tolist()
    for model in ("font", "font-vae", "font-denoise"):
        z = post(zoo, "/encode", model=model, inputs=x)["latents"]
        decoded = post(zoo, "/decode", model=model, latents=z)["outputs"]
        rec = post(zoo, "/reconstruct", model=model, inputs=x)["outputs"]
        np.testing.assert_allclose(decoded, rec, rtol=1e-5, atol=1e-6)


def test_denoise_fixes_two_flipped_pixels(zoo: TestClient) -> None:
    x = glyphs()
    rng = np.random.default_rng(0)
    noisy = x.copy().reshape(32, 35)
    for row in noisy:
        flip = rng.choice(35, 2, replace=False)
        row[flip] = 1 - row[flip]
    out = post(zoo, "/denoise", model="font-denoise", inputs=noisy.tolist(), binarize=True)
    wrong = (np.array(out["outputs"]) != x).sum(axis=(1, 2))
    assert wrong.mean() <= 0.25, wrong.tolist()
    assert (noisy.reshape(32, 7, 5) != x).sum() == 64
    r = zoo.post("/denoise", json={"model": "font", "inputs": noisy.tolist()})
    assert r.status_code == 422 and "font-denoise" in r.json()["detail"]


def test_noise_scores_far_above_real_glyphs(zoo: TestClient) -> None:
    x = glyphs()
    noise = np.random.default_rng(1).integers(0, 2, (32, 7, 5)).astype(float)
    real = post(zoo, "/anomaly-score", model="font", inputs=x.tolist())
    fake = post(zoo, "/anomaly-score", model="font", inputs=noise.tolist())
    assert min(fake["scores"]) > 10 * max(real["scores"])
    assert all(fake["is_anomaly"])
    assert real["is_anomaly"] == [s > real["threshold"] for s in real["scores"]]
    assert max(fake["percentiles"]) == 100.0


def test_same_seed_same_samples(zoo: TestClient) -> None:
    for model in ("font", "font-vae"):
        a = post(zoo, "/sample", model=model, n=8, seed=7, binarize=True)
        b = post(zoo, "/sample", model=model, n=8, seed=7, binarize=True)
        c = post(zoo, "/sample", model=model, n=8, seed=8, binarize=True)
        assert a == b and a["latents"] != c["latents"]
        assert np.array(a["outputs"]).shape == (8, 7, 5)


def test_docs_examples_run_on_the_zoo(zoo: TestClient) -> None:
    spec = zoo.get("/openapi.json").json()
    for path in ("/encode", "/reconstruct", "/denoise", "/sample", "/anomaly-score", "/decode"):
        example = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert zoo.post(path, json=example["example"]).status_code == 200, path
    rec = zoo.post(
        "/reconstruct",
        json=spec["paths"]["/reconstruct"]["post"]["requestBody"]["content"]["application/json"][
            "example"
        ],
    ).json()
    assert rec["outputs"] == [glyphs()[1].astype(int).tolist()]  # 'a' comes back exactly
    # /classify's example is examples/digit-7.png, as base64: a 7.
    example = spec["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]
    assert (
        base64.b64decode(example["example"]["images"][0]) == (EXAMPLES / "digit-7.png").read_bytes()
    )
    assert zoo.post("/classify", json=example["example"]).json()["label_names"] == ["7"]
