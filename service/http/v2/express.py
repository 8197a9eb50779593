"""v2 inference through the express lane (``service/http/express.py``), for plain requests.

The lane takes ``POST /v2/models/{model}/infer`` when the JSON body is the plain case: one
input ``x`` (or ``z``) of FP32 ``data``, outputs listed by name only (no binary flags), no
parameters, so that exactly one operation runs. The same steps as the routes' (the codec, the
plan, ``prepare``, the model's scheduler, the same answer writer), without the ASGI cycle.
Anything else (binary data, compression, parameters, several operations, an error) is
declined, and the full path answers it exactly as ``routes.py`` does.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from service.codecs import tensors
from service.dataplane import v2
from service.dataplane.operations import Fields, Job
from service.http.express import Answer, Decline, ExpressLane
from service.http.v2 import wire
from service.http.v2.routes import MODEL

# /v2/models/<name>/infer, a name without escapes (the lane sees raw paths).
_PATH = re.compile(rb"^/v2/models/([a-z0-9][a-z0-9._-]*)/infer$")
_INPUT_KEYS = frozenset(("name", "shape", "datatype", "data"))
_BODY_KEYS = frozenset(("inputs", "outputs", "id"))


class V2Infer:
    """The lane's v2 inference route (see the module docstring)."""

    endpoint = MODEL + "/infer"

    def matches(self, path: bytes) -> bool:
        return _PATH.match(path) is not None

    def job(self, lane: ExpressLane, path: bytes, body: bytearray) -> tuple[Job, Answer]:
        match = _PATH.match(path)
        data = orjson.loads(body)
        if match is None or type(data) is not dict or not data.keys() <= _BODY_KEYS:
            raise Decline
        inputs, outputs, rid = data.get("inputs"), data.get("outputs"), data.get("id")
        if (
            type(inputs) is not list
            or len(inputs) != 1
            or (rid is not None and type(rid) is not str)
        ):
            raise Decline
        tensor = inputs[0]
        if type(tensor) is not dict or tensor.keys() != _INPUT_KEYS or tensor["datatype"] != "FP32":
            raise Decline
        names: list[str] | None = None
        if outputs is not None:
            if type(outputs) is not list or not all(
                type(o) is dict and o.keys() == {"name"} and type(o["name"]) is str for o in outputs
            ):
                raise Decline
            names = [o["name"] for o in outputs]
        name = tensor["name"]
        if type(name) is not str:
            raise Decline
        runtime = lane.plane.repository.get(match.group(1).decode("ascii"))
        array = tensors.from_data(name, "FP32", tensor["shape"], tensor["data"])
        request = v2.InferRequest(runtime.name, None, rid, {}, {name: array}, names)
        _, ops = v2.plan(runtime, request)
        if len(ops) != 1:
            raise Decline
        op, outs = ops[0]
        options = v2.options_for(op, runtime, outs, {}, array)
        job = lane.plane.prepare(op, runtime, options)
        read = wire.ReadRequest(request, set(), False)

        def answer(fields: Fields) -> bytes:
            body, _ = wire.write(v2.answer(runtime, request, [(op, outs)], [fields]), read)
            return body

        return job, answer


def install(lane: Any) -> None:
    """Add the v2 route to an app's express lane."""
    if isinstance(lane, ExpressLane):
        lane.add_route(V2Infer())
