"""The face for people, over HTTP: the app at /, offline docs, cards as HTML, reference sets,
data-URL images, and .npy bodies in the OpenAPI document (tests/web drives a real browser)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.http.app import create_app
from service.http.webui import WEB_DIR
from service.settings import Settings
from tests.service.conftest import ClientFactory, assert_problem, glyphs, wait_ready

MODELS = Path(__file__).resolve().parents[2] / "models"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Any absolute URL in an attribute that would make a browser fetch from elsewhere.
FOREIGN = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def shipped() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=MODELS))) as client:
        wait_ready(client)
        yield client


def test_root_serves_the_app_and_its_files(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'data-testid="model-select"' in r.text
    assert not FOREIGN.search(r.text)
    for path in re.findall(r'(?:src|href)="(web/[^"]+)"', r.text):
        assert client.get(f"/{path}").status_code == 200, path
    assert client.get("/web/js/main.js").headers["content-type"].startswith("text/javascript")


def test_every_testid_the_issue_names_is_on_the_page(client: TestClient) -> None:
    page = client.get("/").text
    for testid in (
        "model-select",
        "input-canvas",
        "reconstruction",
        "score",
        "percentile",
        "latent-map",
        "decoded",
        "sample-button",
        "tabular-form",
        "contributions",
        "csv-input",
        "results-table",
    ):
        assert f'data-testid="{testid}"' in page, testid


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert not FOREIGN.search(r.text), r.text
    assets = re.findall(r'(?:src|href)="(/web/[^"]+)"', r.text)
    assert assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_vendored_assets_match_their_recorded_checksums() -> None:
    vendor = WEB_DIR / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().split("\n")
    import hashlib

    for line in filter(None, lines):
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    versions = (vendor / "VERSIONS").read_text()
    assert "swagger-ui-dist" in versions and "redoc" in versions
    for lic in ("swagger-ui/LICENSE", "redoc/LICENSE"):
        assert (vendor / lic).is_file()


def test_card_is_markdown_for_clients_and_html_for_browsers(client: TestClient) -> None:
    md = client.get("/models/glyph/card")
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# glyph") and md.headers["vary"] == "Accept"
    page = client.get("/models/glyph/card", headers={"accept": BROWSER_ACCEPT})
    assert page.headers["content-type"].startswith("text/html")
    # The card's relative image link points where the plot is served.
    srcs = re.findall(r'<img src="([^"]+)"', page.text)
    assert srcs == ["/models/glyph/files/loss.png"]
    assert client.get(srcs[0]).headers["content-type"] == "image/png"
    assert client.get("/models/glyph/card?format=html").text == page.text
    assert client.get("/models/glyph/card?format=md", headers={"accept": BROWSER_ACCEPT}).text == (
        md.text
    )


def test_card_html_escapes_raw_html(tmp_path: Path) -> None:
    from service.http.webui import card_html

    page = card_html("x", "# t\n\n<script>alert(1)</script>\n\n![p](p.png)\n")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert '<img src="/models/x/files/p.png"' in page


def test_models_link_their_reference_set(shipped: TestClient, client: TestClient) -> None:
    listed = {m["name"]: m for m in shipped.get("/models").json()["models"]}
    assert listed["font"]["reference"] == "/models/font/reference"
    # The fixture zoo: glyph and table have one (their /neighbors), the others none.
    fixture = {m["name"]: m["reference"] for m in client.get("/models").json()["models"]}
    assert fixture["glyph"] == "/models/glyph/reference" and fixture["pixels28"] is None
    assert sorted(n for n, ref in fixture.items() if ref) == ["glyph", "table"]


def test_reference_of_the_font_model(shipped: TestClient) -> None:
    r = shipped.get("/models/font/reference?inputs=true")
    assert r.status_code == 200
    ref = r.json()
    assert ref["model"] == "font" and ref["n"] == 32 and ref["plane"]["kind"] == "latent"
    assert ref["label_names"][1] == "a" and ref["labels"] == list(range(32))
    assert np.array(ref["codes"]).shape == (32, 2) and np.array(ref["inputs"]).shape == (32, 7, 5)
    assert np.allclose(ref["points"], ref["codes"], atol=1e-5)
    # The stored codes are the shipped encoder's: encode the stored glyphs again.
    glyphs_ = (np.array(ref["inputs"]) / 255).tolist()
    again = shipped.post("/encode", json={"model": "font", "inputs": glyphs_}).json()["latents"]
    assert np.allclose(again, ref["codes"], atol=1e-4)
    assert "inputs" not in shipped.get("/models/font/reference").json()
    limited = shipped.get("/models/font/reference?limit=3&inputs=true").json()
    assert limited["n"] == len(limited["codes"]) == len(limited["inputs"]) == 3
    assert_problem(shipped.get("/models/font/reference?limit=0"), 422, "limit")
    # The map needs the points only: ?codes=false leaves the codes out.
    lean = shipped.get("/models/font/reference?codes=false").json()
    assert lean["codes"] is None and lean["points"] == ref["points"]


def test_vendored_bundles_are_sent_gzipped(client: TestClient) -> None:
    path = "/web/vendor/swagger-ui/swagger-ui-bundle.js"
    r = client.get(path, headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"].startswith("text/javascript")
    plain = client.get(path, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == r.content
    assert b"SwaggerUIBundle" in plain.content
    assert_problem(client.get("/web/vendor/nope.js"), 404)


def test_reference_plane_of_a_higher_dimensional_model_decodes(shipped: TestClient) -> None:
    ref = shipped.get("/models/mnist/reference").json()
    plane = ref["plane"]
    axes = np.array(plane["axes"])
    assert plane["kind"] == "pca" and axes.shape == (2, 32)
    assert np.allclose(axes @ axes.T, np.eye(2), atol=1e-4)
    assert len(set(ref["labels"])) == 10 and ref["label_names"][0]
    z = (np.array(plane["mean"]) + 1.0 * axes[0]).tolist()
    assert shipped.post("/decode", json={"model": "mnist", "latents": [z]}).status_code == 200


def test_reference_is_a_404_when_a_model_has_none(client: TestClient) -> None:
    assert_problem(client.get("/models/pixels28/reference"), 404, "no reference set")
    assert_problem(client.get("/models/nope/reference"), 404, "nope")


def _png_data_url(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_images_may_be_data_urls(client: TestClient) -> None:
    g = glyphs(2)
    urls = [_png_data_url((x * 255).astype(np.uint8)) for x in g]
    plain = [u.split(",", 1)[1] for u in urls]
    by_url = client.post("/reconstruct", json={"model": "glyph", "images": urls})
    by_b64 = client.post("/reconstruct", json={"model": "glyph", "images": plain})
    assert by_url.status_code == 200, by_url.text
    assert by_url.json() == by_b64.json()
    bad = client.post(
        "/reconstruct", json={"model": "glyph", "images": ["data:image/png,notbase64"]}
    )
    assert_problem(bad, 422, "images[0]", "base64")


def test_openapi_lists_npy_request_bodies(make_client: ClientFactory) -> None:
    with make_client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    for path in ("/encode", "/decode", "/reconstruct", "/denoise", "/anomaly-score"):
        body = paths[path]["post"]["requestBody"]["content"]
        assert "application/x-npy" in body, path
        # The options of a .npy body go in the query string: described on that content type.
        assert "`model`" in body["application/x-npy"]["schema"]["description"], path
    assert "application/x-npy" not in paths["/sample"]["post"]["requestBody"]["content"]
    assert "/models/{name}/reference" in paths
    assert "/" not in paths and "/docs" not in paths
