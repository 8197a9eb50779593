"""The v2 REST wire format (Open Inference Protocol): request validation.

Requests are validated with these models, exactly as strict as the documented request schema
(``openapi.py``): optional fields may be left out but not ``null``, ``parameters`` map names
to a string, number or boolean. Tensor ``data`` is typed ``Any`` here: the codec checks it
and turns it into numpy in one call (``service/codecs/tensors.py``). Answers are written by
orjson; their schemas are documented in ``openapi.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    raise ValueError("a parameter is a string, a number or a boolean")


# A parameter's value, as the protocol's ``$parameter``: a string, a number or a boolean.
Scalar = Annotated[
    bool | int | float | str,
    PlainValidator(_scalar, json_schema_input_type=bool | int | float | str),
]
Parameters = dict[str, Scalar]


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("null is not allowed here; leave the field out")
    return value


class _Wire(BaseModel):
    # Unknown fields are ignored: the protocol lets clients and servers extend it.
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Wire):
    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: Parameters = Field(default_factory=dict)
    data: Any = None  # the codec checks it (an array of numbers or booleans, flat or nested)

    _present = field_validator("parameters", "data", mode="before")(_not_null)


class RequestOutput(_Wire):
    name: StrictStr
    parameters: Parameters = Field(default_factory=dict)

    _present = field_validator("parameters", mode="before")(_not_null)


class InferenceRequest(_Wire):
    id: StrictStr | None = None
    parameters: Parameters = Field(default_factory=dict)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None

    _present = field_validator("id", "parameters", "outputs", mode="before")(_not_null)


class IndexRequest(_Wire):
    """``POST /v2/repository/index``'s optional body."""

    ready: StrictBool = False
