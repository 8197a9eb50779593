"""The Open Inference Protocol over REST, in process: every operation and model family gives the
REST API's numbers bit for bit; outputs decide what runs; the binary tensor extension,
compression, requests without a content type; errors as ``{"error": ...}`` with the REST
messages."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from service.codecs import tensors
from service.dataplane.v2 import ON_REQUEST
from service.runtime.model import ModelRuntime

from .conftest import FEATURES, glyphs

ARRAYS = ("outputs", "scores", "latents", "logvar", "percentiles", "is_anomaly")


def infer(client: TestClient, model: str, body: dict[str, Any], **kw: Any) -> Any:
    return client.post(f"/v2/models/{model}/infer", content=orjson.dumps(body), **kw)


def x_input(x: np.ndarray, name: str = "x") -> dict[str, Any]:
    return {"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}


def outputs_of(response: Any) -> dict[str, np.ndarray]:
    """The JSON answer's tensors as arrays of their declared datatype."""
    assert response.status_code == 200, response.text
    out = {}
    for t in response.json()["outputs"]:
        out[t["name"]] = tensors.from_data(t["name"], t["datatype"], t["shape"], t["data"])
    return out


def rest(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(path, content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def same(got: Any, expected: Any) -> None:
    """Bit for bit: the v2 tensor ``got`` equals the REST values ``expected`` (JSON numbers,
    the shortest text of each float32 or float64) read back as the tensor's dtype."""
    a = np.asarray(got)
    b = np.asarray(expected).astype(a.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.array_equal(a, b), (a, b)


def inputs_for(model: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    if model == "pixels28":
        return rng.random((3, 28, 28), dtype=np.float32)
    if model == "table":
        return (rng.normal(size=(3, 4)) * [2, 0.5, 1, 25] + [10, -2, 0.5, 100]).astype(np.float32)
    return glyphs(3, seed=7)


MODELS = ["glyph", "glyph-denoise", "glyph-vae", "pixels28", "table"]


def assert_every_output_equals_rest(
    client: TestClient, model: str, x: np.ndarray, got: dict[str, np.ndarray]
) -> np.ndarray:
    """``got``: every output of input ``x`` (v2 REST or gRPC); each equals the REST API's
    answer bit for bit. Returns the REST latents (to decode)."""
    names = [o["name"] for o in client.get(f"/v2/models/{model}").json()["outputs"]]
    vae = model == "glyph-vae"
    enc = rest(client, "/encode", {"model": model, "inputs": x, "return_logvar": vae})
    rec = rest(client, "/reconstruct", {"model": model, "inputs": x})
    body: dict[str, Any] = {"model": model, "inputs": x}
    if model == "table":
        body["top_features"] = 4
    ano = rest(client, "/anomaly-score", body)
    same(got["mu" if vae else "z"], enc["latents"])
    if vae:
        same(got["logvar"], enc["logvar"])
    same(got["x_hat"], rec["outputs"])
    same(got["score"], ano["scores"])
    same(got["score"], rec["scores"])  # the same function both ways
    same(got["percentile"], ano["percentiles"])
    same(got["is_anomaly"], ano["is_anomaly"])
    same(got["threshold"], [ano["threshold"]])
    # Every output but those given on request only (classify, impute, neighbors).
    assert set(got) == {n for n in names if (n != "z" or not vae) and n not in ON_REQUEST}
    if model == "table":
        for i, row in enumerate(ano["results"]):
            for part in row["contributions"]:
                assert (
                    got["contributions"][i, FEATURES.index(part["feature"])] == part["contribution"]
                )
    if model == "glyph-denoise":
        same(got["denoised"], rest(client, "/denoise", {"model": model, "inputs": x})["outputs"])
    return np.asarray(enc["latents"], dtype=np.float32)


@pytest.mark.parametrize("model", MODELS)
def test_every_operation_equals_rest_bit_for_bit(client: TestClient, model: str) -> None:
    x = inputs_for(model)
    got = outputs_of(infer(client, model, {"inputs": [x_input(x)]}))  # every output
    z = assert_every_output_equals_rest(client, model, x, got)
    # decode and sample
    dec = outputs_of(infer(client, model, {"inputs": [x_input(z, "z")]}))
    same(dec["x_hat"], rest(client, "/decode", {"model": model, "latents": z})["outputs"])
    r = infer(client, model, {"inputs": [], "parameters": {"n": 3, "seed": 11, "scale": 0.5}})
    smp = rest(client, "/sample", {"model": model, "n": 3, "seed": 11, "scale": 0.5})
    drawn = outputs_of(r)
    same(drawn["z"], smp["latents"])
    same(drawn["x_hat"], smp["outputs"])
    assert r.json()["parameters"] == {"seed": 11}
    if model.startswith("glyph"):  # the binary models: binarize on every operation it has
        on = {"binarize": True}
        dec = outputs_of(infer(client, model, {"inputs": [x_input(z, "z")], "parameters": on}))
        same(dec["x_hat"], rest(client, "/decode", {"model": model, "latents": z, **on})["outputs"])
        r = infer(client, model, {"inputs": [], "parameters": {"n": 2, "seed": 4, **on}})
        smp = rest(client, "/sample", {"model": model, "n": 2, "seed": 4, **on})
        same(outputs_of(r)["x_hat"], smp["outputs"])
        if model == "glyph-denoise":
            body = {"inputs": [x_input(x)], "outputs": [{"name": "denoised"}], "parameters": on}
            den = rest(client, "/denoise", {"model": model, "inputs": x, **on})
            same(outputs_of(infer(client, model, body))["denoised"], den["outputs"])


def test_integer_inputs_of_any_shape_are_converted(client: TestClient) -> None:
    # Flat integer data of a [2, 7, 5] tensor (a check once compared it in the wrong layout).
    x = glyphs(2)
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [2, 7, 5],
                "datatype": "INT64",
                "data": x.astype(int).ravel().tolist(),
            }
        ],
        "outputs": [{"name": "x_hat"}],
    }
    got = outputs_of(infer(client, "glyph", body))
    same(got["x_hat"], rest(client, "/reconstruct", {"model": "glyph", "inputs": x})["outputs"])


def test_parameters_are_the_rest_options(client: TestClient) -> None:
    x = glyphs(2)
    got = outputs_of(
        infer(
            client,
            "glyph",
            {
                "inputs": [x_input(x)],
                "parameters": {"binarize": True, "threshold": 0.05},
                "outputs": [{"name": "x_hat"}, {"name": "is_anomaly"}, {"name": "threshold"}],
            },
        )
    )
    rec = rest(client, "/reconstruct", {"model": "glyph", "inputs": x, "binarize": True})
    ano = rest(client, "/anomaly-score", {"model": "glyph", "inputs": x, "threshold": 0.05})
    same(got["x_hat"], rec["outputs"])
    same(got["is_anomaly"], ano["is_anomaly"])
    assert got["threshold"].tolist() == [0.05]


def test_rest_options_that_are_not_parameters_are_ignored(client: TestClient) -> None:
    """The answer is tensors: output_format (PNG strings), the model and version (the path
    says), input forms and ids are no v2 parameters (output_format was a 500)."""
    x = glyphs(2)
    body: dict[str, Any] = {"inputs": [x_input(x)], "outputs": [{"name": "x_hat"}]}
    plain = outputs_of(infer(client, "glyph", body))
    noise = {"output_format": "png", "version": "9", "model": "nope", "resize": True}
    noise |= {"top_features": 1, "return_logvar": True, "inputs": "x", "ids": "a"}
    for key, value in noise.items():
        got = outputs_of(infer(client, "glyph", {**body, "parameters": {key: value}}))
        same(got["x_hat"], plain["x_hat"])
    sampled = infer(client, "glyph", {"inputs": [], "parameters": {"n": 1, **noise}})
    assert sampled.status_code == 200, sampled.text


def test_asking_for_z_runs_the_encoder_alone(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    infer_orig = ModelRuntime.infer

    def spy(self: ModelRuntime, op: Any, x: Any) -> Any:
        calls.append(op)
        return infer_orig(self, op, x)

    monkeypatch.setattr(ModelRuntime, "infer", spy)
    r = infer(client, "glyph", {"inputs": [x_input(glyphs(1))], "outputs": [{"name": "z"}]})
    assert [t["name"] for t in r.json()["outputs"]] == ["z"]
    assert calls == ["encode"]
    calls.clear()
    body = {"inputs": [x_input(glyphs(1))], "outputs": [{"name": "score"}, {"name": "x_hat"}]}
    assert [t["name"] for t in infer(client, "glyph", body).json()["outputs"]] == ["score", "x_hat"]
    assert calls == ["forward"]  # one reconstruction gives both


def test_binary_tensor_extension_and_compression(client: TestClient) -> None:
    x = glyphs(4)
    header = {
        "id": "req-1",
        "inputs": [
            {
                "name": "x",
                "shape": [4, 35],
                "datatype": "FP32",
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        "outputs": [
            {"name": "x_hat", "parameters": {"binary_data": True}},
            {"name": "score"},
        ],
    }
    head = orjson.dumps(header)
    body = head + x.tobytes()
    expected = rest(client, "/reconstruct", {"model": "glyph", "inputs": x})
    for encoding, packed in (
        (None, body),
        ("gzip", gzip.compress(body)),
        ("deflate", zlib.compress(body)),
    ):
        headers = {"inference-header-content-length": str(len(head))}
        if encoding:
            headers["content-encoding"] = encoding
        # No content type at all (tritonclient's sync client sends none).
        r = client.post(
            "/v2/models/glyph/infer",
            content=packed,
            headers={**headers, "accept-encoding": "gzip"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-encoding"] == "gzip"  # httpx decoded it
        n = int(r.headers["inference-header-content-length"])
        answer = orjson.loads(r.content[:n])
        assert answer["id"] == "req-1"
        x_hat, score = answer["outputs"]
        assert x_hat["parameters"]["binary_data_size"] == 4 * 35 * 4 and "data" not in x_hat
        raw = r.content[n:]
        same(tensors.from_bytes("x_hat", "FP32", x_hat["shape"], raw), expected["outputs"])
        same(score["data"], expected["scores"])


def test_binary_data_output_for_all_outputs(client: TestClient) -> None:
    x = glyphs(2)
    body = {"inputs": [x_input(x)], "parameters": {"binary_data_output": True}}
    r = infer(client, "glyph", body)
    n = int(r.headers["inference-header-content-length"])
    outputs = orjson.loads(r.content[:n])["outputs"]
    assert all("data" not in t and t["parameters"]["binary_data_size"] > 0 for t in outputs)
    assert n + sum(t["parameters"]["binary_data_size"] for t in outputs) == len(r.content)


def binary_outputs(response: Any) -> dict[str, np.ndarray]:
    """A binary answer's tensors (every output binary) as arrays of their datatype."""
    assert response.status_code == 200, response.text
    n = int(response.headers["inference-header-content-length"])
    out, at = {}, n
    for t in orjson.loads(response.content[:n])["outputs"]:
        size = t["parameters"]["binary_data_size"]
        raw = response.content[at : at + size]
        out[t["name"]] = tensors.from_bytes(t["name"], t["datatype"], t["shape"], raw)
        at += size
    assert at == len(response.content)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_binary_tensors_are_the_json_tensors(client: TestClient, model: str) -> None:
    """The binary extension both ways gives the JSON answer's numbers, bit for bit, for every
    output (FP32, FP64, BOOL) of every operation: samples, latents and sampling."""
    x = inputs_for(model)
    z = outputs_of(infer(client, model, {"inputs": [x_input(x)]}))["mu" if "vae" in model else "z"]
    draw = {"n": 2, "seed": 3}
    for name, array, parameters in (("x", x, {}), ("z", z, {}), (None, None, draw)):
        inputs = [x_input(array, name)] if name is not None else []
        json_answer = outputs_of(infer(client, model, {"inputs": inputs, "parameters": parameters}))
        header: dict[str, Any] = {
            "inputs": [],
            "parameters": {**parameters, "binary_data_output": True},
        }
        tail = b""
        if name is not None:
            tail = np.ascontiguousarray(array, dtype="<f4").tobytes()
            header["inputs"] = [
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(tail)},
                }
            ]
        head = orjson.dumps(header)
        r = client.post(
            f"/v2/models/{model}/infer",
            content=head + tail,
            headers={"inference-header-content-length": str(len(head))},
        )
        got = binary_outputs(r)
        assert list(got) == list(json_answer)
        for key, value in json_answer.items():
            assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{", 400, "not valid JSON"),
        (b"[]", 422, "JSON object"),
        (b'{"inputs": [{"name": "x"}]}', 422, "inputs.0.shape"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 35], "datatype": "FP32", "data": [1]}]}',
            422,
            "has 1 elements; shape [1, 35] needs 35",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1,2,3]}]}',
            422,
            "inputs has shape [1, 3]; model 'glyph' expects [N, 7, 5] or [N, 35]",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}',
            422,
            "datatype 'BYTES'",
        ),
        (
            b'{"inputs": [{"name": "q", "shape": [1], "datatype": "FP32", "data": [1]}]}',
            422,
            "takes one input: 'x'",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 35], "datatype": "FP32", "data": '
            + orjson.dumps([2.0] * 35)
            + b"}]}",
            422,
            "inputs values must lie in [0, 1] for model 'glyph'",
        ),
        (
            b'{"inputs": [], "outputs": [{"name": "percentile"}]}',
            422,
            "not available from model 'glyph' with no input",
        ),
        (b'{"inputs": [], "parameters": {"n": 0}}', 422, "parameters: n:"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 35], "datatype": "FP32", '
            b'"parameters": {"binary_data_size": 140}}]}',
            422,
            "binary_data_size 140",
        ),
    ],
)
def test_errors_are_the_protocols_with_rest_messages(
    client: TestClient, body: bytes, status: int, needle: str
) -> None:
    r = client.post("/v2/models/glyph/infer", content=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert needle in r.json()["error"], r.json()
    assert set(r.json()) == {"error"}
    assert r.headers["x-request-id"]


def test_unknown_model_version_route_and_media_type(client: TestClient) -> None:
    rest_404 = client.post("/reconstruct", json={"model": "nope", "inputs": [[0] * 35]})
    r = infer(client, "nope", {"inputs": []})
    assert r.status_code == 404 and r.json() == {"error": rest_404.json()["detail"]}
    assert client.get("/v2/models/nope/ready").status_code == 404
    r = client.get("/v2/models/glyph/versions/9/ready")
    assert r.status_code == 404 and "no version '9'" in r.json()["error"]
    version = client.get("/v2/models/glyph").json()["versions"][0]
    assert client.get(f"/v2/models/glyph/versions/{version}/ready").json()["ready"] is True
    assert client.get("/v2/nothing").status_code == 404
    # Any content type (as Triton reads it): the body is what counts.
    r = client.post("/v2/models/glyph/infer", content=b"x", headers={"content-type": "text/csv"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = client.post(
        "/v2/models/glyph/infer", content=b"not gzip", headers={"content-encoding": "gzip"}
    )
    assert r.status_code == 400 and "gzip" in r.json()["error"]


def test_a_decompression_bomb_is_413(make_client: Any) -> None:
    with make_client(max_body_bytes=4096) as client:
        bomb = gzip.compress(b"{" + b" " * 100_000 + b"}")
        assert len(bomb) < 4096
        r = client.post(
            "/v2/models/glyph/infer", content=bomb, headers={"content-encoding": "gzip"}
        )
        assert r.status_code == 413 and "after decompression" in r.json()["error"]


def test_server_health_metadata_and_index(client: TestClient) -> None:
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data", "model_repository"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/table").json()
    assert meta["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [-1, 4]}
    assert {"name": "contributions", "datatype": "FP64", "shape": [-1, 4]} in meta["outputs"]
    assert {"name": "is_anomaly", "datatype": "BOOL", "shape": [-1]} in meta["outputs"]
    index = client.post("/v2/repository/index").json()
    assert {row["name"] for row in index} == {
        "glyph",
        "glyph-denoise",
        "glyph-vae",
        "pixels28",
        "table",
    }
    assert all(row["state"] == "READY" for row in index)


def test_not_ready_while_loading(make_client: Any) -> None:
    with make_client(ready=False) as client:
        # Loading may finish at any moment: either answer is consistent.
        r = client.get("/v2/health/ready")
        assert (r.status_code, r.json()) in ((503, {"ready": False}), (200, {"ready": True}))


def test_metrics_count_v2_requests(client: TestClient) -> None:
    infer(client, "glyph", {"inputs": [x_input(glyphs(1))]})
    text = client.get("/metrics").text
    assert 'endpoint="/v2/models/{model}/infer",model="glyph",status="200"' in text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        # Optional fields may be left out, not null (the documented schema says so too).
        (b'{"id": null, "inputs": []}', "id: Value error, null is not allowed"),
        (b'{"inputs": [], "outputs": null}', "outputs: Value error, null is not allowed"),
        (b'{"inputs": [], "parameters": null}', "parameters: Value error, null"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 35], "datatype": "FP32", "data": null}]}',
            "inputs.0.data: Value error, null is not allowed",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 35], "datatype": "FP32"}]}',
            "input 'x' has no data; send 'data' or binary_data_size",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [0], "datatype": "FP32", "data": []},'
            b' {"name": "x", "shape": [0], "datatype": "FP32", "data": []}]}',
            "input 'x' is given twice",
        ),
        # Parameters are strings, numbers or booleans; the binary extension's are booleans.
        (
            b'{"inputs": [], "parameters": {"n": {"a": 1}}}',
            "parameters.n: Value error, a parameter is a string, a number or a boolean",
        ),
        (
            b'{"inputs": [], "parameters": {"binary_data_output": "yes"}}',
            "parameter binary_data_output is 'yes'; send true or false",
        ),
        (
            b'{"inputs": [], "outputs": [{"name": "z", "parameters": {"binary_data": 1}}]}',
            "parameter binary_data of output 'z' is '1'",
        ),
        # Triton's classification extension is not offered: not silently ignored either.
        (
            b'{"inputs": [], "outputs": [{"name": "z", "parameters": {"classification": 2}}]}',
            "output 'z' asks for classification (Triton's extension)",
        ),
    ],
)
def test_requests_as_strict_as_the_documented_schema(
    client: TestClient, body: bytes, needle: str
) -> None:
    # (The express lane declines the null id and outputs: tests/service/test_v2_express.py.)
    r = client.post("/v2/models/glyph/infer", content=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"], r.json()


def test_the_openapi_document_describes_v2_precisely(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    post = doc["paths"]["/v2/models/{model}/versions/{version}/infer"]["post"]
    assert [p["name"] for p in post["parameters"]] == ["model", "version"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/V2InferenceRequest"
    }
    assert set(post["responses"]["200"]["content"]) == {
        "application/json",
        "application/octet-stream",
    }
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/V2Error"
    }
    tensor = schemas["V2RequestInput"]["properties"]
    assert tensor["datatype"]["enum"] == list(tensors.DTYPES)
    assert tensor["name"]["enum"] == ["x", "z"]
    assert tensor["shape"]["items"] == {"type": "integer", "minimum": 0}
    # Every output a model's metadata lists is a documented output name.
    names = set(schemas["V2RequestOutput"]["properties"]["name"]["enum"])
    for model in ("glyph", "glyph-denoise", "glyph-vae", "pixels28", "table"):
        meta = client.get(f"/v2/models/{model}").json()
        assert {o["name"] for o in meta["outputs"]} <= names
    # The repository index is served on GET and POST: both are documented (Allow matches).
    assert set(doc["paths"]["/v2/repository/index"]) == {"get", "post"}
    r = client.request("PUT", "/v2/repository/index")
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}


