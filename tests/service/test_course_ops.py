"""Issue 17's operations on the fixture zoo: /classify (pixels28's linear classifier), /impute
(glyph, pixels28, table), /neighbors (glyph's and table's reference sets); their errors; the
same numbers over REST (JSON and .npy), the express lane, v2 REST (JSON and binary) and gRPC."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient
from PIL import Image

from service.codecs import tensors
from service.dataplane.v2 import ON_REQUEST
from service.http.app import create_app
from service.settings import Settings
from tests.live_server import free_port

from .conftest import (
    CLASSES,
    CLASSIFIER_W,
    GLYPH_REFERENCE,
    SCALER_MEAN,
    assert_problem,
    glyphs,
    wait_ready,
)


def post(client: TestClient, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    r = client.post(path, content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), **kw)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def pixels(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


def pixels28_weights() -> tuple[np.ndarray, np.ndarray]:
    """The fixture's encoder and decoder weights (conftest.build_pixels28: same seed, order)."""
    rng = np.random.default_rng(2)
    return rng.normal(0, 0.05, (784, 8)), rng.normal(0, 0.5, (8, 784))


def sigmoid(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1 / (1 + np.exp(-a))
    return out


# -- /classify ------------------------------------------------------------------------------


def test_classify_is_the_softmax_of_the_classifier_on_the_code(client: TestClient) -> None:
    x = pixels(5)
    got = post(client, "/classify", {"model": "pixels28", "inputs": x})
    w_enc, _ = pixels28_weights()
    logits = x.reshape(5, 784).astype(np.float64) @ w_enc @ CLASSIFIER_W
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    probabilities = np.array(got["probabilities"])
    np.testing.assert_allclose(probabilities, p, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-12)
    assert got["labels"] == p.argmax(1).tolist()
    assert got["label_names"] == [CLASSES[i] for i in got["labels"]]
    assert len(set(got["labels"])) > 1  # the fixture's classes are not all the same answer


def test_classify_needs_a_classifier_and_models_list_the_classes(client: TestClient) -> None:
    r = client.post("/classify", json={"model": "glyph", "inputs": glyphs(1).tolist()})
    assert_problem(r, 422, "model 'glyph' has no classifier", "models that can classify: pixels28")
    by_name = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert by_name["pixels28"]["classes"] == CLASSES
    assert "/classify" in by_name["pixels28"]["endpoints"]
    assert by_name["glyph"]["classes"] is None and "/classify" not in by_name["glyph"]["endpoints"]


def test_classify_as_npy_carries_the_label_names(client: TestClient) -> None:
    x = pixels(3)
    buf = io.BytesIO()
    np.save(buf, x)
    r = client.post(
        "/classify?model=pixels28",
        content=buf.getvalue(),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert r.status_code == 200, r.text
    table = np.load(io.BytesIO(r.content))
    want = post(client, "/classify", {"model": "pixels28", "inputs": x})
    assert table["label_names"].tolist() == want["label_names"]
    assert table["labels"].tolist() == want["labels"]
    assert np.array_equal(table["probabilities"], np.array(want["probabilities"]))


# -- /impute --------------------------------------------------------------------------------


def test_impute_iterates_with_the_known_values_kept(client: TestClient) -> None:
    x = pixels(2).astype(np.float64)
    missing = np.zeros_like(x, dtype=bool)
    missing[:, 10:18, :] = True  # eight rows of each image
    sent = np.where(missing, None, x).tolist()
    got = post(client, "/impute", {"model": "pixels28", "inputs": sent, "tolerance": 1e-6})
    out, filled = np.array(got["outputs"]), np.array(got["filled"])
    assert np.array_equal(filled, missing)
    # The values sent come back as they were read (float32), bit for bit.
    assert np.array_equal(out[~missing].astype(np.float32), x[~missing].astype(np.float32))
    # The iteration by hand (float64): start at the decoded prior mean (0.5 per code value).
    w_enc, w_dec = pixels28_weights()
    flat, holes = x.reshape(2, 784), missing.reshape(2, 784)
    current = np.where(holes, sigmoid(np.full(8, 0.5) @ w_dec), flat)
    for _ in range(100):
        new = np.where(holes, sigmoid(current @ w_enc @ w_dec), flat)
        done = np.abs(new - current).max() <= 1e-6
        current = new
        if done:
            break
    np.testing.assert_allclose(out.reshape(2, 784), current, atol=1e-5)
    assert all(1 < n < 100 for n in got["iterations"]) and all(got["converged"])
    # The fixed point differs from the first guess: the iteration did something.
    assert np.abs(current - sigmoid(np.full(8, 0.5) @ w_dec))[holes].max() > 0.05


def test_impute_records_with_absent_and_null_features(client: TestClient) -> None:
    # table's reconstruction keeps the first two standardised features and zeroes the rest:
    # missing gamma and delta end at the training mean; alpha and beta stay as sent.
    records = [
        {"alpha": 12.0, "beta": -1.5, "delta": None},
        {"alpha": 9.0, "beta": -2.5, "gamma": 1.0, "delta": 90.0},
    ]
    got = post(client, "/impute", {"model": "table", "records": records})
    assert got["outputs"] == [[12.0, -1.5, SCALER_MEAN[2], SCALER_MEAN[3]], [9.0, -2.5, 1.0, 90.0]]
    assert got["filled_features"] == [["gamma", "delta"], []]
    assert got["filled"] == [[False, False, True, True], [False] * 4]
    assert got["iterations"] == [1, 0] and got["converged"] == [True, True]
    # The same rows as inputs with nulls: the same answer.
    rows = [[12.0, -1.5, None, None], [9.0, -2.5, 1.0, 90.0]]
    assert post(client, "/impute", {"model": "table", "inputs": rows}) == got


def test_impute_images_with_a_mask_and_binarize(client: TestClient) -> None:
    x = glyphs(2, seed=4)
    mask = np.zeros((2, 35), dtype=int)
    mask[:, :7] = 1
    images = [base64.b64encode(png(img)).decode() for img in x]
    got = post(client, "/impute", {"model": "glyph", "images": images, "mask": mask.tolist()})
    out = np.array(got["outputs"])
    assert np.array_equal(np.array(got["filled"]).reshape(2, 35), mask == 1)
    # glyph: the first guess is sigmoid(20 * 0.5 - 10) = 0.5, a fixed point; the rest is kept.
    assert np.all(out.reshape(2, 35)[:, :7] == 0.5)
    assert np.array_equal(out.reshape(2, 35)[:, 7:], x.reshape(2, 35)[:, 7:])
    binary = post(
        client, "/impute", {"model": "glyph", "inputs": x, "mask": mask, "binarize": True}
    )
    assert set(np.unique(binary["outputs"]).tolist()) <= {0, 1}
    # Nothing to fill: the inputs back, no step taken.
    whole = post(client, "/impute", {"model": "glyph", "inputs": x})
    assert whole["outputs"] == x.tolist() and whole["iterations"] == [0, 0]


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((img * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ({"model": "glyph", "inputs": [[0] * 35], "mask": [[1] * 34]}, ["mask has shape [1, 34]"]),
        ({"model": "glyph", "inputs": [[0] * 35], "mask": [[2] * 35]}, ["only booleans or 0/1"]),
        ({"model": "glyph", "inputs": [[0] * 35], "mask": "top"}, ["mask must be an array"]),
        ({"model": "glyph", "inputs": [[0] * 34 + ["x"]]}, ["only numbers and nulls"]),
        ({"model": "glyph", "inputs": [[True] * 35]}, ["only numbers and nulls"]),
        ({"model": "glyph", "inputs": [[0] * 34 + [None], [0] * 35 + [None]]}, ["ragged"]),
        ({"model": "glyph", "inputs": [[0] * 34 + [[None]]]}, ["only numbers and nulls"]),
        ({"model": "glyph", "inputs": [[7] * 34 + [None]]}, ["must lie in [0, 1]"]),
        ({"model": "glyph", "inputs": [[0] * 35], "iterations": 0}, ["iterations"]),
        ({"model": "glyph", "inputs": [[0] * 35], "tolerance": 0}, ["tolerance"]),
        ({"model": "table", "records": [{"alpha": 1, "omega": 2}]}, ["unknown feature(s)"]),
        ({"model": "table", "records": [{"alpha": "1"}]}, ["records[0].alpha must be a number"]),
        ({"model": "table", "records": [{"alpha": "1e999"}]}, ["non-finite"]),
        ({"model": "table", "inputs": [[1, 2, 3]]}, ["expects [N, 4]"]),
    ],
)
def test_impute_refuses_bad_inputs_with_422(
    client: TestClient, body: dict[str, Any], needles: list[str]
) -> None:
    raw = orjson.dumps(body).replace(b'"1e999"', b"1e999")  # a number beyond float64
    r = client.post("/impute", content=raw, headers={"content-type": "application/json"})
    assert_problem(r, 422, *needles)


# -- /neighbors -----------------------------------------------------------------------------


def test_neighbors_are_the_nearest_reference_codes(client: TestClient) -> None:
    x = np.concatenate([GLYPH_REFERENCE[3:4], glyphs(2, seed=9)])
    got = post(client, "/neighbors", {"model": "glyph", "inputs": x, "k": 4})
    # glyph's code is the image: distances are square roots of differing-pixel counts.
    diff = x.reshape(3, 1, 35).astype(np.float64) - GLYPH_REFERENCE.reshape(1, 12, 35)
    d = np.sqrt((diff**2).sum(2))
    order = np.argsort(d, axis=1, kind="stable")[:, :4]
    assert got["ids"] == (100 + order).tolist()
    np.testing.assert_allclose(got["distances"], np.take_along_axis(d, order, 1), rtol=1e-12)
    assert got["ids"][0][0] == 103 and got["distances"][0][0] == 0.0
    assert got["labels"] == (order % 3).tolist()
    names = ["even", "odd", "other"]
    assert got["label_names"] == [[names[i] for i in row] for row in got["labels"]]
    assert got["split"] == "test" and "references" not in got
    # A smaller k is the first columns of a larger one.
    two = post(client, "/neighbors", {"model": "glyph", "inputs": x, "k": 2})
    assert two["ids"] == [row[:2] for row in got["ids"]]
    # Rows never influence each other: the same bits inside a larger batch.
    big = np.concatenate([x, glyphs(90, seed=1)])
    more = post(client, "/neighbors", {"model": "glyph", "inputs": big, "k": 4})
    assert more["distances"][:3] == got["distances"] and more["ids"][:3] == got["ids"]


def test_neighbors_return_the_reference_items_on_request(client: TestClient) -> None:
    x = glyphs(2, seed=5)
    got = post(
        client, "/neighbors", {"model": "glyph", "inputs": x, "k": 3, "return_references": True}
    )
    refs = np.array(got["references"])
    assert refs.shape == (2, 3, 7, 5)
    assert np.array_equal(refs, GLYPH_REFERENCE[np.array(got["ids"]) - 100])
    pngs = post(
        client,
        "/neighbors",
        {"model": "glyph", "inputs": x, "k": 3, "return_references": True, "output_format": "png"},
    )["references"]
    decoded = [
        [np.asarray(Image.open(io.BytesIO(base64.b64decode(s)))) / 255 for s in row] for row in pngs
    ]
    assert np.array_equal(np.array(decoded), refs)


def test_neighbors_errors(client: TestClient) -> None:
    body: dict[str, Any] = {"model": "glyph", "inputs": glyphs(1).tolist()}
    assert_problem(
        client.post("/neighbors", json={**body, "k": 13}),
        422,
        "k=13 is more than the 12 items of model 'glyph''s reference set",
    )
    assert_problem(client.post("/neighbors", json={**body, "k": 0}), 422, "k")
    assert_problem(client.post("/neighbors", json={**body, "k": 101}), 422, "k")
    assert_problem(
        client.post("/neighbors", json={"model": "pixels28", "inputs": pixels(1).tolist()}),
        422,
        "model 'pixels28' ships no reference set",
        "models with one: glyph, table",
    )
    table = {"model": "table", "inputs": [[10.0, -2.0, 0.5, 100.0]], "return_references": True}
    assert_problem(client.post("/neighbors", json=table), 422, "holds no items")
    r = client.post("/neighbors", json={**body, "output_format": "png", "model": "table"})
    assert r.status_code == 422
    by_name = {m["name"]: m for m in client.get("/models").json()["models"]}
    having = sorted(n for n, m in by_name.items() if "/neighbors" in m["endpoints"])
    assert having == ["glyph", "table"]


def test_neighbors_of_table_rows(client: TestClient) -> None:
    # table's code is the first two standardised features: (alpha - 10) / 2, (beta + 2) / 0.5.
    rows = [[12.0, -2.0, 0.0, 0.0], [10.0, -3.5, 0.0, 0.0]]  # codes (1, 0) and (0, -3)
    got = post(client, "/neighbors", {"model": "table", "inputs": rows, "k": 2})
    assert got["ids"] == [[1, 0], [5, 0]]
    assert got["distances"][0] == [0.0, 1.0] and got["distances"][1] == [0.0, 3.0]
    assert got["label_names"] == [["normal", "normal"], ["anomaly", "normal"]]


# -- the same numbers on every transport ------------------------------------------------------


def _v2(client: TestClient, model: str, body: dict[str, Any]) -> dict[str, np.ndarray]:
    r = client.post(f"/v2/models/{model}/infer", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    return {
        t["name"]: tensors.from_data(t["name"], t["datatype"], t["shape"], t["data"])
        for t in r.json()["outputs"]
    }


def _x(x: np.ndarray) -> dict[str, Any]:
    return {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}


def same(got: np.ndarray, expected: Any) -> None:
    want = np.asarray(expected).astype(got.dtype)
    assert got.shape == want.shape and np.array_equal(got, want), (got, want)


def _binary_v2(
    client: TestClient, model: str, x: np.ndarray, outputs: list[str], parameters: dict[str, Any]
) -> dict[str, np.ndarray]:
    """A v2 request with x as raw bytes (NaN allowed) and every output binary."""
    header = {
        "inputs": [
            {
                "name": "x",
                "shape": list(x.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs],
        "parameters": parameters,
    }
    head = orjson.dumps(header)
    r = client.post(
        f"/v2/models/{model}/infer",
        content=head + x.astype(np.float32).tobytes(),
        headers={"inference-header-content-length": str(len(head))},
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    answer, raw, out = orjson.loads(r.content[:n]), r.content[n:], {}
    for t in answer["outputs"]:
        size = t["parameters"]["binary_data_size"]
        out[t["name"]] = tensors.from_bytes(t["name"], t["datatype"], t["shape"], raw[:size])
        raw = raw[size:]
    return out


def test_v2_outputs_equal_rest_bit_for_bit(client: TestClient) -> None:
    x = pixels(4)
    cls = post(client, "/classify", {"model": "pixels28", "inputs": x})
    got = _v2(
        client,
        "pixels28",
        {"inputs": [_x(x)], "outputs": [{"name": "probabilities"}, {"name": "labels"}]},
    )
    same(got["probabilities"], cls["probabilities"])
    same(got["labels"], cls["labels"])
    assert got["labels"].dtype == np.int64
    # impute: NaN in a binary tensor is the REST null.
    holes = x.copy()
    holes[:, 5:9, :] = np.nan
    imp = post(
        client,
        "/impute",
        {"model": "pixels28", "inputs": np.where(np.isnan(holes), None, holes).tolist()},
    )
    got = _binary_v2(client, "pixels28", holes, ["imputed", "filled"], {"iterations": 50})
    imp50 = post(
        client,
        "/impute",
        {
            "model": "pixels28",
            "inputs": np.where(np.isnan(holes), None, holes).tolist(),
            "iterations": 50,
        },
    )
    same(got["imputed"], imp50["outputs"])
    same(got["filled"], imp50["filled"])
    assert imp["iterations"] == imp50["iterations"]  # converged well before 50
    # neighbors, with k as a parameter
    g = glyphs(3, seed=2)
    nb = post(client, "/neighbors", {"model": "glyph", "inputs": g, "k": 4})
    got = _v2(
        client,
        "glyph",
        {
            "inputs": [_x(g)],
            "parameters": {"k": 4},
            "outputs": [
                {"name": "neighbor_ids"},
                {"name": "neighbor_labels"},
                {"name": "neighbor_distances"},
            ],
        },
    )
    same(got["neighbor_ids"], nb["ids"])
    same(got["neighbor_labels"], nb["labels"])
    same(got["neighbor_distances"], nb["distances"])


def test_v2_metadata_and_outputs_only_on_request(client: TestClient) -> None:
    outputs = {o["name"]: o for o in client.get("/v2/models/pixels28").json()["outputs"]}
    assert outputs["probabilities"] == {
        "name": "probabilities",
        "datatype": "FP64",
        "shape": [-1, 3],
    }
    assert outputs["imputed"]["shape"] == [-1, 28, 28] and outputs["filled"]["datatype"] == "BOOL"
    assert "neighbor_ids" not in outputs
    glyph = {o["name"] for o in client.get("/v2/models/glyph").json()["outputs"]}
    assert {"neighbor_ids", "neighbor_labels", "neighbor_distances"} <= glyph
    assert "probabilities" not in glyph
    got = _v2(client, "pixels28", {"inputs": [_x(pixels(1))]})
    assert not set(got) & ON_REQUEST
    r = client.post(
        "/v2/models/glyph/infer",
        content=orjson.dumps({"inputs": [_x(glyphs(1))], "outputs": [{"name": "probabilities"}]}),
    )
    assert r.status_code == 422 and "probabilities" in r.json()["error"]
    r = client.post(
        "/v2/models/glyph/infer",
        content=orjson.dumps(
            {
                "inputs": [_x(glyphs(1))],
                "parameters": {"k": 50},
                "outputs": [{"name": "neighbor_ids"}],
            }
        ),
    )
    assert r.status_code == 422 and "k=50" in r.json()["error"]


@pytest.fixture
def grpc_address(zoo_dir: Path) -> Iterator[tuple[TestClient, str]]:
    port = free_port()
    settings = Settings(model_dir=zoo_dir, grpc_port=port, grpc_host="127.0.0.1")
    with TestClient(create_app(settings, grpc=True)) as client:
        wait_ready(client)
        yield client, f"127.0.0.1:{port}"


def test_grpc_outputs_equal_rest(grpc_address: tuple[TestClient, str]) -> None:
    http, address = grpc_address
    client = grpcclient.InferenceServerClient(address)
    try:
        x = pixels(3)
        holes = x.copy()
        holes[:, :4, :] = np.nan
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(holes)
        wanted = [grpcclient.InferRequestedOutput(n) for n in ("imputed", "filled")]
        result = client.infer("pixels28", [inp], outputs=wanted)
        rest = post(
            http,
            "/impute",
            {"model": "pixels28", "inputs": np.where(np.isnan(holes), None, x).tolist()},
        )
        same(result.as_numpy("imputed"), rest["outputs"])
        same(result.as_numpy("filled"), rest["filled"])
        inp.set_data_from_numpy(x)
        result = client.infer(
            "pixels28", [inp], outputs=[grpcclient.InferRequestedOutput("probabilities")]
        )
        cls = post(http, "/classify", {"model": "pixels28", "inputs": x})
        same(result.as_numpy("probabilities"), cls["probabilities"])
        g = glyphs(2, seed=8)
        inp = grpcclient.InferInput("x", list(g.shape), "FP32")
        inp.set_data_from_numpy(g)
        result = client.infer(
            "glyph",
            [inp],
            outputs=[grpcclient.InferRequestedOutput("neighbor_distances")],
            parameters={"k": 3},
        )
        nb = post(http, "/neighbors", {"model": "glyph", "inputs": g, "k": 3})
        same(result.as_numpy("neighbor_distances"), nb["distances"])
    finally:
        client.close()


def test_impute_and_neighbors_never_run_on_the_event_loop(client: TestClient) -> None:
    # glyph runs its batches on the loop (a fast model); impute iterates and neighbors searches,
    # so theirs go to the model's inference thread.
    plane = client.app.state.plane  # type: ignore[attr-defined]
    scheduler = plane.schedulers[plane.repository.get("glyph")]
    assert scheduler.inline
    x = glyphs(2).tolist()
    before = scheduler.inlined
    post(client, "/impute", {"model": "glyph", "inputs": x, "mask": [[1] + [0] * 34] * 2})
    post(client, "/neighbors", {"model": "glyph", "inputs": x})
    assert scheduler.inlined == before
    post(client, "/reconstruct", {"model": "glyph", "inputs": x})
    assert scheduler.inlined == before + 1
