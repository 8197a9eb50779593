"""The v2 REST wire format (Open Inference Protocol), named by role.

Requests are validated with these models (tensor ``data`` typed ``Any``: the codec turns it
into numpy in one call, ``service/codecs/tensors.py``); answers are written by orjson and
documented here for OpenAPI.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema

Parameters = dict[str, Any]
TensorData = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {},
            "description": "the elements, row-major, flat or nested by the shape",
        }
    ),
]


class _Wire(BaseModel):
    # Unknown fields are ignored: the protocol lets clients and servers extend it.
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Wire):
    name: StrictStr = Field(description="'x' (samples) or 'z' (latents to decode)")
    shape: list[StrictInt] = Field(description="e.g. [N, 28, 28] or [N, 784]")
    datatype: StrictStr = Field(description="FP32 (any numeric datatype is converted)")
    parameters: Parameters | None = Field(
        None, description="binary tensor extension: binary_data_size (bytes after the header)"
    )
    data: TensorData | None = None


class RequestOutput(_Wire):
    name: StrictStr
    parameters: Parameters | None = Field(
        None, description="binary tensor extension: binary_data (true: raw bytes after the JSON)"
    )


class InferenceRequest(_Wire):
    id: StrictStr | None = Field(None, description="echoed in the answer")
    parameters: Parameters | None = Field(
        None,
        description="operation options by their REST names: binarize, threshold, n, seed, "
        "scale; binary_data_output (binary tensor extension)",
    )
    inputs: list[RequestInput] = Field(description="one input: 'x' or 'z' (none to sample)")
    outputs: list[RequestOutput] | None = Field(
        None, description="the outputs wanted (only their operations run); default: all"
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class IndexEntry(BaseModel):
    name: str
    version: str
    state: str = Field(description="READY, or UNAVAILABLE with the reason")
    reason: str


class Error(BaseModel):
    """The protocol's error body."""

    error: str
