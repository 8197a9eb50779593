"""Hand-written hostile inputs: each gets a 4xx application/problem+json naming what to fix.

The first tests are regressions for what fuzzing found (each failed before its fix, with a 500
or a warning turned error); the tables after them sweep wrong types, shapes, numbers, media
types, images, multipart bodies, .npy files and headers over the fixture models, through the
fast path and through FastAPI's router.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.http.app import create_app
from service.settings import Settings

from .conftest import assert_problem, wait_ready

ROUTES = ["/encode", "/decode", "/reconstruct", "/denoise", "/sample", "/anomaly-score"]
IMAGE_ROUTES = ["/encode", "/reconstruct", "/denoise", "/anomaly-score"]
ZEROS = [[0.0] * 35]
MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "fastapi"])
def hostile(request: pytest.FixtureRequest, zoo_dir: Path) -> Iterator[tuple[TestClient, bool]]:
    """A client on the fixture zoo (max_batch 8), with and without the fast path."""
    settings = Settings(
        model_dir=zoo_dir,
        default_model="glyph",
        max_batch=8,
        max_samples=8,
        fast_path=request.param,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client, request.param


@pytest.fixture
def client(hostile: tuple[TestClient, bool]) -> TestClient:
    return hostile[0]


def png(size: tuple[int, int] = (5, 7), mode: str = "L", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def npy_header(header: bytes) -> bytes:
    """A .npy v1.0 file with this (padded) header and no data."""
    padded = header.ljust(63 - 10 + 64 * (len(header) // 64)) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded


def post_raw(client: TestClient, path: str, body: bytes, ctype: str = "application/json") -> Any:
    return client.post(path, content=body, headers={"content-type": ctype})


# -- regressions: what fuzzing found --------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_lone_surrogate_escape_is_400_not_500(client: TestClient, path: str) -> None:
    # json.loads accepts "\ud800" (orjson does not); the 404 naming the model then failed to
    # serialise -> 500. Now: 400 at the codec.
    r = post_raw(client, path, b'{"model": "\\ud800", "inputs": [[0]]}')
    assert_problem(r, 400, "not valid JSON")
    r = post_raw(
        client, "/anomaly-score", b'{"model": "table", "inputs": [[1,2,3,4]], "ids": ["\\udfff"]}'
    )
    assert_problem(r, 400, "not valid JSON")


@pytest.mark.parametrize(
    ("ctype", "body", "status", "needle"),
    [
        # No boundary at all: starlette's HTTPException(400) was a 500 through the fast path.
        ("multipart/form-data", b"--b\r\n\r\n--b--\r\n", 400, "no boundary"),
        ("multipart/form-data; boundary=", b"--b--\r\n", 400, "no boundary"),
        # A part without a name: "The Content-Disposition header field "name" must be provided".
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; filename="a.png"\r\n\r\nxx\r\n--b--\r\n',
            400,
            "multipart body is malformed",
        ),
        # A part without headers.
        ("multipart/form-data; boundary=b", b"--b\r\n\r\n\r\n--b--\r\n", 400, "malformed"),
        # Cut short of the closing delimiter: the unfinished file part's temporary file leaked
        # (ResourceWarning) and the answer was a misleading "holds no files".
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
            + png(),
            400,
            "truncated",
        ),
        ("multipart/form-data; boundary=b", b"", 400, "truncated"),
    ],
)
@pytest.mark.parametrize("path", IMAGE_ROUTES)
def test_malformed_multipart_is_4xx(
    client: TestClient, path: str, ctype: str, body: bytes, status: int, needle: str
) -> None:
    assert_problem(post_raw(client, path, body, ctype), status, needle)


def test_too_many_files_is_422_naming_the_limit(client: TestClient) -> None:
    # max_files (= AESERVE_MAX_BATCH) exceeded inside starlette's parser: was a 500.
    files = [("files", (f"{i}.png", png(), "image/png")) for i in range(20)]
    for path in IMAGE_ROUTES:
        r = client.post(path, files=files)
        assert_problem(r, 422, "Too many files", "at most 8 images", "AESERVE_MAX_BATCH")


@pytest.mark.parametrize(
    ("header", "status", "needle"),
    [
        # bool is an int: np.frombuffer(count=True) raised TypeError -> 500.
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (True,), }", 400, "integers"),
        # numpy stops at 64 dimensions: reshape raised ValueError -> 500.
        (
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"1, " * 100 + b"), }",
            422,
            "100 dimensions",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/encode", "/decode", "/reconstruct", "/anomaly-score"])
def test_npy_header_shapes_are_4xx(
    client: TestClient, path: str, header: bytes, status: int, needle: str
) -> None:
    body = npy_header(header) + b"\x00\x00\x80\x3f"
    assert_problem(post_raw(client, path, body, "application/x-npy"), status, needle)


@pytest.mark.parametrize("path", ["/encode", "/reconstruct", "/anomaly-score"])
def test_tabular_values_overflowing_the_scaler_are_422(client: TestClient, path: str) -> None:
    # beta's std is 0.5: 3e38 is a float32, 6e38 once standardised is not. The inf reached the
    # model (NaN scores written as null; a RuntimeWarning, a 500 under warnings-as-errors).
    body = {"model": "table", "inputs": [[10.0, 3e38, 0.5, 100.0]]}
    assert_problem(client.post(path, json=body), 422, "standardised", "non-finite", "[0, 1]")
    records = [{"alpha": 10.0, "beta": -3e38, "gamma": 0.5, "delta": 100.0}]
    r = client.post(path, json={"model": "table", "records": records})
    if path == "/anomaly-score":
        assert_problem(r, 422, "standardised")
    else:  # records are an /anomaly-score form; elsewhere the codec refuses them first
        assert 400 <= r.status_code < 500


def test_latents_a_tabular_decoder_overflows_on_are_422(client: TestClient) -> None:
    # Linear decoder: x_hat * std overflowed in to_wire_space (RuntimeWarning -> 500 under
    # warnings-as-errors; inf written as null otherwise).
    r = client.post("/decode", json={"model": "table", "latents": [[3e38, 3e38]]})
    assert_problem(r, 422, "non-finite outputs", "'table'")


@pytest.fixture(scope="module")
def shipped() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=MODELS)), raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c


@pytest.mark.parametrize("model", ["digits", "font-denoise"])
@pytest.mark.parametrize("output_format", ["array", "png"])
def test_latents_an_image_decoder_overflows_on_are_422(
    shipped: TestClient, model: str, output_format: str
) -> None:
    # Huge latents make these decoders' layers NaN (inf - inf): JSON answers were 200 with
    # null pixels; PNG answers cast NaN to uint8 (RuntimeWarning -> 500 under warnings-as-errors).
    dim = shipped.get(f"/models/{model}").json()["latent_dim"]
    body = {"model": model, "latents": [[3e38] * dim], "output_format": output_format}
    r = shipped.post("/decode", json=body)
    assert_problem(r, 422, "non-finite outputs", f"'{model}'")


@pytest.mark.parametrize("path", ["/reconstruct", "/anomaly-score", "/encode"])
def test_shipped_tabular_values_overflowing_the_scaler_are_422(
    shipped: TestClient, path: str
) -> None:
    info = shipped.get("/models/breast-cancer").json()
    n = info["input"]["shape"][0]
    r = shipped.post(path, json={"model": "breast-cancer", "inputs": [[3.4e38] * n]})
    assert_problem(r, 422, "standardised", "non-finite")


def test_error_renderer_survives_text_json_cannot_hold() -> None:
    from starlette.requests import Request

    from service.http.problems import problem_response

    request = Request({"type": "http", "path": "/x", "headers": [], "method": "GET"})
    r = problem_response(request, 404, "unknown model '\ud800'", big=2**70)
    body = json.loads(bytes(r.body))
    assert r.status_code == 404 and body["detail"] == "unknown model '\ud800'"
    assert body["big"] == 2**70


# -- sweeps ----------------------------------------------------------------------------------

DEEP = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
JSON_BODIES: list[bytes] = [
    b"null",
    b"1",
    b'"text"',
    b"true",
    b"[]",
    b"{",
    b"\xff\xfe{}",
    DEEP,
    b'{"inputs": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
    b'{"inputs": null, "images": null, "records": null}',
    b'{"model": 1, "inputs": [[0]]}',
    b'{"model": "../glyph", "inputs": [[0]]}',
    b'{"model": "' + b"m" * 5000 + b'"}',
    b'{"inputs": [NaN]}',
    b'{"inputs": [[Infinity, -Infinity]]}',
    b'{"inputs": [[1e400]]}',
    b'{"inputs": [[' + b"9" * 4000 + b"]]}",
    b'{"inputs": [[1, [2]]]}',
    b'{"inputs": [{"a": 1}]}',
    b'{"inputs": {"a": 1}}',
    b'{"inputs": [["1", "2"]]}',
    b'{"inputs": [[true, false]]}',
    b'{"inputs": [[null]]}',
    b'{"inputs": [[]]}',
    b'{"inputs": [[[]]]}',
    b'{"inputs": 3}',
    b'{"latents": [[' + b"9" * 4000 + b"]]}",
    b'{"latents": [NaN]}',
    b'{"latents": [[]]}',
    b'{"latents": [[[1]]]}',
    b'{"latents": [["1"]]}',
    b'{"latents": {"a": 1}}',
    b'{"n": 1e30}',
    b'{"n": -5}',
    b'{"n": 1.5}',
    b'{"n": "3"}',
    b'{"n": 99999999999999999999999999999}',
    b'{"n": true}',
    b'{"n": null}',
    b'{"seed": 1.5}',
    b'{"seed": 99999999999999999999999}',
    b'{"scale": NaN}',
    b'{"scale": 1e400}',
    b'{"scale": 1e-320}',
    b'{"threshold": NaN, "inputs": [[0]]}',
    b'{"top_features": 1e99, "model": "table", "inputs": [[1, 2, 3, 4]]}',
    b'{"top_features": 99, "model": "table", "inputs": [[1, 2, 3, 4]]}',
    b'{"ids": [1, 2], "model": "table", "inputs": [[1, 2, 3, 4]]}',
    b'{"ids": [[1]], "model": "table", "inputs": [[1, 2, 3, 4]]}',
    b'{"model": "table", "records": [{"alpha": 1, "beta": 2, "gamma": 3, "delta": 4, "id": [1]}]}',
    b'{"model": "table", "records": [{"alpha": NaN, "beta": 2, "gamma": 3, "delta": 4}]}',
    b'{"model": "table", "records": [{"alpha": '
    + b"9" * 400
    + b', "beta": 2, "gamma": 3, "delta": 4}]}',
    b'{"model": "table", "records": [null]}',
    b'{"model": "table", "records": "x"}',
    b'{"model": "table", "records": []}',
    b'{"model": "table", "inputs": [[1e39, 2, 3, 4]]}',
    b'{"model": "table", "inputs": [1, 2, 3, 4]}',
    b'{"images": [""]}',
    b'{"images": "abc"}',
    b'{"images": [null]}',
    b'{"images": []}',
    b'{"images": ["\\u00e9\\u00e9"]}',
]


@pytest.mark.parametrize("path", ROUTES)
def test_hostile_json_bodies(client: TestClient, path: str) -> None:
    for body in JSON_BODIES:
        r = post_raw(client, path, body)
        assert 400 <= r.status_code < 500 or r.status_code == 200, (body[:80], r.text)
        if r.status_code >= 400:
            assert_problem(r, r.status_code)


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        (png()[:20], "not a readable PNG or JPEG"),
        (png(fmt="JPEG")[:-40], "not a readable PNG or JPEG"),
        (png(size=(8, 8)), "8x8 pixels"),
        (png(mode="RGBA"), ""),
        (png(mode="LA"), ""),
        (png(mode="P"), ""),
        (png(mode="1"), ""),
        (png(mode="I;16"), ""),
        (png(mode="RGB", fmt="JPEG"), ""),
        (png(mode="CMYK", fmt="JPEG"), ""),
        (png(mode="F", fmt="TIFF"), "TIFF image; send PNG or JPEG"),
        (b"\x89PNG\r\n\x1a\n", "not a readable PNG or JPEG"),
    ],
)
def test_hostile_images(client: TestClient, image: bytes, needle: str) -> None:
    """Corrupt images are 422; any readable PNG/JPEG of the right size is converted to grey."""
    for body in ({"images": [b64(image)]}, None):
        if body is None:
            r = client.post("/reconstruct", files=[("files", ("x.png", image, "image/png"))])
        else:
            r = client.post("/reconstruct", json=body)
        if needle:
            assert_problem(r, 422, needle)
        else:
            assert r.status_code == 200, r.text
            assert len(r.json()["outputs"]) == 1


def test_decompression_bomb_and_huge_images(client: TestClient) -> None:
    bomb = png(size=(20000, 20000), mode="1")  # ~50 kB of PNG, 400 Mpx decoded
    assert len(bomb) < 200_000
    r = client.post("/reconstruct?resize=true", files=[("files", ("b.png", bomb, "image/png"))])
    assert_problem(r, 422, "b.png")
    r = client.post("/reconstruct", json={"images": [b64(bomb)], "resize": True})
    assert_problem(r, 422, "images[0]")


@pytest.mark.parametrize(
    ("path", "files", "data", "query", "status", "needle"),
    [
        ("/reconstruct", None, {"x": "1"}, "", 415, "x-www-form-urlencoded"),
        ("/reconstruct", [("files", ("a.png", b"", "image/png"))], None, "", 422, "a.png"),
        ("/reconstruct", [("image", ("a.png", png(), "image/png"))], None, "", 200, ""),
        (
            "/reconstruct",
            [("files", ("a.png", png(), "image/png"))],
            None,
            "?model=table",
            422,
            "images are for grayscale",
        ),
        (
            "/reconstruct",
            [("files", ("a.png", png(), "image/png"))],
            None,
            "?resize=maybe",
            422,
            "resize",
        ),
        (
            "/anomaly-score",
            [("files", ("a.png", png(), "image/png"))],
            None,
            "?threshold=nan",
            422,
            "threshold",
        ),
        ("/anomaly-score", [("files", ("a.png", png(), "image/png"))], None, "?ids=1", 422, "ids"),
        (
            "/reconstruct",
            [("files", ("a.png", png(), "image/png"))],
            None,
            "?records=1",
            422,
            "records",
        ),
        (
            "/encode",
            [("files", ("a.png", png(), "image/png"))],
            None,
            "?return_logvar=1",
            422,
            "VAEs",
        ),
        (
            "/reconstruct",
            [("files", ("a.png", png(), "image/png"))],
            None,
            "?model=nope",
            404,
            "nope",
        ),
    ],
)
def test_hostile_multipart(
    client: TestClient,
    path: str,
    files: Any,
    data: Any,
    query: str,
    status: int,
    needle: str,
) -> None:
    r = client.post(path + query, files=files, data=data)
    if status == 200:  # the field name is free: every file part is an image
        assert r.status_code == 200, r.text
    else:
        assert_problem(r, status, needle)


def npy(array: Any, fortran: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(array) if fortran else array, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("body", "query", "status", "needle"),
    [
        (npy(np.zeros((1, 7, 5), np.float32))[:-3], "", 400, "needs 140"),
        (npy(np.array([[1, "a"]], dtype=object)), "", 422, "not supported"),
        (npy(np.array(["a"])), "", 422, "not supported"),
        (npy(np.zeros((1, 35), np.complex64)), "", 422, "not supported"),
        (npy(np.zeros((1, 35), "M8[s]")), "", 422, "not supported"),
        (npy(np.zeros(2, dtype=[("a", "f4")])), "", 422, "not supported"),
        (npy(np.zeros((3, 3), np.float32)), "", 422, "shape [3, 3]"),
        (npy(np.float32(1)), "", 422, "shape []"),
        (npy(np.zeros((0, 35), np.float32)), "", 422, "empty"),
        (npy(np.full((1, 35), np.nan, np.float32)), "", 422, "non-finite"),
        (npy(np.full((1, 35), 1e300)), "", 422, "non-finite"),
        (npy(np.full((1, 7, 5), 2**62, np.int64)), "", 422, "must lie in"),
        (npy(np.zeros((2, 7, 5), np.float32)), "?inputs=1", 422, "not in the query string"),
        (npy(np.zeros((2, 7, 5), np.float32)), "?model=nope", 404, "nope"),
        (b"\x93NUMPY\x02\x00\xff\xff\xff\xff", "", 400, "truncated or too long"),
        (b"\x93NUMPY\x03\x00" + struct.pack("<I", 10) + b"\xff" * 10, "", 400, "literal"),
        (
            npy_header(b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"),
            "",
            400,
            "integers",
        ),
        (
            npy_header(b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"),
            "",
            422,
            "not supported",
        ),
        (npy_header(b"(" * 2000 + b")" * 2000), "", 400, "literal"),
        (
            npy_header(
                b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 100000000000), }"
            ),
            "",
            400,
            "needs",
        ),
        (b"hello", "", 400, "not a .npy file"),
    ],
)
def test_hostile_npy_bodies(
    client: TestClient, body: bytes, query: str, status: int, needle: str
) -> None:
    r = post_raw(client, "/reconstruct" + query, body, "application/x-npy")
    assert_problem(r, status, needle)
    r = client.post(
        "/reconstruct" + query,
        content=body,
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert_problem(r, status, needle)


def test_fortran_order_npy_is_read(client: TestClient) -> None:
    x = np.random.default_rng(0).integers(0, 2, (3, 7, 5)).astype(np.float32)
    c = post_raw(client, "/reconstruct", npy(x), "application/x-npy").json()
    f = post_raw(client, "/reconstruct", npy(x, fortran=True), "application/x-npy").json()
    assert c["scores"] == f["scores"]


@pytest.mark.parametrize("path", ROUTES)
def test_hostile_media_types_and_accept(client: TestClient, path: str) -> None:
    body = b'{"inputs": [[0]]}'
    for ctype in ["text/plain", "application/xml", "application/x-www-form-urlencoded", "a/b"]:
        assert_problem(post_raw(client, path, body, ctype), 415, "not supported")
    # Unknown Accept values get JSON (the only other form is .npy).
    ok: dict[str, Any] = {"/decode": {"latents": ZEROS}, "/sample": {"n": 2}}.get(
        path, {"model": "glyph-denoise", "inputs": ZEROS}
    )
    for accept in ["text/html", "image/png", "*/*", "application/x-npy;q=0", "\x7f\x7f"]:
        r = client.post(path, json=ok, headers={"accept": accept})
        if "x-npy" in accept:
            assert r.status_code == 200
        else:
            assert r.status_code == 200 and r.json()["model"].startswith("glyph"), r.text
    r = client.post(
        path, json={**ok, "output_format": "png"}, headers={"accept": "application/x-npy"}
    )
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith(
        "application/problem+json"
    )


def test_huge_headers_and_paths(client: TestClient) -> None:
    headers = {"x-request-id": "x" * 10_000, "x-big": "y" * 60_000}
    r = client.post("/reconstruct", json={"inputs": [ZEROS[0]]}, headers=headers)
    assert r.status_code == 200 and r.headers["x-request-id"] != "x" * 10_000
    assert_problem(client.get("/models/" + "a" * 5000), 404, "unknown model")
    assert_problem(client.get("/models/glyph/files/%2e%2e"), 404, "no plot")
    r = client.post(
        "/reconstruct?model=" + "a" * 10_000, files=[("files", ("a.png", png(), "image/png"))]
    )
    assert_problem(r, 404, "unknown model")
    r = client.post("/reconstruct", content=b"{}", headers={"content-length": "abc"})
    assert 400 <= r.status_code < 500
