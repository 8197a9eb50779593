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

import numpy as np

from service.codecs import tensors
from service.codecs.arrays import LARGE_BODY
from service.codecs.tensors import HEADER_LENGTH
from service.dataplane import tabular, v2
from service.dataplane.operations import ANOMALY_SCORE, Fields, Job, Operation
from service.http.express import Answer, Decline, ExpressLane, Written
from service.http.v2 import wire
from service.http.v2.routes import MODEL, OCTETS
from service.runtime.model import ModelRuntime

_EMPTY = np.empty((0,), dtype=np.float32)
# /v2/models/<name>/infer, a name without escapes (the lane sees raw paths).
_PATH = re.compile(rb"^/v2/models/([a-z0-9][a-z0-9._-]*)/infer$")
_HEADER_LENGTH = HEADER_LENGTH.lower().encode("latin-1")
_OCTETS = OCTETS.encode("latin-1")


class V2Infer:
    """The lane's v2 inference route (see the module docstring)."""

    endpoint = MODEL + "/infer"

    def matches(self, path: bytes) -> bool:
        return _PATH.match(path) is not None

    def job(
        self,
        lane: ExpressLane,
        path: bytes,
        body: bytes | bytearray,
        headers: list[tuple[bytes, bytes]],
    ) -> tuple[Job, Answer]:
        match = _PATH.match(path)
        if match is None:
            raise Decline
        name = match.group(1).decode("ascii")
        length = next((v for k, v in headers if k == _HEADER_LENGTH), None)
        if length is not None:
            return self._binary(lane, name, body, length.decode("latin-1"))
        read = tensors.plain(body)  # simdjson straight into numpy, plain bodies only
        if read is None:
            raise Decline
        runtime = lane.plane.repository.get(name)
        request = v2.InferRequest(
            runtime.name, None, read.id, {}, {read.name: _EMPTY}, read.outputs
        )
        _, ops = v2.plan(runtime, request)
        if len(ops) != 1:
            raise Decline
        op, outs = ops[0]
        # As prepare() makes it for these options (no parameters: nothing but the inputs to
        # check), without copying the options to carry the inputs the job holds anyway.
        options = v2.options_for(op, runtime, outs, {}, None)
        op.check(runtime, options, lane.plane.context)
        dims, n = read.dims, read.dims[0] if read.dims else 0
        if (
            op.takes == "samples"
            and runtime.kind != "tabular"
            and 0 < n <= runtime.max_batch
            and dims[1:] in ([runtime.size], list(runtime.shape))
        ):
            # As REST's flat bodies: float64 rows, cast with the batch's (exact to 2**53).
            job = Job(op, runtime, options, _EMPTY, n)
            job.wide = read.wide.reshape(n, runtime.size)
            return job, self._answer(runtime, request, op, outs)
        array = read.array()
        if array is None:
            raise Decline
        if op.takes == "latents":
            x = runtime.check_latents(array)
        elif op.takes == "samples":
            x = runtime.shaped(array)
        else:
            raise Decline
        job = Job(op, runtime, options, x, len(x))
        if op is ANOMALY_SCORE and runtime.kind == "tabular":
            tabular.check_finite(runtime, x, records=False)  # naming the feature, as prepare
            job.finite = True
        return job, self._answer(runtime, request, op, outs)

    @staticmethod
    def _binary(
        lane: ExpressLane, name: str, body: bytes | bytearray, length: str
    ) -> tuple[Job, Answer]:
        """A body with binary tensors (Triton's binary extension): read in place as the
        routes read it (wire.read), one operation, the answer written as the routes write it
        (binary outputs after the JSON header, whose length a header gives)."""
        if not length.isdigit() or int(length) > LARGE_BODY:
            raise Decline  # a large JSON part is parsed in the thread pool: the full path
        read = wire.read(body if isinstance(body, bytes) else bytes(body), length, name, None)
        request = read.request
        runtime = lane.plane.repository.get(name)
        given, ops = v2.plan(runtime, request)
        if len(ops) != 1:
            raise Decline
        op, outs = ops[0]
        x = request.inputs.get(given) if given else None
        job = lane.plane.prepare(
            op, runtime, v2.options_for(op, runtime, outs, request.parameters, x)
        )

        def answer(fields: Fields) -> bytes | Written:
            data, head = wire.write(v2.answer(runtime, request, [(op, outs)], [fields]), read)
            if head is None:
                return data
            return Written(data, _OCTETS, b"inference-header-content-length: %d\r\n" % head)

        return job, answer

    @staticmethod
    def _answer(
        runtime: ModelRuntime, request: v2.InferRequest, op: Operation, outs: list[str]
    ) -> Answer:
        wanted = wire.ReadRequest(request, set(), False)

        def answer(fields: Fields) -> bytes:
            body, _ = wire.write(v2.answer(runtime, request, [(op, outs)], [fields]), wanted)
            return body

        return answer


def install(lane: Any) -> None:
    """Add the v2 route to an app's express lane."""
    if isinstance(lane, ExpressLane):
        lane.add_route(V2Infer())