def test_repository_index_ready_filter(client: TestClient) -> None:
    every = client.post("/v2/repository/index").json()
    assert client.get("/v2/repository/index").json() == every
    assert client.post("/v2/repository/index", json={"ready": False}).json() == every
    ready = client.post("/v2/repository/index", json={"ready": True}).json()
    assert ready == [row for row in every if row["state"] == "READY"]
    r = client.post("/v2/repository/index", json={"ready": "yes"})
    assert r.status_code == 422 and "ready: Input should be a valid boolean" in r.json()["error"]


def test_accept_encoding_weights(client: TestClient) -> None:
    body = {"inputs": [], "parameters": {"n": 1, "seed": 1}}
    for accept, coding in (
        ("gzip;q=0, deflate", "deflate"),
        ("gzip;q=0.0, deflate;q=0", None),
        ("deflate;q=0.5, gzip;q=0.1", "gzip"),
        ("identity", None),
    ):
        r = infer(client, "glyph", body, headers={"accept-encoding": accept})
        assert r.status_code == 200 and r.headers.get("content-encoding") == coding, accept


PLAIN_TENSOR = {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0.5, 1, -2.25]}


@pytest.mark.parametrize(
    ("extra", "taken"),
    [
        ({}, True),
        ({"id": "r-1"}, True),
        ({"outputs": [{"name": "x_hat"}, {"name": "score"}]}, True),
        ({"id": None}, False),  # a null id: the full path refuses it
        ({"id": 7}, False),
        ({"outputs": None}, False),
        ({"outputs": [{"name": "x_hat", "parameters": {"binary_data": True}}]}, False),
        ({"parameters": {}}, False),
    ],
)
def test_the_plain_reader_takes_exactly_the_plain_requests(
    extra: dict[str, Any], taken: bool
) -> None:
    read = tensors.plain(orjson.dumps({"inputs": [PLAIN_TENSOR], **extra}))
    assert (read is not None) is taken
    if read is not None:
        assert read.name == "x" and read.dims == [1, 3] and read.id == extra.get("id")
        assert read.wide.tolist() == [0.5, 1.0, -2.25]
        outputs = extra.get("outputs")
        assert read.outputs == (None if outputs is None else [o["name"] for o in outputs])
    assert tensors.plain(orjson.dumps({"outputs": [{"name": "x_hat"}]})) is None  # no inputs


def test_the_flat_reader_takes_bodies_with_and_without_a_model() -> None:
    from service.codecs.flatjson import flat_body

    rows = [[0.5, 1.0], [2.0, -3.0]]
    named = flat_body(orjson.dumps({"model": "font", "inputs": rows}))
    assert named is not None and named[0] == "font" and named[1].tolist() == rows
    bare = flat_body(orjson.dumps({"inputs": rows}))
    assert bare is not None and bare[0] is None and bare[1].tolist() == rows
    assert flat_body(orjson.dumps({"model": 3, "inputs": rows})) is None
    assert flat_body(orjson.dumps({"inputs": rows, "binarize": True})) is None
