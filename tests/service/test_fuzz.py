"""Schema-driven fuzzing of every endpoint against the app's own OpenAPI document.

Bodies come from the request schemas in ``/openapi.json`` (:func:`from_schema`), then from
strategies that know the loaded models (shaped arrays, records keyed by the real feature names,
latents of the right width) with hostile values mixed in (NaN/Infinity literals, numbers beyond
float32 and float64, strings, booleans, nulls, ragged rows), and from mutated binary bodies
(.npy, PNG uploads). Every answer must be a 2xx that matches the documented response schema, or
a documented 4xx ``application/problem+json`` with a detail; never a 5xx.

Both zoos are fuzzed: the tiny fixture models and the shipped ``models/``. Hypothesis runs
derandomized (a fixed seed per test) without an example database, so ``make test`` sees the
same few hundred examples every run.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from service.http.app import create_app
from service.http.openapi import Problem
from service.settings import Settings

from .conftest import wait_ready

MODELS = Path(__file__).resolve().parents[2] / "models"
PROBLEM = "application/problem+json"
PROBLEM_SCHEMA = Problem.model_json_schema()

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,  # speed is the benchmarks' business
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Zoo:
    """A served zoo: the client, its OpenAPI document and what each model takes."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.spec: dict[str, Any] = client.get("/openapi.json").json()
        self.models: list[dict[str, Any]] = client.get("/models").json()["models"]
        self.names = [m["name"] for m in self.models]
        # The REST API's POST routes; the v2 ones (Open Inference Protocol) apart.
        posts = sorted(p for p, ops in self.spec["paths"].items() if "post" in ops)
        self.post_paths = [p for p in posts if not p.startswith("/v2")]
        self.v2_post_paths = [p for p in posts if p.startswith("/v2")]
        self.get_paths = sorted(p for p, ops in self.spec["paths"].items() if "get" in ops)

    def version(self, name: str) -> str:
        return next((str(m["version"]) for m in self.models if m["name"] == name), "1")

    def request_schema(self, path: str) -> dict[str, Any]:
        body = self.spec["paths"][path]["post"]["requestBody"]["content"]
        schema: dict[str, Any] = body["application/json"]["schema"]
        return self.inline(schema)

    def inline(self, schema: Any, depth: int = 0) -> Any:
        """``schema`` with its ``$ref`` into the components written in place; a recursive one
        (v2 tensor data, arrays nested by the shape) ends in flat arrays after a few levels."""
        if isinstance(schema, list):
            return [self.inline(s, depth) for s in schema]
        if not isinstance(schema, dict):
            return schema
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if depth > 4:
                return {"type": "array", "items": {"type": "number"}}
            target = self.spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.inline({**target, **rest}, depth + 1)
        return {k: self.inline(v, depth) for k, v in schema.items()}

    def check(self, method: str, template: str, response: Any, sent: Any) -> None:
        """The invariant: no 5xx; a documented 4xx problem document, or a 2xx as documented."""
        status = response.status_code
        where = f"{method} {template} -> {status}: sent {str(sent)[:300]!r}\n{response.text[:500]}"
        assert status < 500, where
        documented = self.spec["paths"][template][method.lower()]["responses"]
        ctype = response.headers.get("content-type", "")
        if status >= 400 and template.startswith("/v2"):  # the protocol's {"error": ...}
            assert str(status) in documented or status in (404, 405), where
            assert ctype.startswith("application/json"), where
            error = response.json()
            assert set(error) == {"error"} and error["error"].strip(), where
            return
        if status >= 400:
            assert str(status) in documented or status in (404, 405), where
            assert ctype.startswith(PROBLEM), where
            problem = response.json()
            self.validate(problem, PROBLEM_SCHEMA, where)
            assert problem["status"] == status and problem["detail"].strip(), where
            return
        assert status == 200, where
        if ctype.startswith("application/json") and response.content:
            schema = documented["200"]["content"]["application/json"]["schema"]
            self.validate(response.json(), schema, where)

    def validate(self, instance: Any, schema: dict[str, Any], where: str) -> None:
        """Against a schema of the OpenAPI document (``$ref`` into its components)."""
        schema = {**schema, "components": self.spec["components"]}
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(instance))
        assert not errors, f"{where}\n{errors[0].message}"


