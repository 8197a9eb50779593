"""Issue 18's correctness findings, each reproduced in process: pixel budgets, strict JSON,
query strings on JSON bodies, number sizes, echoed values, paths in answers, readiness with a
refused default model, symlinks out of a model folder, a version that does not name the weights.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from service.runtime.manifest import MANIFEST_FILE, sha256_file
from tests.service.conftest import ClientFactory, assert_problem, component, glyphs


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def test_images_over_the_pixel_budget_are_refused_before_decoding(
    make_client: ClientFactory,
) -> None:
    """Finding 7: small files declaring huge images cost seconds of CPU each. The sizes are
    read from the headers and the request refused before any image is decompressed."""
    png = base64.b64encode(_png(4096, 4096)).decode()
    with make_client(max_decoded_pixels=4096 * 4096) as client:
        start = time.monotonic()
        r = client.post("/reconstruct", json={"images": [png] * 64, "resize": True})
        assert time.monotonic() - start < 1.0
        assert_problem(r, 422, "AESERVE_MAX_DECODED_PIXELS", str(64 * 4096 * 4096))
        files = [("files", (f"{i}.png", _png(4096, 4096), "image/png")) for i in range(2)]
        r = client.post("/reconstruct?resize=true", files=files)
        assert_problem(r, 422, "AESERVE_MAX_DECODED_PIXELS")
        small = base64.b64encode(_png(5, 7)).decode()
        assert client.post("/reconstruct", json={"images": [small]}).status_code == 200


def test_query_parameters_on_a_json_request_are_refused(make_client: ClientFactory) -> None:
    """Finding 9: ``POST /reconstruct?model=table`` with a glyph body answered from glyph."""
    with make_client() as client:
        r = client.post("/reconstruct?model=table", json={"inputs": glyphs(1).tolist()})
        assert_problem(r, 422, "query parameters ['model']", "put the options in the body")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/reconstruct", {"binarize": 0}),
        ("/reconstruct", {"resize": "true"}),
        ("/sample", {"seed": False}),
        ("/sample", {"n": 1.5}),
        ("/sample", {"n": "1"}),
        ("/sample", {"model": 7}),
    ],
)
def test_json_options_of_the_wrong_type_are_refused_not_coerced(
    make_client: ClientFactory, path: str, body: dict[str, object]
) -> None:
    """Finding 11: ``"binarize": 0`` and ``"seed": false`` were coerced and answered 200."""
    if path == "/reconstruct":
        body = {"inputs": glyphs(1).tolist(), **body}
    with make_client() as client:
        assert_problem(client.post(path, json=body), 422, "invalid request")


def test_the_published_seed_bound_is_an_integer(make_client: ClientFactory) -> None:
    """Finding 11: the seed's bound was published as 2**63 (a float), which the server refused;
    an integral number (3.0) is a JSON Schema integer, so it is taken."""
    with make_client() as client:
        r = client.post("/sample", json={"seed": 3.0, "n": 2.0})
        assert r.status_code == 200 and r.json()["seed"] == 3, r.text
        spec = client.get("/openapi.json").json()
    body = spec["paths"]["/sample"]["post"]["requestBody"]["content"]["application/json"]
    seed = component(spec, body["schema"])["properties"]["seed"]
    bounds = next(s for s in seed.get("anyOf", [seed]) if s.get("type") == "integer")
    assert bounds["maximum"] == 2**63 - 1 and isinstance(bounds["maximum"], int)


def test_an_integer_of_5000_digits_is_a_422(make_client: ClientFactory) -> None:
    """Finding 10: 400 "number is infinity" where the README promises 422."""
    body = '{"inputs": [[' + ",".join(["1" * 5000] + ["0"] * 34) + "]]}"
    with make_client() as client:
        r = client.post("/reconstruct", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text


def test_an_unknown_model_name_is_not_echoed_whole(make_client: ClientFactory) -> None:
    """Finding 10: a 10 MB model name came back in a 10 MB 404."""
    name = "x" * 1_000_000
    with make_client() as client:
        r = client.post("/reconstruct", json={"model": name, "inputs": glyphs(1).tolist()})
        assert_problem(r, 404, "unknown model 'xxxx")
        assert len(r.content) < 2000
        r = client.get(f"/models/glyph/files/{'a' * 5000}.png")
        assert_problem(r, 404) and len(r.content) < 2000


def _copy_zoo(zoo_dir: Path, root: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(zoo_dir / name, root / name, symlinks=True)
    return root


def test_plots_and_cards_do_not_follow_symlinks_out_of_the_model_folder(
    make_client: ClientFactory, zoo_dir: Path, tmp_path: Path
) -> None:
    """Finding 6: ``GET /models/font/files/evil.png`` served /etc/passwd through a symlink."""
    repo = _copy_zoo(zoo_dir, tmp_path / "models", "glyph")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    os.symlink(secret, repo / "glyph" / "evil.png")
    (repo / "glyph" / "card.md").unlink()
    os.symlink(secret, repo / "glyph" / "card.md")
    with make_client(model_dir=repo) as client:
        assert_problem(client.get("/models/glyph/files/evil.png"), 404)
        assert_problem(client.get("/models/glyph/card"), 404)
        assert client.get("/models/glyph/files/loss.png").status_code == 200
        summary = client.get("/models/glyph").json()
        assert summary["card"] is None and "evil.png" not in str(summary["plots"])


def test_new_weights_under_the_old_version_are_refused(
    make_client: ClientFactory, zoo_dir: Path, tmp_path: Path
) -> None:
    """Finding 12: editing the weights and rewriting the manifest's sha256 served the new
    weights under the old version. Also: /readyz is 503 while the default model is refused,
    and refusal reasons carry no absolute paths."""
    repo = _copy_zoo(zoo_dir, tmp_path / "models", "glyph", "table")
    model = repo / "glyph"
    decoder = onnx.load(str(model / "decoder.onnx"))  # new weights that load and verify
    weights = decoder.graph.initializer[0]
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * 1.01, weights.name))
    onnx.save(decoder, str(model / "decoder.onnx"))
    manifest = json.loads((model / MANIFEST_FILE).read_text())
    manifest["files"]["decoder"]["sha256"] = sha256_file(model / "decoder.onnx")
    (model / MANIFEST_FILE).write_text(json.dumps(manifest))
    with make_client(model_dir=repo, ready=False) as client:
        deadline = time.monotonic() + 10
        while client.get("/models").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        failed = {f["name"]: f["reason"] for f in client.get("/models").json()["failed"]}
        assert "does not match the weights" in failed["glyph"], failed
        assert_problem(client.get("/readyz"), 503, "default model 'glyph' is not loaded")
        assert str(tmp_path) not in client.get("/readyz").text


def test_refusal_reasons_show_no_absolute_paths(
    make_client: ClientFactory, zoo_dir: Path, tmp_path: Path
) -> None:
    repo = _copy_zoo(zoo_dir, tmp_path / "models", "glyph", "table")
    (repo / "table" / MANIFEST_FILE).unlink()
    (repo / "table" / MANIFEST_FILE).mkdir()  # unreadable as a file: an OSError with its path
    (repo / "table" / MANIFEST_FILE / "x").write_text("")
    with make_client(model_dir=repo) as client:
        for path in ("/models", "/readyz"):
            text = client.get(path).text
            assert str(tmp_path) not in text, text
        assert "table" in client.get("/models").text
