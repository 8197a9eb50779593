"""gRPC messages <-> the data plane's v2 request and answer (tensors through the codec)."""

from __future__ import annotations

from typing import Any

from service.codecs import tensors
from service.dataplane.v2 import InferRequest, InferResponse, TensorInfo
from service.http.grpc import proto as pb
from service.runtime.errors import BadRequest, InvalidInput

# Which typed contents list carries each datatype (FP16 has none: raw contents only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def parameter(value: Any) -> Any:
    """An InferParameter's value (bool, int, str or float)."""
    kind = value.WhichOneof("parameter_choice")
    return None if kind is None else getattr(value, kind)


def to_parameter(value: Any) -> Any:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    if isinstance(value, float):
        return pb.InferParameter(double_param=value)
    return pb.InferParameter(string_param=str(value))


def read(message: Any) -> InferRequest:
    """A ModelInferRequest as the data plane's request."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; send "
            "one per input, in order"
        )
    inputs: dict[str, Any] = {}
    for i, tensor in enumerate(message.inputs):
        name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
        if name in inputs:
            raise BadRequest(f"input '{name}' is given twice")
        if raw:
            inputs[name] = tensors.from_bytes(name, datatype, shape, raw[i])
            continue
        tensors.dtype_of(datatype, name)  # an unknown datatype says so first
        field = CONTENTS.get(datatype)
        if field is None:
            raise InvalidInput(f"input '{name}' of {datatype} must come as raw_input_contents")
        inputs[name] = tensors.from_data(
            name, datatype, shape, list(getattr(tensor.contents, field))
        )
    parameters = {k: parameter(v) for k, v in message.parameters.items()}
    for output in message.outputs:
        if "classification" in output.parameters:
            raise InvalidInput(tensors.no_classification(output.name))
    outputs = [o.name for o in message.outputs] or None
    return InferRequest(
        message.model_name,
        message.model_version or None,
        message.id or None,
        parameters,
        inputs,
        outputs,
    )


def write(answer: InferResponse) -> Any:
    """The data plane's answer as a ModelInferResponse, outputs as raw contents."""
    runtime = answer.runtime
    response = pb.ModelInferResponse(
        model_name=runtime.name, model_version=runtime.version, id=answer.id or ""
    )
    for key, value in answer.parameters.items():
        response.parameters[key].CopyFrom(to_parameter(value))
    for name, array in answer.outputs:
        response.outputs.add(name=name, datatype=tensors.datatype_of(array), shape=array.shape)
        response.raw_output_contents.append(tensors.to_bytes(array))
    return response


def tensor_metadata(infos: list[TensorInfo]) -> list[Any]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype, shape=t.shape)
        for t in infos
    ]
