"""The .npy codec: round trips of dtypes and shapes, malformed files refused with 4xx, and the
binary request/response path of the inference endpoints."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.codecs.npy import NPY, decode_npy, encode_npy
from service.runtime.errors import BadRequest, InvalidInput

from .conftest import assert_problem, glyphs

DTYPES = ["?", "u1", "i1", "<i2", "<i4", "<i8", "<u8", "<f2", "<f4", "<f8", ">f4", ">i4"]
SHAPES: list[tuple[int, ...]] = [(), (0,), (5,), (2, 3), (4, 7, 5), (0, 28, 28)]


def npy(array: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_keeps_dtype_shape_and_values(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    array = np.asarray(rng.random(shape) * 100).astype(dtype)
    for data in (encode_npy(array), npy(array)):  # ours and numpy's writer
        back = decode_npy(data)
        assert back.dtype == np.dtype(dtype) and back.shape == shape
        assert np.array_equal(back, array)
    assert np.array_equal(np.load(io.BytesIO(encode_npy(array))), array)


def test_fortran_order_and_format_v2_are_read() -> None:
    array = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert np.array_equal(decode_npy(npy(array)), array)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=(2, 0))
    assert np.array_equal(decode_npy(buf.getvalue()), array)


def test_headers_in_any_literal_spelling_give_the_same_array() -> None:
    """numpy's own header is parsed without compiling it; other spellings by literal_eval."""
    data = np.arange(6, dtype="<f4").tobytes()
    numpy_style = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    other = '{"shape": (2, 3), "fortran_order": False, "descr": "<f4"}'
    for header in (numpy_style, other, numpy_style + " " * 9 + "\n"):
        back = decode_npy(with_header(header) + data)
        assert back.shape == (2, 3) and np.array_equal(back.ravel(), np.arange(6))
    # Leading zeros are no Python literal: refused in either spelling.
    for header in (numpy_style.replace("(2, 3)", "(02, 3)"), other.replace("(2, 3)", "(02, 3)")):
        with pytest.raises(BadRequest):
            decode_npy(with_header(header) + data)


def good() -> bytes:
    return npy(np.zeros((2, 3), dtype=np.float32))


def with_header(header: str) -> bytes:
    text = header.encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