@pytest.fixture(scope="module", params=["fixtures", "shipped"])
def zoo(request: pytest.FixtureRequest, zoo_dir: Path) -> Iterator[Zoo]:
    """The fixture zoo (small limits, so that limits are hit) or the shipped models/."""
    if request.param == "fixtures":
        s = Settings(model_dir=zoo_dir, default_model="glyph", max_batch=8, max_samples=8)
    else:
        s = Settings(model_dir=MODELS)
    with TestClient(create_app(s), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield Zoo(client)


def dumps(body: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity literals, integers of any size."""
    return json.dumps(body, allow_nan=True).encode()


# -- strategies ------------------------------------------------------------------------------

FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1.0, 1.0)
# Any text a JSON string can carry, lone UTF-16 surrogates included (json.dumps escapes them).
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=6) | st.sampled_from(
    ["\ud800", "font\udfff", "\x00", "../font"]
)
# Finite float32 values that overflow a scaler or a layer, and the float64 extremes.
EXTREMES = [3e38, -3e38, 1e30, -1e20, 1e308, -1e308, 5e-324]
HOSTILE_SCALARS = (
    st.none()
    | st.booleans()
    | TEXT
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([*EXTREMES, 3.5e38, -3.5e38, 2**64])
)
JSON = st.recursive(
    st.none() | st.booleans() | FLOATS | st.integers() | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for a JSON schema: the subset pydantic writes for the request models
    (objects, anyOf, enum, bounded numbers, arrays, strings, booleans, null; ``{}`` is any)."""
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = {k: from_schema(v) for k, v in schema.get("properties", {}).items()}
        required = {k: props.pop(k) for k in schema.get("required", [])}
        base = st.fixed_dictionaries(required, optional=props)
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, dict):
            more = st.dictionaries(st.text(max_size=6), from_schema(extra), max_size=3)
            return st.tuples(more, base).map(lambda pair: {**pair[0], **pair[1]})
        return base
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=4)
    if kind == "string":
        return TEXT
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**64) - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**64 + 1) - 1)
        return st.integers(low, high)
    if kind == "number":
        return st.floats(
            schema.get("minimum", schema.get("exclusiveMinimum")),
            schema.get("maximum", schema.get("exclusiveMaximum")),
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    return JSON


def element(hostile: bool) -> st.SearchStrategy[Any]:
    """Numbers in [0, 1] (the image range), or, when hostile, anything."""
    clean = st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0.0, 1.0) | st.integers(0, 1)
    return st.one_of(clean, FLOATS, HOSTILE_SCALARS) if hostile else clean


@st.composite
def shaped(draw: st.DrawFn, dims: list[int], hostile: bool) -> Any:
    """Nested lists [n, *dims] (or flattened rows), sometimes ragged or with a hostile value."""
    n = draw(st.integers(0 if hostile else 1, 3))
    if draw(st.booleans()):
        dims = [math.prod(dims)]
    # Values in [0, 1] (0/1 for binary-looking inputs) from a drawn seed: drawing a 28x28 image
    # number by number would spend the examples on pixels.
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.random([n, *dims])
    if draw(st.booleans()):
        values = values.round()
    if hostile and draw(st.integers(0, 3)) == 0:  # one extreme value everywhere
        values = np.full([n, *dims], draw(st.sampled_from(EXTREMES)))
    arr: Any = values.tolist()
    if hostile and arr and draw(st.integers(0, 2)) == 0:
        row = arr[draw(st.integers(0, n - 1))]
        while isinstance(row[0], list):
            row = row[0]
        row[draw(st.integers(0, len(row) - 1))] = draw(element(True))
    if hostile and arr and draw(st.integers(0, 4)) == 0:
        arr[0] = arr[0][:-1]  # ragged
    return arr


