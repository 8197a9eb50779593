"""The operation registry is the one list: every registered operation has a route, a schema,
an example that works, documentation in OpenAPI and the README, and /models derives from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from service.dataplane.operations import OPERATIONS, Operation

from .conftest import ClientFactory, component

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.fixture(scope="module")
def openapi(zoo_dir: Path) -> dict[str, Any]:
    from service.http.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(model_dir=zoo_dir))) as client:
        schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_every_operation_has_a_route(op: Operation, make_client: ClientFactory) -> None:
    with make_client() as client:
        routes = [
            r
            for r in client.app.routes
            if isinstance(r, Route) and r.path == f"/{op.name}" and "POST" in (r.methods or ())
        ]
        assert len(routes) == 1


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_every_operation_is_documented(op: Operation, openapi: dict[str, Any]) -> None:
    post = openapi["paths"][f"/{op.name}"]["post"]
    assert post["description"] == op.summary and op.summary
    body = post["requestBody"]["content"]["application/json"]
    # By reference: one schema per request model, in the components.
    assert body["schema"] == {"$ref": f"#/components/schemas/{op.options.__name__}"}
    assert component(openapi, body["schema"]) == op.options.model_json_schema()
    assert body["example"] == op.example
    assert "200" in post["responses"] and "422" in post["responses"]
    assert op.answer.__name__ in str(post["responses"]["200"])
    # ... and in the README's API table.
    assert f"`POST /{op.name}`" in README, op.name


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_every_operation_example_works_on_the_test_zoo(
    op: Operation, make_client: ClientFactory
) -> None:
    # The examples name the shipped zoo's models; the test zoo's stand-ins have other names.
    names = {"font": "glyph", "font-denoise": "glyph-denoise", "mnist-classifier": "pixels28"}
    body = {**op.example, "model": names.get(op.example["model"], op.example["model"])}
    if op.name == "decode":
        body["latents"] = [[0.0] * 35]
    with make_client() as client:
        r = client.post(f"/{op.name}", json=body)
        assert r.status_code == 200, r.text


def test_models_list_what_each_model_can_do_from_the_registry(client: TestClient) -> None:
    plane = client.app.state.plane  # type: ignore[attr-defined]
    for summary in client.get("/models").json()["models"]:
        runtime = plane.repository.get(summary["name"])
        want = [f"/{op.name}" for op in OPERATIONS if op.supports(runtime)]
        assert summary["endpoints"] == want
        assert ("/denoise" in want) is runtime.denoiser
