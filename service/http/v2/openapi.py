"""OpenAPI documentation of the v2 routes (served as plain Starlette routes).

The schemas are the Open Inference Protocol's REST ones (KServe's ``rest_predict_v2.yaml``),
made precise for aeserve: the datatypes it reads, the input and output names its models have,
shapes of non-negative sizes, the binary tensor extension's parameters. The server is exactly
as strict as these request schemas (``schemas.py``, then the codec), so every schema-valid
request is answered 200 or with a documented 4xx (422 when it does not fit the model: its
shape, its outputs, an option's range); errors are ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from service.codecs.tensors import DTYPES, MAX_DIMS
from service.dataplane.v2 import ON_REQUEST
from service.http.v2.routes import MODEL, PREFIX, VERSION

EXAMPLE = {
    "id": "glyph-1",
    "inputs": [{"name": "x", "shape": [1, 7, 5], "datatype": "FP32", "data": [0.0] * 35}],
    "outputs": [{"name": "x_hat"}, {"name": "score"}],
}

# Every output some model gives (the model's metadata lists its own).
OUTPUT_NAMES = [
    "z",
    "mu",
    "logvar",
    "x_hat",
    "score",
    "percentile",
    "is_anomaly",
    "threshold",
    "contributions",
    "denoised",
    *sorted(ON_REQUEST),  # classify, impute, neighbors: given when a request names them
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SCALAR: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
    "description": "a parameter: a string, a number or a boolean",
}


def _parameters(description: str, **known: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "description": description,
        "additionalProperties": _SCALAR,
    }
    if known:
        schema["properties"] = known
    return schema


_DATATYPE: dict[str, Any] = {"type": "string", "enum": list(DTYPES)}

# Components (the tensor data is recursive: arrays nested by the shape).
COMPONENTS: dict[str, dict[str, Any]] = {
    "V2TensorData": {
        "type": "array",
        "description": "the elements in row-major order, flat or nested by the shape: "
        "numbers (booleans for BOOL)",
        "items": {
            "anyOf": [{"type": "number"}, {"type": "boolean"}, _ref("V2TensorData")],
        },
    },
    "V2RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {
                "type": "string",
                "enum": ["x", "z"],
                "description": "'x': samples [N, *input shape] (tabular: raw feature values "
                "in manifest order); 'z': latents to decode [N, latent]",
            },
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "maxItems": MAX_DIMS,
                "description": "e.g. [N, 28, 28] or [N, 784]",
            },
            "datatype": {
                **_DATATYPE,
                "description": "FP32 is what the models take; other numeric types are converted",
            },
            "parameters": _parameters(
                "binary tensor extension: binary_data_size, the bytes of this tensor after "
                "the JSON header (then no 'data')",
                binary_data_size={"type": "integer", "minimum": 0},
            ),
            "data": {
                **_ref("V2TensorData"),
                "description": "required unless parameters.binary_data_size is given",
            },
        },
    },
    "V2RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "enum": OUTPUT_NAMES},
            "parameters": _parameters(
                "binary tensor extension: binary_data (true: raw bytes after the JSON "
                "header); Triton's classification extension is not offered (422)",
                binary_data={"type": "boolean"},
            ),
        },
    },
    "V2InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "echoed in the answer"},
            "parameters": _parameters(
                "the operations' options by their REST names: binarize, threshold, n, "
                "seed, scale (each operation reads its own; 422 names a bad one); "
                "binary_data_output (binary tensor extension: every output as raw bytes)",
                binary_data_output={"type": "boolean"},
            ),
            "inputs": {
                "type": "array",
                "items": _ref("V2RequestInput"),
                "maxItems": 1,
                "description": "one input, 'x' or 'z'; none to sample (parameters n, seed, scale)",
            },
            "outputs": {
                "type": "array",
                "items": _ref("V2RequestOutput"),
                "description": "the outputs wanted (only their operations run); left out: "
                "every output the input gives",
            },
        },
    },
    "V2ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string", "enum": OUTPUT_NAMES},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": _DATATYPE,
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                "description": "binary outputs: the size of their bytes after the header",
            },
            "data": {
                "type": "array",
                "items": {"anyOf": [{"type": "number"}, {"type": "boolean"}]},
                "description": "the elements, flat in row-major order (JSON outputs)",
            },
        },
    },
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "additionalProperties": _SCALAR,
                "description": "sampling: the seed used",
            },
            "outputs": {"type": "array", "items": _ref("V2ResponseOutput")},
        },
    },
    "V2TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": _DATATYPE,
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": -1},
                "description": "-1: the batch axis",
            },
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("V2TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("V2TensorMetadata")},
        },
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2Live": {
        "type": "object",
        "required": ["live"],
        "properties": {"live": {"type": "boolean"}},
    },
    "V2Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "V2ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "V2IndexEntry": {
        "type": "object",
        "required": ["name", "version", "state", "reason"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string", "description": "'' for a model that did not load"},
            "state": {"type": "string", "enum": ["READY", "UNAVAILABLE"]},
            "reason": {"type": "string", "description": "why a model is UNAVAILABLE"},
        },
    },
    "V2IndexRequest": {
        "type": "object",
        "properties": {
            "ready": {"type": "boolean", "description": "true: only the models that serve"}
        },
    },
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "description": "the protocol's error: the same message as the REST API's detail",
    },
}

_ERRORS = {
    400: "Malformed body: not JSON, a bad Inference-Header-Content-Length or Content-Encoding",
    404: "Unknown model or version; the error lists the loaded ones",
    405: "Method not allowed",
    413: "Body larger than AESERVE_MAX_BODY_BYTES (after decompression too)",
    422: "Schema-valid but not for this model: shape, datatype, data, outputs, parameters",
    503: "Models are still loading",
}

_HEADER_LENGTH = {
    "description": "binary tensor extension: the length of the JSON header at the start of "
    "the body (the binary buffers follow it)",
    "schema": {"type": "integer", "minimum": 0},
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], *codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {200: ok}
    for code in codes:
        out[code] = _json(_ref("V2Error"), _ERRORS[code])
    return out


_MODEL_PARAM: dict[str, Any] = {
    "name": "model",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the model's name",
}
_VERSION_PARAM: dict[str, Any] = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "one of the versions its metadata lists",
}


def _route(
    path: str,
    method: str,
    summary: str,
    responses: dict[int | str, dict[str, Any]],
    *,
    body: dict[str, Any] | None = None,
    description: str | None = None,
) -> APIRoute:
    async def documented(request: Request) -> Response:  # pragma: no cover (never served)
        raise NotImplementedError

    documented.__name__ = "v2_" + "".join(c if c.isalnum() else "_" for c in path + method)
    extra: dict[str, Any] = {}
    parameters = [p for p in (_MODEL_PARAM, _VERSION_PARAM) if "{" + p["name"] + "}" in path]
    if parameters:
        extra["parameters"] = parameters
    if body is not None:
        extra["requestBody"] = body
    return APIRoute(
        path,
        documented,
        methods=[method],
        tags=["open inference protocol v2"],
        summary=summary,
        description=description,
        responses=responses,
        openapi_extra=extra or None,
    )


_INFER_DESCRIPTION = (
    "Named tensors in, the requested outputs' tensors out (see the model's metadata). The "
    "body is JSON (any Content-Type, or none, is read as the body says), or, with the binary "
    "tensor extension, a JSON header of Inference-Header-Content-Length bytes followed by the "
    "raw little-endian tensors whose parameters carry binary_data_size. Content-Encoding gzip "
    "or deflate is read; Accept-Encoding gzip or deflate compresses the answer. Binary outputs "
    "(binary_data, binary_data_output) make the answer application/octet-stream: its JSON "
    "header (Inference-Header-Content-Length bytes) then their bytes."
)


def routes() -> list[APIRoute]:
    index_body = {
        "required": False,
        "content": {"application/json": {"schema": _ref("V2IndexRequest")}},
    }
    index_answer = _json({"type": "array", "items": _ref("V2IndexEntry")})
    out = [
        _route(PREFIX, "GET", "Server metadata", _responses(_json(_ref("V2ServerMetadata")))),
        _route(PREFIX + "/health/live", "GET", "Liveness", _responses(_json(_ref("V2Live")))),
        _route(
            PREFIX + "/health/ready",
            "GET",
            "Readiness",
            {200: _json(_ref("V2Ready")), 503: _json(_ref("V2Ready"), "Models are loading")},
        ),
    ]
    for method in ("GET", "POST"):
        out.append(
            _route(
                PREFIX + "/repository/index",
                method,
                "Repository index",
                _responses(index_answer, *((400, 422, 503) if method == "POST" else (503,))),
                body=index_body if method == "POST" else None,
                description="Every model version: READY, or UNAVAILABLE with the reason it "
                "was refused.",
            )
        )
    infer_ok = {
        "description": "OK",
        "headers": {"Inference-Header-Content-Length": _HEADER_LENGTH},
        "content": {
            "application/json": {"schema": _ref("V2InferenceResponse")},
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "binary outputs: the JSON header (a V2InferenceResponse) "
                    "then the outputs' bytes",
                }
            },
        },
    }
    infer_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("V2InferenceRequest"), "example": EXAMPLE}},
    }
    for base in (MODEL, VERSION):
        out += [
            _route(
                base, "GET", "Model metadata", _responses(_json(_ref("V2ModelMetadata")), 404, 503)
            ),
            _route(
                base + "/ready",
                "GET",
                "Model readiness",
                _responses(_json(_ref("V2ModelReady")), 404, 503),
            ),
            _route(
                base + "/infer",
                "POST",
                "Inference (JSON or the binary tensor extension)",
                _responses(infer_ok, 400, 404, 413, 422, 503),
                body=infer_body,
                description=_INFER_DESCRIPTION,
            ),
        ]
    return out


def document(app: FastAPI) -> None:
    """Add the v2 paths to the app's OpenAPI document."""
    base = app.openapi
    documented = routes()

    def schema() -> dict[str, Any]:
        doc = base()
        if PREFIX + "/health/live" not in doc["paths"]:
            v2 = get_openapi(title=app.title, version=app.version, routes=documented)
            doc["paths"].update(v2["paths"])
            doc.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
        return doc

    app.openapi = schema  # type: ignore[method-assign]