@st.composite
def model_body(draw: st.DrawFn, zoo: Zoo, path: str) -> dict[str, Any]:
    """A body that names a real model and sends the right kind of input; about half the
    bodies carry a mistake (a hostile value, a ragged row, an option the model cannot honour,
    a field replaced by any JSON value), the others should mostly succeed."""
    models = zoo.models
    if path == "/denoise" and draw(st.integers(0, 3)):
        models = [m for m in models if m["denoiser"]] or models
    model = draw(st.sampled_from(models))
    body: dict[str, Any] = {"model": model["name"]}
    hostile = draw(st.booleans())
    mistake = st.booleans() if hostile else st.just(False)
    if path == "/decode":
        body["latents"] = draw(shaped([model["latent_dim"]], hostile))
    elif path == "/sample":
        body["n"] = draw(st.integers(-1, 300) | HOSTILE_SCALARS if hostile else st.integers(1, 8))
        body["seed"] = draw(st.none() | st.integers(-1 if hostile else 0, 2**63 - 1))
        body["scale"] = draw(FLOATS if hostile else st.floats(0.01, 10.0))
    elif model["input"]["features"] and draw(st.booleans()):
        extra = st.lists(TEXT, max_size=1) if hostile else st.just([])
        features = model["input"]["features"] + draw(extra)
        value = element(True) if hostile else st.floats(-1e6, 1e6)
        record = st.fixed_dictionaries({f: value for f in features})
        body["records"] = draw(st.lists(record, min_size=1 - hostile, max_size=3))
    else:
        body["inputs"] = draw(shaped(model["input"]["shape"], hostile))
    image = model["input"]["kind"] == "image" and len(model["input"]["shape"]) == 2
    if path in ("/decode", "/reconstruct", "/denoise", "/sample"):
        png = draw(st.booleans()) if image else draw(mistake)
        body["output_format"] = "png" if png else "array"
        body["binarize"] = draw(st.booleans()) if model["input"]["binary"] else draw(mistake)
    if path == "/anomaly-score":
        body["threshold"] = draw(st.none() | (FLOATS if hostile else st.floats(0.0, 1.0)))
        if model["input"]["kind"] == "tabular":
            body["top_features"] = draw(st.none() | st.integers(-1 if hostile else 0, 40))
    if path == "/encode":
        body["return_logvar"] = (model["family"] == "vae" and draw(st.booleans())) or draw(mistake)
    if path == "/impute":
        body["iterations"] = draw(st.integers(-1 if hostile else 1, 5))
        if "inputs" in body and draw(st.booleans()):  # a mask of the inputs' shape (or not)
            size = math.prod(model["input"]["shape"])
            rows = len(body["inputs"]) if isinstance(body["inputs"], list) else 1
            flags = st.integers(0, 2 if hostile else 1)
            body["mask"] = draw(
                st.lists(
                    st.lists(flags, min_size=size, max_size=size), min_size=rows, max_size=rows
                )
            )
    if path == "/neighbors":
        body["k"] = draw(st.integers(-1 if hostile else 1, 40))
        body["return_references"] = draw(st.booleans())
        if image and draw(st.booleans()):
            body["output_format"] = "png"
    if hostile and draw(st.booleans()):  # one field replaced by any JSON value
        key = draw(st.sampled_from(sorted(body)))
        body[key] = draw(JSON)
    return body


# -- the fuzz tests ----------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_bodies_from_the_openapi_schemas(zoo: Zoo, data: st.DataObject) -> None:
    """Bodies valid for the documented request schema (model names mostly real)."""
    path = data.draw(st.sampled_from(zoo.post_paths), label="path")
    body = data.draw(from_schema(zoo.request_schema(path)), label="body")
    if data.draw(st.booleans()):
        body["model"] = data.draw(st.sampled_from(zoo.names) | TEXT)
    r = zoo.client.post(path, content=dumps(body), headers={"content-type": "application/json"})
    zoo.check("POST", path, r, body)


@FUZZ
@given(data=st.data())
def test_bodies_for_the_loaded_models(zoo: Zoo, data: st.DataObject) -> None:
    """Right-kind inputs for real models, with hostile values, shapes and fields mixed in."""
    path = data.draw(st.sampled_from(zoo.post_paths), label="path")
    body = data.draw(model_body(zoo, path), label="body")
    accept = data.draw(st.sampled_from(["application/json", "*/*", "application/x-npy"]))
    if accept.endswith("npy") and body.get("output_format") == "png":
        accept = data.draw(st.sampled_from(["application/json", accept]))  # that is a 422
    headers = {"content-type": "application/json", "accept": accept}
    r = zoo.client.post(path, content=dumps(body), headers=headers)
    zoo.check("POST", path, r, body)


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def png_bytes(height: int, width: int, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), color=1).save(buf, format="PNG")
    return buf.getvalue()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """A valid file, kept, truncated, or with a few bytes overwritten."""
    how = draw(st.sampled_from(["keep", "truncate", "flip"]))
    if how == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    return data


