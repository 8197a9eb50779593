"""Every inference endpoint with every input form, on the fixture models."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from .conftest import FEATURES, SCALER_MEAN, assert_problem, bce, glyphs


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unpng(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def post(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    data: dict[str, Any] = r.json()
    assert data["version"].startswith("1.0.0-test+")
    return data


def test_reconstruct_binary_glyphs_exactly(client: TestClient) -> None:
    x = glyphs(8)
    out = post(client, "/reconstruct", inputs=x.tolist())
    assert out["model"] == "glyph"  # the configured default
    outputs = np.array(out["outputs"])
    assert outputs.shape == (8, 7, 5)
    # outputs went through JSON as float32: 1 - p loses digits near 1, hence rtol 1e-3
    np.testing.assert_allclose(out["scores"], bce(x, outputs), rtol=1e-3)
    thresholded = post(client, "/reconstruct", inputs=x.tolist(), binarize=True)["outputs"]
    assert thresholded == x.astype(int).tolist()


@pytest.mark.parametrize("model", ["pixels28", "glyph-vae", "table", "glyph"])
def test_decode_of_encode_equals_reconstruct(client: TestClient, model: str) -> None:
    shape = {"pixels28": (28, 28), "table": (4,)}.get(model, (7, 5))
    x = np.random.default_rng(5).uniform(0, 1, (3, *shape)).round(3)
    z = post(client, "/encode", model=model, inputs=x.tolist())["latents"]
    decoded = post(client, "/decode", model=model, latents=z)["outputs"]
    rec = post(client, "/reconstruct", model=model, inputs=x.tolist())
    np.testing.assert_allclose(decoded, rec["outputs"], rtol=1e-5, atol=1e-6)
    assert np.array(rec["outputs"]).shape == (3, *shape)


def test_flattened_inputs(client: TestClient) -> None:
    x = np.random.default_rng(0).uniform(0, 1, (2, 28, 28)).round(2)
    nested = post(client, "/reconstruct", model="pixels28", inputs=x.tolist())
    flat = post(client, "/reconstruct", model="pixels28", inputs=x.reshape(2, 784).tolist())
    assert nested == flat


def test_vae_encode_returns_mean_and_logvar_on_request(client: TestClient) -> None:
    x = glyphs(2).tolist()
    plain = post(client, "/encode", model="glyph-vae", inputs=x)
    assert set(plain) == {"model", "version", "latents"}
    both = post(client, "/encode", model="glyph-vae", inputs=x, return_logvar=True)
    assert both["latents"] == plain["latents"]
    assert np.array(both["logvar"]).shape == (2, 4)
    r = client.post("/encode", json={"model": "glyph", "inputs": x, "return_logvar": True})
    assert_problem(r, 422, "return_logvar is for VAEs")


def test_base64_png_and_jpeg_images(client: TestClient) -> None:
    x = glyphs(2)
    pngs = [b64(png(g * 255)) for g in x]
    from_images = post(client, "/reconstruct", images=pngs, binarize=True)
    assert from_images["outputs"] == x.astype(int).tolist()
    gray = np.random.default_rng(1).integers(0, 256, (28, 28))
    arr = post(client, "/reconstruct", model="pixels28", inputs=[(gray / 255).tolist()])
    img = post(client, "/reconstruct", model="pixels28", images=[b64(png(gray))])
    np.testing.assert_allclose(img["outputs"], arr["outputs"], atol=1e-6)
    jpeg = post(client, "/reconstruct", model="pixels28", images=[b64(png(gray, "JPEG"))])
    assert np.array(jpeg["outputs"]).shape == (1, 28, 28)
    rgb = np.stack([gray] * 3, axis=-1)
    from_rgb = post(client, "/reconstruct", model="pixels28", images=[b64(png(rgb))])
    np.testing.assert_allclose(from_rgb["outputs"], arr["outputs"], atol=1e-6)


def test_image_size_must_match_unless_resize(client: TestClient) -> None:
    big = b64(png(np.kron(glyphs(1)[0], np.ones((4, 4))) * 255))  # 20 x 28 pixels
    r = client.post("/reconstruct", json={"images": [big]})
    assert_problem(r, 422, "images[0] is 20x28 pixels", "expects 5x7", "resize=true")
    out = post(client, "/reconstruct", images=[big], resize=True, binarize=True)
    assert out["outputs"] == glyphs(1).astype(int).tolist()


def test_multipart_uploads(client: TestClient) -> None:
    x = glyphs(3)
    files = [("files", (f"g{i}.png", png(g * 255), "image/png")) for i, g in enumerate(x)]
    r = client.post("/reconstruct?model=glyph-denoise&binarize=true", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "glyph-denoise"
    assert r.json()["outputs"] == x.astype(int).tolist()
    for path in ("/encode", "/denoise", "/anomaly-score"):
        r = client.post(f"{path}?model=glyph-denoise", files=files)
        assert r.status_code == 200, (path, r.text)
    r = client.post("/reconstruct?model=glyph&output_format=png", files=files[:1])
    assert (unpng(r.json()["outputs"][0]) > 127).astype(int).tolist() == x[0].astype(int).tolist()


def test_png_outputs(client: TestClient) -> None:
    x = np.random.default_rng(2).uniform(0, 1, (2, 28, 28)).round(2).tolist()
    arr = np.array(post(client, "/reconstruct", model="pixels28", inputs=x)["outputs"])
    pngs = post(client, "/reconstruct", model="pixels28", inputs=x, output_format="png")
    pixels = np.stack([unpng(s) for s in pngs["outputs"]])
    assert pixels.shape == (2, 28, 28) and pixels.dtype == np.uint8
    np.testing.assert_allclose(pixels, np.rint(arr * 255), atol=1)
    assert pngs["scores"] == post(client, "/reconstruct", model="pixels28", inputs=x)["scores"]


def test_tabular_records_and_raw_inputs(client: TestClient) -> None:
    raw = [[12.0, -1.0, 2.5, 50.0], [10.0, -2.0, 0.5, 100.0]]
    records = [dict(zip(reversed(FEATURES), reversed(row), strict=True)) for row in raw]
    by_records = post(client, "/reconstruct", model="table", records=records)
    by_inputs = post(client, "/reconstruct", model="table", inputs=raw)
    assert by_records == by_inputs
    assert by_records["outputs"][0] == [12.0, -1.0, SCALER_MEAN[2], SCALER_MEAN[3]]
    assert by_records["scores"][1] == 0.0
    z = post(client, "/encode", model="table", records=records)["latents"]
    assert z == [[1.0, 2.0], [0.0, 0.0]]  # standardised: (12-10)/2, (-1+2)/0.5


def test_denoise(client: TestClient) -> None:
    x = glyphs(2)
    out = post(client, "/denoise", model="glyph-denoise", inputs=x.tolist(), binarize=True)
    assert out["outputs"] == x.astype(int).tolist()
    assert set(out) == {"model", "version", "outputs"}
    r = client.post("/denoise", json={"model": "glyph", "inputs": x.tolist()})
    assert_problem(r, 422, "'glyph' was not trained as a denoiser", "can denoise: glyph-denoise")


def test_sample(client: TestClient) -> None:
    a = post(client, "/sample", model="glyph-vae", n=5, seed=42)
    b = post(client, "/sample", model="glyph-vae", n=5, seed=42)
    assert a == b and a["seed"] == 42
    assert np.array(a["latents"]).shape == (5, 4)
    assert np.array(a["outputs"]).shape == (5, 7, 5)
    c = post(client, "/sample", model="glyph-vae", n=5, seed=43)
    assert c["latents"] != a["latents"]
    unseeded = post(client, "/sample", model="glyph", n=1)
    again = post(client, "/sample", model="glyph", n=1, seed=unseeded["seed"])
    assert again == unseeded
    binary = post(client, "/sample", model="glyph", n=3, seed=1, binarize=True)
    assert set(np.unique(binary["outputs"])) <= {0, 1}
    decoded = post(client, "/decode", model="glyph-vae", latents=a["latents"])
    np.testing.assert_allclose(decoded["outputs"], a["outputs"], rtol=1e-6)
    tab = post(client, "/sample", model="table", n=2, seed=0, scale=0.5)
    assert np.array(tab["outputs"]).shape == (2, 4)


def test_anomaly_score(client: TestClient) -> None:
    real = glyphs(4)
    noise = np.full((4, 7, 5), 0.5)
    out = post(client, "/anomaly-score", inputs=np.concatenate([real, noise]).tolist())
    scores = np.array(out["scores"])
    assert out["threshold"] == 0.2
    assert scores[4:].min() > 100 * scores[:4].max()  # noise scores far above real glyphs
    assert out["is_anomaly"] == [False] * 4 + [True] * 4
    expected = np.interp(scores, [0, 0.1, 0.2, 0.4], [0, 0.5, 0.9, 1.0]) * 100
    np.testing.assert_allclose(out["percentiles"], expected)
    assert out["percentiles"][-1] == 100.0
    own = post(client, "/anomaly-score", inputs=noise.tolist(), threshold=1.0)
    assert own["threshold"] == 1.0 and own["is_anomaly"] == [False] * 4
    rec = post(client, "/reconstruct", inputs=noise.tolist())
    assert own["scores"] == rec["scores"]
