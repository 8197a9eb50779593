"""The express lane: the common inference POSTs answered straight from the HTTP protocol.

Per request, uvicorn's ASGI cycle (scope, receive/send messages, an event the app waits on for
the body, two writes), Starlette's request and response objects and FastAPI's option parsing
cost more than the work itself for a small model. :class:`ExpressProtocol` is uvicorn's
httptools protocol (``python -m service`` runs it) with one addition: a ``POST`` to an express
path with a JSON body of declared length is held until its body is in, then handed to the
app's :class:`ExpressLane`, which parses it, validates the options with the endpoint's pydantic
schema, runs the endpoint's own work function (the same one the route calls:
``reconstruct_fields``, ``anomaly_fields``) and returns the answer's bytes; the protocol writes
status line, headers and body in one write.

The lane only ever answers 200. Anything else — a body that does not parse, options the schema
refuses, an unknown model, any error the work raises, the service still loading — falls back
to the full path: the held request goes to the ASGI app exactly as uvicorn would have sent it,
body included, and the app answers it (problem+json, request id, metrics, as for every request).
So the lane adds no behaviour of its own; tests/service/test_express.py checks that answers are
the same bytes both ways. Requests it does not take at all: other paths and methods, query
strings, chunked bodies, ``Expect: 100-continue``, bodies over ``LARGE_BODY``, ``Accept`` other
than JSON, CORS requests (with an ``Origin`` when CORS is on), and every request while uvicorn's
access log is on (the lane writes no access log).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from service import codecs, tabular
from service.batching import Arrivals
from service.errors import ServiceError
from service.metrics import Metrics
from service.middleware import RequestIds
from service.repository import LoadState
from service.routes.reconstruction import anomaly_fields, reconstruct_fields
from service.schemas import AnomalyScoreRequest, ReconstructRequest

logger = logging.getLogger(__name__)

Work = Callable[[codecs.ParsedRequest[Any], Metrics], Awaitable[dict[str, Any]]]
Check = Callable[[codecs.ParsedRequest[Any]], None]


@dataclass(frozen=True)
class Endpoint:
    """One express path: its request schema, the checks the route makes before its work, and
    the route's work function."""

    schema: type[BaseModel]
    check: Check
    work: Work


def _reconstruct_check(parsed: codecs.ParsedRequest[Any]) -> None:
    codecs.check_output_options(parsed.runtime, parsed.options)


def _anomaly_check(parsed: codecs.ParsedRequest[Any]) -> None:
    tabular.check_options(parsed.runtime, parsed.options)
    codecs.check_output_options(parsed.runtime, parsed.options)


async def _reconstruct_work(parsed: codecs.ParsedRequest[Any], metrics: Metrics) -> dict[str, Any]:
    return await reconstruct_fields(parsed)


ENDPOINTS: dict[str, Endpoint] = {
    "/reconstruct": Endpoint(ReconstructRequest, _reconstruct_check, _reconstruct_work),
    "/anomaly-score": Endpoint(AnomalyScoreRequest, _anomaly_check, anomaly_fields),
}

_JSON_TYPES = (b"application/json",)
_ACCEPTS = (b"*/*", b"application/json", b"application/*")


class ExpressLane:
    """Answers express requests of one app (see the module docstring); None means "full path"."""

    def __init__(
        self,
        *,
        load: LoadState,
        metrics: Metrics,
        request_ids: RequestIds,
        arrivals: Arrivals,
        max_body_bytes: int,
        cors: bool,
    ) -> None:
        self.load = load
        self.metrics = metrics
        self.request_ids = request_ids
        self.arrivals = arrivals
        self.max_body = min(max_body_bytes, codecs.LARGE_BODY)
        self.cors = cors
        self.endpoints = ENDPOINTS

    def takes(self, scope: dict[str, Any]) -> bool:
        """Whether the lane may take this request (from its head, before the body)."""
        if (
            scope["method"] != "POST"
            or scope["path"] not in self.endpoints
            or scope["query_string"]
            or scope["root_path"]
        ):
            return False
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return False
                length = int(value)
            elif name == b"content-type":
                if value.split(b";", 1)[0].strip().lower() not in _JSON_TYPES:
                    return False
            elif name == b"accept":
                if value.strip().lower() not in _ACCEPTS:
                    return False
            elif name in (b"transfer-encoding", b"expect") or (name == b"origin" and self.cors):
                return False
        return length is not None and 0 < length <= self.max_body

    async def answer(self, scope: dict[str, Any], body: bytes) -> tuple[str, bytes] | None:
        """``(request id, JSON answer)``, or None when the full path must answer."""
        start = time.perf_counter()
        repository = self.load.repository
        if repository is None:
            return None
        path = scope["path"]
        endpoint = self.endpoints[path]
        arrival = self.arrivals.start()
        try:
            options = endpoint.schema.model_validate(codecs.json_object(body))
            runtime = repository.get(codecs.option(options, "model"))
            parsed = codecs.ParsedRequest(options, runtime, size=len(body))
            endpoint.check(parsed)
            fields = await endpoint.work(parsed, self.metrics)
            data = await codecs.json_answer(runtime, fields)
        except (ServiceError, ValidationError):
            return None  # the full path answers with the same error, as problem+json
        finally:
            arrival.done()
        client_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                client_id = value
        request_id = self.request_ids(client_id)
        self.metrics.observe(path, runtime.name, 200, time.perf_counter() - start)
        self.metrics.observe_express(path)
        return request_id, data


def lane_of(app: Any) -> ExpressLane | None:
    """The express lane of the app under uvicorn's wrappers (proxy headers, message logger)."""
    for _ in range(8):
        lane = getattr(app, "express", None)
        if isinstance(lane, ExpressLane):
            return lane
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class ExpressProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; express requests skip the ASGI cycle (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lane = None if self.access_log else lane_of(self.app)
        self.held: RequestResponseCycle | None = None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        lane = self.lane
        if (
            lane is not None
            and app is self.app  # not uvicorn's 503 app (limit_concurrency)
            and not cycle.waiting_for_100_continue
            and lane.takes(cycle.scope)  # type: ignore[arg-type]
        ):
            if cycle.more_body:
                self.held = cycle  # until on_message_complete
            else:  # a pipelined request, already read
                self._dispatch(cycle)
            return
        super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self.held is not None and self.held is self.cycle:
            # uvicorn pauses reading past 64 KB until the app asks for more; the lane reads
            # the whole body (at most LARGE_BODY, declared) before it answers.
            self.flow.resume_reading()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self.held
        if cycle is not None and cycle is self.cycle:
            self.held = None
            self._dispatch(cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.held = None
        super().connection_lost(exc)

    def _dispatch(self, cycle: RequestResponseCycle) -> None:
        task = self.loop.create_task(self._express(cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _express(self, cycle: RequestResponseCycle) -> None:
        lane = self.lane
        assert lane is not None
        try:
            answer = await lane.answer(cycle.scope, bytes(cycle.body))  # type: ignore[arg-type]
        except Exception:  # a bug here must not cost the request: the full path answers
            logger.exception("express lane failed; the request goes the full path")
            answer = None
        if answer is None:
            super()._start_asgi_task(cycle, self.app)
            return
        if cycle.disconnected:
            return
        request_id, data = answer
        head = [STATUS_LINE[200]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(
            b"content-length: %d\r\ncontent-type: application/json\r\nx-request-id: %s\r\n"
            % (len(data), request_id.encode("latin-1"))
        )
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", data]
        cycle.response_started = cycle.response_complete = True
        cycle.body = bytearray()
        self.transport.write(b"".join(head))
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
