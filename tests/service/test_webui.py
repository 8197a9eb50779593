"""The face for people, over HTTP: the app at /, offline docs, cards as HTML, reference sets,
data-URL images, and .npy bodies in the OpenAPI document (tests/web drives a real browser)."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.dataplane.operations import OPERATIONS
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


def test_docs_pages_load_the_bundles_by_versioned_urls_cached_for_good(
    client: TestClient,
) -> None:
    sums = dict(
        reversed(line.split("  ./"))
        for line in (WEB_DIR / "vendor" / "SHA256SUMS").read_text().splitlines()
    )
    docs, redoc = client.get("/docs").text, client.get("/redoc").text
    pinned = re.findall(r'(?:src|href)="(/web/vendor/[^"?]+)\?v=([0-9a-f]+)"', docs + redoc)
    assert sorted(p for p, _ in pinned) == [
        "/web/vendor/redoc/redoc.standalone.js",
        "/web/vendor/swagger-ui/swagger-ui-bundle.js",
        "/web/vendor/swagger-ui/swagger-ui.css",
    ]
    for path, v in pinned:
        assert sums[path.removeprefix("/web/vendor/") + ".gz"].startswith(v) and len(v) == 16
        r = client.get(f"{path}?v={v}", headers={"accept-encoding": "gzip"})
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable", path
        # Any other version (an old page after an upgrade) is not kept for good.
        stale = client.get(f"{path}?v=0123456789abcdef")
        assert "immutable" not in stale.headers["cache-control"], path
        assert "immutable" not in client.get(path).headers["cache-control"], path


def test_docs_pages_preload_the_document_and_redoc_scrolls_natively(client: TestClient) -> None:
    """What makes /docs and /redoc quicker to draw (bench/web.py; tests/web checks the preload
    is the one request for the document): openapi.json fetched while the bundle loads, and
    ReDoc without its own scrollbars (perfect-scrollbar measures the whole page when drawn)."""
    preload = '<link rel="preload" href="openapi.json" as="fetch" crossorigin>'
    for path in ("/docs", "/redoc"):
        assert preload in client.get(path).text, path
    tag = re.search(r"<redoc [^>]*>", client.get("/redoc").text)
    assert tag is not None
    assert tag.group(0) == '<redoc spec-url="openapi.json" hide-download-button native-scrollbars>'


def test_openapi_json_is_written_once_gzipped_with_an_etag(make_client: ClientFactory) -> None:
    with make_client() as client:
        app = client.app
        built = app.openapi  # type: ignore[attr-defined]
        calls = []

        def counted() -> dict[str, Any]:
            calls.append(1)
            doc: dict[str, Any] = built()
            return doc

        app.openapi = counted  # type: ignore[attr-defined]
        plain = client.get("/openapi.json", headers={"accept-encoding": "identity"})
        assert plain.headers["content-type"] == "application/json"
        assert "content-encoding" not in plain.headers
        assert int(plain.headers["content-length"]) == len(plain.content)
        assert plain.json() == built()
        packed = client.get("/openapi.json", headers={"accept-encoding": "gzip, br"})
        assert packed.headers["content-encoding"] == "gzip"
        assert int(packed.headers["content-length"]) < len(plain.content) / 5
        assert packed.content == plain.content  # httpx unpacks it
        etag = plain.headers["etag"]
        assert packed.headers["etag"] == etag and plain.headers["cache-control"] == "no-cache"
        again = client.get("/openapi.json", headers={"if-none-match": etag})
        assert again.status_code == 304 and not again.content
        assert len(calls) == 1  # one document, written once
        # Behind a proxy's path prefix, the servers say where to send requests (a client
        # without the lifespan: the app's is running).
        doc = TestClient(app, root_path="/api").get("/openapi.json").json()
        assert doc["servers"][0] == {"url": "/api"} and doc["paths"] == plain.json()["paths"]


def test_openapi_has_one_problem_schema_and_the_request_schemas_by_reference(
    client: TestClient,
) -> None:
    """Each schema once in the components, referred to from where it is used: the document the
    docs pages load and draw is a third smaller than with every copy inlined."""
    doc = client.get("/openapi.json").json()
    text = json.dumps(doc)
    assert text.count('"RFC 9457 problem details."') == 1
    assert doc["components"]["schemas"]["Problem"]["title"] == "Problem"
    for op in OPERATIONS:
        post = doc["paths"][f"/{op.name}"]["post"]
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{op.options.__name__}"}
        assert doc["components"]["schemas"][op.options.__name__] == (op.options.model_json_schema())
        for code, answer in post["responses"].items():
            if code != "200":
                problem = answer["content"]["application/problem+json"]["schema"]
                assert problem == {"$ref": "#/components/schemas/Problem"}, (op.name, code)
    assert text.count('"title": "ReconstructRequest"') == 1