@st.composite
def npy_header_body(draw: st.DrawFn) -> bytes:
    """A .npy file whose header dictionary is fuzzed: descr, fortran_order, shape, extra keys."""
    dim = st.sampled_from([1, 1, 2, 5, 7, 0]) | st.integers(-2, 2**65) | st.booleans()
    descr = ["<f4", "<f4", "|O", "<U3", "V8", "<c8", "f", "(2,)f4", "<f9", "|b1"]
    header = {
        "descr": draw(st.sampled_from(descr)),
        "fortran_order": draw(st.booleans() | st.integers(0, 1)),
        "shape": tuple(draw(st.lists(dim, max_size=draw(st.sampled_from([4, 70]))))),
    }
    count = math.prod(header["shape"])
    exact = 0 <= count <= 4096 and draw(st.booleans())
    if draw(st.integers(0, 5)) == 0:
        header[draw(st.sampled_from(["extra", "descr"]))] = draw(st.integers())
    text = repr(header).encode("latin-1") if draw(st.booleans()) else repr(list(header)).encode()
    text = text.ljust(64 * (len(text) // 64 + 1) - 11) + b"\n"
    # The data: as long as the header says (for 4-byte items), or any bytes.
    payload = bytes(4 * count) if exact else draw(st.binary(max_size=64))
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + payload


def multipart_body(images: list[bytes], boundary: bytes) -> bytes:
    parts = [
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="files"; filename="%d.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" % i + image + b"\r\n"
        for i, image in enumerate(images)
    ]
    return b"".join(parts) + b"--" + boundary + b"--\r\n"


@FUZZ
@given(data=st.data())
def test_raw_multipart_and_npy_headers(zoo: Zoo, data: st.DataObject) -> None:
    """Multipart bodies with mutated framing or boundaries, and .npy files with fuzzed headers."""
    path = data.draw(st.sampled_from(["/encode", "/reconstruct", "/denoise", "/anomaly-score"]))
    if data.draw(st.booleans(), label="npy"):
        body = data.draw(npy_header_body(), label="npy")
        headers = {"content-type": "application/x-npy"}
    else:
        count = data.draw(st.integers(0, 12))
        body = data.draw(mutated(multipart_body([png_bytes(7, 5, "L")] * count, b"xyz")))
        boundary = data.draw(st.sampled_from(["xyz", "", '"xyz"', "other", "x" * 200, None]))
        ctype = "multipart/form-data" + ("" if boundary is None else f"; boundary={boundary}")
        headers = {"content-type": ctype}
    r = zoo.client.post(path, content=body, headers=headers)
    zoo.check("POST", path, r, (headers, body[:120]))


@FUZZ
@given(data=st.data())
def test_binary_bodies(zoo: Zoo, data: st.DataObject) -> None:
    """.npy bodies and multipart PNG uploads, valid or mutated, for real models."""
    model = data.draw(st.sampled_from(zoo.models), label="model")
    shape = model["input"]["shape"]
    if data.draw(st.booleans(), label="npy"):
        path = data.draw(st.sampled_from(["/encode", "/reconstruct", "/anomaly-score", "/decode"]))
        dims = [model["latent_dim"]] if path == "/decode" else shape
        n = data.draw(st.integers(0, 3))
        dtype = data.draw(st.sampled_from(["<f4", ">f8", "<i8", "|u1", "|b1", "<f2"]))
        array = np.random.default_rng(n).random([n, *dims]).astype(dtype)
        body = data.draw(mutated(npy_bytes(array)), label="npy")
        query = f"?model={quote(model['name'])}"
        headers = {"content-type": "application/x-npy"}
        if data.draw(st.booleans()):
            headers["accept"] = "application/x-npy"
        r = zoo.client.post(path + query, content=body, headers=headers)
        zoo.check("POST", path, r, (query, body[:80]))
        return
    path = data.draw(st.sampled_from(["/encode", "/reconstruct", "/denoise", "/anomaly-score"]))
    size = shape[:2] if len(shape) == 2 else [7, 5]
    mode = data.draw(st.sampled_from(["L", "RGBA", "P", "I;16", "1"]))
    images = [
        data.draw(mutated(png_bytes(size[0], size[1], mode)), label="png")
        for _ in range(data.draw(st.integers(0, 3)))
    ]
    query = {"model": model["name"], "resize": data.draw(st.sampled_from(["true", "false", "x"]))}
    files = [("files", (f"{i}.png", b, "image/png")) for i, b in enumerate(images)]
    r = zoo.client.post(path, params=query, files=files or [("other", ("", b"", "text/plain"))])
    zoo.check("POST", path, r, (query, [b[:40] for b in images]))


def segment(text: str) -> str:
    """A path segment as sent: percent-encoded, dots too (clients resolve '..' themselves)."""
    return quote(text, safe="").replace(".", "%2E")


@FUZZ
@given(data=st.data())
def test_get_paths(zoo: Zoo, data: st.DataObject) -> None:
    """Every GET route, with path parameters both real and made up."""
    template = data.draw(st.sampled_from(zoo.get_paths), label="path")
    name = data.draw(st.sampled_from(zoo.names) | st.text(min_size=1, max_size=20))
    filename = data.draw(
        st.sampled_from(["loss.png", "model.json", "..", "a.png"]) | st.text(min_size=1)
    )
    path = template.replace("{name}", segment(name)).replace("{filename}", segment(filename))
    version = data.draw(st.sampled_from([zoo.version(name), "1"]) | st.text(min_size=1))
    path = path.replace("{model}", segment(name)).replace("{version}", segment(version))
    r = zoo.client.get(path)
    if template == "/models/{name}/files/{filename}" and r.status_code == 200:
        assert r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG")
    elif r.status_code == 200 and template in ("/metrics", "/models/{name}/card"):
        assert r.text
    else:
        zoo.check("GET", template, r, path)


def test_extreme_values_on_every_model(zoo: Zoo) -> None:
    """A sweep, not a search: each extreme value filling a whole input (or latent) batch, for
    every loaded model and endpoint. Finite float32 values can still overflow a tabular scaler
    or a decoder's layers; the answer must then be a 422, not a 500 or nulls."""
    for model in zoo.models:
        for value in [*EXTREMES, 3.5e38, 0.0]:
            inputs = np.full([2, *model["input"]["shape"]], value).tolist()
            latents = np.full([2, model["latent_dim"]], value).tolist()
            for path in zoo.post_paths:
                body: dict[str, Any] = {"model": model["name"]}
                if path == "/decode":
                    body["latents"] = latents
                elif path == "/sample":
                    body.update(n=2, scale=10.0, seed=0)
                else:
                    body["inputs"] = inputs
                r = zoo.client.post(path, content=dumps(body))
                zoo.check("POST", path, r, body)
                if path == "/decode" and value == 0.0:
                    assert r.status_code == 200, r.text


# -- the Open Inference Protocol (v2) ------------------------------------------------------------

DATATYPES = ["FP32", "FP64", "FP16", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "BF16", "fp32"]


def v2_path(draw: st.DrawFn, zoo: Zoo, template: str, name: str) -> str:
    version = draw(st.sampled_from([zoo.version(name), "0"]) | st.text(min_size=1, max_size=8))
    return template.replace("{model}", segment(name)).replace("{version}", segment(version))


@FUZZ
@given(data=st.data())
def test_v2_bodies_from_the_openapi_schemas(zoo: Zoo, data: st.DataObject) -> None:
    """Bodies valid for the documented v2 request schema, to real and made-up models."""
    template = data.draw(st.sampled_from(zoo.v2_post_paths), label="path")
    name = data.draw(st.sampled_from(zoo.names) | st.text(min_size=1, max_size=20))
    schema = zoo.request_schema(template) if template.endswith("/infer") else {}
    body = data.draw(from_schema(schema), label="body")
    r = zoo.client.post(v2_path(data.draw, zoo, template, name), content=dumps(body))
    zoo.check("POST", template, r, body)


@st.composite
def v2_body(draw: st.DrawFn, zoo: Zoo) -> tuple[str, bytes, dict[str, str]]:
    """A v2 inference request for a real model: inputs ``x`` or ``z`` (or none) of the right
    or a wrong shape and datatype, as JSON data or binary buffers (sizes sometimes wrong),
    outputs real or made up, parameters hostile or not, sometimes compressed."""
    model = draw(st.sampled_from(zoo.models))
    hostile = draw(st.booleans())
    outputs = ["z", "mu", "logvar", "x_hat", "score", "percentile", "is_anomaly", "threshold"]
    outputs += ["contributions", "denoised", "nope"]
    latent = draw(st.booleans())
    dims = [model["latent_dim"]] if latent else model["input"]["shape"]
    values = np.asarray(draw(shaped(dims, hostile)), dtype=object)
    header: dict[str, Any] = {"inputs": []}
    buffers = b""
    if draw(st.integers(0, 5)):  # else: no input (sampling)
        datatype = draw(st.sampled_from(DATATYPES)) if hostile else "FP32"
        shape = list(np.shape(values)) if values.dtype != object else [len(values)]
        if hostile and draw(st.booleans()):
            shape = draw(st.lists(st.integers(-1, 40), max_size=4))
        tensor: dict[str, Any] = {"name": "z" if latent else "x", "shape": shape}
        tensor["datatype"] = datatype
        if draw(st.booleans()):
            try:
                with np.errstate(over="ignore"):  # extremes become inf: the server says so
                    raw = np.asarray(values.tolist(), dtype=np.float32).tobytes()
            except (ValueError, TypeError, OverflowError):
                raw = b"\x00" * 8
            if hostile and draw(st.booleans()):
                raw = draw(st.binary(max_size=64))
            size = len(raw) + (draw(st.integers(-8, 8)) if hostile else 0)
            tensor["parameters"] = {"binary_data_size": size}
            buffers = raw
        else:
            tensor["data"] = values.tolist()
        header["inputs"].append(tensor)
    if draw(st.booleans()):
        wanted = draw(st.lists(st.sampled_from(outputs), max_size=4))
        header["outputs"] = [
            {"name": n, "parameters": {"binary_data": draw(st.booleans())}} for n in wanted
        ]
    parameters = {
        "binarize": st.booleans() | HOSTILE_SCALARS,
        "threshold": st.floats(0, 1) | HOSTILE_SCALARS,
        "n": st.integers(-1, 300) | HOSTILE_SCALARS,
        "seed": st.integers(0, 2**64) | HOSTILE_SCALARS,
        "scale": FLOATS,
        "binary_data_output": st.booleans(),
    }
    header["parameters"] = draw(st.fixed_dictionaries({}, optional=parameters))
    if hostile and draw(st.booleans()):  # one field replaced by any JSON value
        key = draw(st.sampled_from(sorted(header)))
        header[key] = draw(JSON)
    head = dumps(header)
    headers: dict[str, str] = {}
    body = head + buffers
    if buffers or draw(st.booleans()):
        headers["inference-header-content-length"] = str(len(head))
    if hostile and draw(st.booleans()):
        headers["inference-header-content-length"] = str(draw(st.integers(-2, len(body) + 2)))
    if draw(st.integers(0, 3)) == 0:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
        if hostile and draw(st.booleans()):
            body = body[: draw(st.integers(0, len(body)))]
    if draw(st.booleans()):
        headers["accept-encoding"] = "gzip"
    return model["name"], body, headers


@FUZZ
@given(data=st.data())
def test_v2_bodies_for_the_loaded_models(zoo: Zoo, data: st.DataObject) -> None:
    """Right-kind v2 requests for real models with hostile tensors, sizes and options."""
    template = data.draw(st.sampled_from([p for p in zoo.v2_post_paths if "{model}" in p]))
    name, body, headers = data.draw(v2_body(zoo), label="request")
    r = zoo.client.post(v2_path(data.draw, zoo, template, name), content=body, headers=headers)
    if r.status_code == 200 and "inference-header-content-length" in r.headers:
        n = int(r.headers["inference-header-content-length"])
        header = json.loads(r.content[:n])
        sizes = [
            t["parameters"]["binary_data_size"] for t in header["outputs"] if "parameters" in t
        ]
        assert n + sum(sizes) == len(r.content)
        return
    zoo.check("POST", template, r, (headers, body[:200]))