MALFORMED = {
    "empty": (b"", BadRequest),
    "not npy": (b"PK\x03\x04 a zip file", BadRequest),
    "json": (b'{"inputs": [[1]]}', BadRequest),
    "truncated header": (good()[:30], BadRequest),
    "truncated data": (good()[:-4], BadRequest),
    "extra data": (good() + b"\x00" * 4, BadRequest),
    "version 9": (b"\x93NUMPY\x09\x00" + good()[8:], BadRequest),
    "header not a literal": (with_header("{'descr': __import__('os')}\n"), BadRequest),
    "header not a dict": (with_header("[1, 2, 3]\n"), BadRequest),
    "missing shape": (with_header("{'descr': '<f4', 'fortran_order': False}\n"), BadRequest),
    "negative shape": (
        with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}\n"),
        BadRequest,
    ),
    "object dtype": (
        with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}\n") + b"\0" * 8,
        InvalidInput,
    ),
    "strings": (npy(np.array(["a", "b"])), InvalidInput),
    "complex": (npy(np.zeros(2, dtype=np.complex64)), InvalidInput),
    "structured": (npy(np.zeros(2, dtype=[("a", "<f4")])), InvalidInput),
    "bad descr": (
        with_header("{'descr': 'nonsense', 'fortran_order': False, 'shape': (1,)}\n"),
        InvalidInput,
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_are_refused(case: str) -> None:
    data, error = MALFORMED[case]
    with pytest.raises(error):
        decode_npy(data)


# -- over HTTP ---------------------------------------------------------------------------


def post_npy(client: TestClient, path: str, array: Any, accept: str | None = NPY) -> Any:
    headers = {"content-type": NPY}
    if accept:
        headers["accept"] = accept
    data = array if isinstance(array, bytes) else npy(array)
    return client.post(path, content=data, headers=headers)


def load(response: Any) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == NPY
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_reconstruct_npy_in_npy_out_equals_json(client: TestClient) -> None:
    x = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    got = load(post_npy(client, "/reconstruct?model=pixels28", x))
    want = client.post("/reconstruct", json={"model": "pixels28", "inputs": x.tolist()}).json()
    assert got.dtype.names == ("outputs", "scores") and got.shape == (5,)
    assert got["outputs"].shape == (5, 28, 28) and got["outputs"].dtype == np.float32
    assert np.array_equal(got["outputs"], np.asarray(want["outputs"], dtype=np.float32))
    assert np.array_equal(got["scores"], np.asarray(want["scores"]))
    # Flattened rows and other numeric dtypes are accepted as in JSON.
    flat = load(post_npy(client, "/reconstruct?model=pixels28", x.reshape(5, -1).astype("<f8")))
    assert np.array_equal(flat["outputs"], got["outputs"])


def test_npy_answer_headers_and_json_answer_to_npy_body(client: TestClient) -> None:
    x = glyphs(3)
    r = post_npy(client, "/anomaly-score?model=glyph&threshold=0.5", x)
    table = load(r)
    assert r.headers["x-model"] == "glyph" and r.headers["x-model-version"].startswith(
        "1.0.0-test+"
    )
    assert r.headers["x-threshold"] == "0.5"
    assert set(table.dtype.names) >= {"scores", "is_anomaly", "percentiles"}
    assert table["is_anomaly"].dtype == np.bool_
    # A .npy body with a JSON answer (no Accept).
    r = post_npy(client, "/reconstruct?model=glyph&binarize=true", x.astype(np.uint8), accept=None)
    assert r.status_code == 200 and r.json()["outputs"] == x.tolist()


def test_a_tabular_npy_answer_has_its_arrays_and_scalar_headers_only(client: TestClient) -> None:
    rows = np.array([[10.0, -2.0, 0.5, 100.0], [30.0, 1.0, 0.0, 10.0]] * 50)
    r = post_npy(client, "/anomaly-score?model=table", rows)
    table = load(r)
    assert table.shape == (100,) and set(table.dtype.names) == {
        "scores", "is_anomaly", "percentiles"
    }  # fmt: skip
    extra = {k: v for k, v in r.headers.items() if k.startswith("x-") and k != "x-request-id"}
    # The per-record results (JSON answers carry them) are not a Python repr in a header.
    assert set(extra) == {"x-model", "x-model-version", "x-threshold"}, extra
    assert all(len(v) < 100 for v in extra.values())


def test_encode_and_decode_latents_as_npy(client: TestClient) -> None:
    x = glyphs(4)
    enc = load(post_npy(client, "/encode?model=glyph-vae&return_logvar=true", x))
    assert enc["latents"].shape == (4, 4) and enc["logvar"].shape == (4, 4)
    dec = load(post_npy(client, "/decode?model=glyph-vae", enc["latents"]))
    want = client.post("/decode", json={"model": "glyph-vae", "latents": enc["latents"].tolist()})
    assert np.array_equal(dec["outputs"], np.asarray(want.json()["outputs"], dtype=np.float32))
    # A JSON request can ask for a .npy answer too.
    r = client.post(
        "/sample", json={"model": "glyph-vae", "n": 2, "seed": 1}, headers={"accept": NPY}
    )
    assert load(r)["outputs"].shape == (2, 7, 5) and r.headers["x-seed"] == "1"


@pytest.mark.parametrize("case", ["not npy", "truncated data", "version 9", "negative shape"])
def test_malformed_bodies_get_400(client: TestClient, case: str) -> None:
    r = post_npy(client, "/reconstruct?model=glyph", MALFORMED[case][0])
    assert_problem(r, 400, ".npy")


def test_npy_errors_are_problems(client: TestClient) -> None:
    assert_problem(
        post_npy(client, "/reconstruct?model=glyph", MALFORMED["object dtype"][0]), 422, "dtype"
    )
    assert_problem(post_npy(client, "/reconstruct?model=glyph", np.zeros((2, 3, 3))), 422, "shape")
    bad = np.full((1, 7, 5), np.nan, dtype=np.float32)
    assert_problem(post_npy(client, "/reconstruct?model=glyph", bad), 422, "non-finite")
    assert_problem(post_npy(client, "/reconstruct?model=nope", glyphs(1)), 404, "nope")
    assert_problem(post_npy(client, "/reconstruct?model=glyph&inputs=1", glyphs(1)), 422, "body")
    assert_problem(post_npy(client, "/reconstruct?model=glyph&colour=red", glyphs(1)), 422)
    r = post_npy(client, "/reconstruct?model=glyph&output_format=png", glyphs(1))
    assert_problem(r, 422, "png")
    assert_problem(post_npy(client, "/sample?model=glyph", glyphs(1)), 415, NPY)
    too_many = np.zeros((2000, 7, 5), dtype=np.uint8)
    assert_problem(post_npy(client, "/reconstruct?model=glyph", too_many), 422, "at most")
