"""Models listing, cards and plots, health, metrics, OpenAPI, CORS."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import ClientFactory, component, glyphs

INFERENCE = ["/encode", "/decode", "/reconstruct", "/denoise", "/sample", "/anomaly-score"]


def test_models_listing(client: TestClient) -> None:
    listing = client.get("/models").json()
    assert listing["default"] == "glyph" and listing["failed"] == []
    by_name = {m["name"]: m for m in listing["models"]}
    assert sorted(by_name) == ["glyph", "glyph-denoise", "glyph-vae", "pixels28", "table"]
    glyph = by_name["glyph"]
    assert glyph["family"] == "ae" and glyph["latent_dim"] == 35 and glyph["prior"] == "empirical"
    assert glyph["input"] == {
        "kind": "image",
        "shape": [7, 5],
        "range": [0.0, 1.0],
        "binary": True,
        "features": None,
    }
    assert "/denoise" not in glyph["endpoints"]
    assert "/denoise" in by_name["glyph-denoise"]["endpoints"]
    assert by_name["glyph-denoise"]["training"]["denoising"] == {"kind": "bitflip", "level": 0.1}
    assert by_name["glyph-vae"]["family"] == "vae"
    assert by_name["table"]["input"]["features"] == ["alpha", "beta", "gamma", "delta"]
    assert glyph["score"] == {"kind": "bce", "threshold": 0.2, "threshold_rule": "quantile:0.9"}
    assert glyph["card"] == "/models/glyph/card" and by_name["table"]["card"] is None
    assert glyph["plots"] == ["/models/glyph/files/loss.png"]


def test_model_detail_card_and_plot(client: TestClient) -> None:
    detail = client.get("/models/table").json()
    assert detail["manifest"]["input"]["scaler"]["std"] == [2.0, 0.5, 1.0, 25.0]
    assert detail["version"] == detail["manifest"]["version"]
    assert detail["version"].startswith("1.0.0-test+")
    card = client.get("/models/glyph/card")
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
    assert card.text.startswith("# glyph")
    plot = client.get("/models/glyph/files/loss.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert plot.content.startswith(b"\x89PNG")


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and "table" in ready["models"]
    for _ in range(3):
        client.post("/reconstruct", json={"model": "pixels28", "inputs": [[0.5] * 784]})
    client.post("/reconstruct", json={"model": "glyph", "inputs": [[7] * 35]})
    client.post("/reconstruct", json={"model": "nope", "inputs": [[0] * 35]})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'aeserve_requests_total{endpoint="/reconstruct",model="pixels28",status="200"} 3.0' in text
    )
    assert 'aeserve_requests_total{endpoint="/reconstruct",model="glyph",status="422"} 1.0' in text
    assert 'aeserve_requests_total{endpoint="/reconstruct",model="",status="404"} 1.0' in text
    assert (
        'aeserve_request_duration_seconds_count{endpoint="/reconstruct",model="pixels28",'
        'status="200"} 3.0'
    ) in text
    assert "aeserve_models_loaded 5.0" in text and "aeserve_models_failed 0.0" in text
    assert 'aeserve_model_info{family="vae",model="glyph-vae",version="1.0.0-test+' in text


def test_each_app_has_its_own_registry(make_client: ClientFactory) -> None:
    for _ in range(2):
        with make_client() as client:
            client.get("/healthz")
            assert 'aeserve_requests_total{endpoint="/healthz",model="",status="200"} 1.0' in (
                client.get("/metrics").text
            )


def test_openapi_documents_every_endpoint_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in INFERENCE:
        op = spec["paths"][path]["post"]
        content = op["requestBody"]["content"]
        schema = component(spec, content["application/json"]["schema"])
        assert "model" in schema["properties"], path
        assert content["application/json"]["example"]["model"].startswith("font"), path
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].startswith("#/components/schemas/"), path
        assert "application/problem+json" in op["responses"]["422"]["content"], path
        assert "summary" in op and op["description"], path
    reconstruct = spec["paths"]["/reconstruct"]["post"]
    upload = reconstruct["requestBody"]["content"]["multipart/form-data"]
    # Query options apply to uploads only (a JSON body refuses a query): described there, not
    # listed as parameters of every request.
    assert "parameters" not in reconstruct
    for name in ("model", "resize", "output_format", "binarize"):
        assert f"`{name}`" in upload["description"], name
    for path in ("/models", "/models/{name}", "/healthz", "/readyz", "/metrics"):
        assert "get" in spec["paths"][path], path
    assert client.get("/docs").status_code == 200


def test_docs_example_works_against_a_font_shaped_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in INFERENCE:
        example = dict(spec["paths"][path]["post"]["requestBody"]["content"]["application/json"])
        body = {**example["example"], "model": "glyph-denoise"}
        if "latents" in body:
            body["latents"] = [[0.0] * 35]
        assert client.post(path, json=body).status_code == 200, path


def test_cors(make_client: ClientFactory) -> None:
    with make_client(cors_origins=["http://ui.example"]) as client:
        r = client.options(
            "/reconstruct",
            headers={"origin": "http://ui.example", "access-control-request-method": "POST"},
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://ui.example"
    with make_client() as client:
        r = client.post(
            "/reconstruct", json={"inputs": glyphs(1).tolist()}, headers={"origin": "http://x"}
        )
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
