"""The express lane: the common inference POSTs answered straight from the HTTP protocol.

Per request, uvicorn's ASGI cycle, Starlette's request and response objects, FastAPI's option
parsing, a task, futures and a handful of numpy calls on one-row arrays cost several times the
model's own work for a small model. The lane does for the most common requests what
``bench/floor.py`` (the least a Python server can do) does, with the service's semantics:

- :class:`ExpressProtocol` is uvicorn's httptools protocol (``python -m service`` runs it). A
  ``POST`` to an express path with a JSON body of declared length is held until its body is in;
  then :meth:`ExpressLane.take` parses it in the protocol callback and queues it per endpoint and
  model (or declines it).
- Queued requests are served by one :meth:`ExpressLane.flush` per turn of the event loop (the
  loop runs every ready socket's read callbacks first, so a flush takes every request read in
  that turn): per model, up to ``AESERVE_BATCH_MAX_SIZE`` samples are checked, converted,
  scored and explained with the runtime's own functions on the whole batch at once, one ONNX
  call, then each request gets its rows as JSON in one write. The lane is a batching design:
  with ``AESERVE_BATCHING=false`` it is off (every request takes the full path, one ONNX call
  each in the thread pool).
- Only models whose forward pass on a full batch is within ``AESERVE_BATCH_INLINE_MAX_US``
  (the ones the batcher already runs on the event loop) take the lane; larger models keep the
  inference thread.

The lane answers only 200s. Whatever it does not recognise falls back to the full path — a
body that does not parse, options other than the plain ones (``model`` with ``inputs``, or
``records`` for tabular models), an unknown model, inputs the runtime refuses (then only that
request of the batch), the service still loading: the held request goes to the ASGI app
exactly as uvicorn would have sent it, body included, and the app answers it (problem+json,
request id, metrics). The rows of a batch are the same bits as alone (one intra-op thread;
per-row numpy reductions); tests/service/test_express.py checks that answers are the same bytes
both ways. Requests the lane never looks at: other paths and methods, query strings, chunked
bodies, ``Expect: 100-continue``, bodies over ``LARGE_BODY``, ``Accept`` other than JSON, CORS
requests (with an ``Origin`` when CORS is on), and all while uvicorn's access log is on.

Keep-alive: uvicorn arms a timer after every answer and cancels it on the next read. After a
lane answer one timer stays armed across requests and, when it fires, closes the connection
only if nothing was read since it was armed (else it waits one more timeout): an idle
connection is closed between ``timeout_keep_alive`` and twice that after its last request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import simdjson
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from service import codecs, tabular
from service.errors import ServiceError
from service.metrics import Metrics
from service.middleware import RequestIds
from service.repository import LoadState
from service.runtime import F32, Explained, ModelRuntime

logger = logging.getLogger(__name__)

_JSON_TYPES = (b"application/json",)
_ACCEPTS = (b"*/*", b"application/json", b"application/*")
_DUMPS = orjson.OPT_SERIALIZE_NUMPY


class _Decline(Exception):
    """The lane does not take this request: the full path answers it."""


@dataclass(eq=False, slots=True)
class _Job:
    """One request on the lane: where to answer, and its inputs [n, ...] (wire space)."""

    protocol: ExpressProtocol
    cycle: Cycle
    runtime: ModelRuntime
    x: F32
    start: float
    n: int = 0  # samples
    ids: list[tabular.Id] | None = None
    # Tabular records: the raw rows in feature order, made into an array with the batch's.
    rows: list[list[Any]] | None = None
    # A large flat body: its float64 rows [n, size], checked and cast with the batch's.
    wide: npt.NDArray[np.float64] | None = None


# -- endpoints: a request's body -> its inputs; a batch -> each request's answer ----------------


def _inputs(runtime: ModelRuntime, value: Any) -> F32:
    """``inputs`` as the full path reads them (codecs.array_from_json), shape-checked."""
    if type(value) is not list:
        raise _Decline
    try:
        x = codecs.array_from_json(value, "inputs")
    except ServiceError:
        raise _Decline from None
    if x.ndim < 2 or x.shape[0] == 0:
        raise _Decline
    if tuple(x.shape[1:]) != runtime.shape:
        if not (x.ndim == 2 and x.shape[1] == runtime.size):
            raise _Decline
        x = x.reshape((x.shape[0], *runtime.shape))
    return x


def _reconstruct_job(job: _Job, data: dict[str, Any]) -> None:
    if data.keys() - {"model", "inputs"}:
        raise _Decline
    job.x = _inputs(job.runtime, data.get("inputs"))
    job.n = len(job.x)


_PARSER = simdjson.Parser()
_FLAT_KEYS = frozenset(("model", "inputs"))
_EXACT = float(2**53)  # integers beyond: numpy's int64 -> float32 may round differently


def _flat_body(body: bytearray) -> tuple[Any, npt.NDArray[np.float64]] | None:
    """``{"model"?: ..., "inputs": [[numbers...], ...]}`` (rows of one flat width) parsed
    straight into float64 ``[N, width]`` with simdjson, or None for any other body.

    Exactly the values orjson and numpy give (both parse numbers correctly rounded) as long as
    every value is within +-2**53 (:func:`_batch_inputs` checks that for the whole batch). The
    structure is checked strictly: N rows, each an array of ``width`` numbers and no other
    array anywhere in the body (it holds N + 1 ``[``).
    """
    try:
        doc = _PARSER.parse(body)
        if not isinstance(doc, simdjson.Object):
            return None
        keys = list(doc.keys())
        if keys != ["inputs"] and not (len(keys) == 2 and set(keys) == _FLAT_KEYS):
            return None  # (a repeated key: orjson keeps the last, simdjson finds the first)
        model = doc.get("model")
        if model is not None and type(model) is not str:
            return None
        inputs = doc["inputs"]
        if not isinstance(inputs, simdjson.Array):
            return None
        n = len(inputs)
        if n == 0 or _brackets(body, n + 2) != n + 1:
            return None
        flat = np.frombuffer(inputs.as_buffer(of_type="d"), dtype=np.float64)
        width = flat.size // n
        if width == 0 or flat.size != n * width:
            return None
        for row in inputs:
            if not isinstance(row, simdjson.Array) or len(row) != width:
                return None
    except (ValueError, TypeError, RuntimeError, KeyError):
        return None
    finally:
        doc = inputs = row = None  # the parser is reused: its proxies must be gone
    return model, flat.reshape(n, width)


def _brackets(body: bytearray, most: int) -> int:
    """How many ``[`` the body holds, counting no further than ``most`` (memchr, not a scan of
    every byte in Python's count)."""
    find, at, count = body.find, -1, 0
    while count < most:
        at = find(b"[", at + 1)
        if at < 0:
            break
        count += 1
    return count


def _anomaly_job(job: _Job, data: dict[str, Any]) -> None:
    runtime = job.runtime
    keys = data.keys() - {"model"}
    if keys == {"inputs"}:
        job.x = _inputs(runtime, data["inputs"])
        job.n = len(job.x)
        if runtime.kind == "tabular":
            tabular.check_finite(runtime, job.x, records=False)  # raises: the full path says it
    elif keys == {"records"} and runtime.kind == "tabular":
        records, job.ids = tabular.split_ids(runtime, data["records"])
        job.rows = _rows(runtime, records)
        job.n = len(job.rows)
    else:
        raise _Decline


def _rows(runtime: ModelRuntime, records: Any) -> list[list[Any]]:
    """The records' values in feature order (codecs.record_rows); anything else, or a batch
    the full path refuses: the full path."""
    if type(records) is not list or not 0 < len(records) <= runtime.max_batch:
        raise _Decline
    rows = codecs.record_rows(runtime, records)
    if rows is None:
        raise _Decline
    return rows


def _batch_inputs(runtime: ModelRuntime, jobs: list[_Job]) -> F32:
    """The batch's wire inputs; records of all its requests become one array (as
    codecs.records_to_array makes them: float64, then float32), checked finite; large flat
    bodies' float64 rows are checked and cast to float32 at once."""
    wide = [job.wide for job in jobs if job.wide is not None]
    if wide:
        x = _exact32(runtime, wide[0] if len(wide) == 1 else np.concatenate(wide))
        if len(wide) == len(jobs):
            return x
        a = 0
        for job in jobs:
            if job.wide is not None:
                job.x, a = x[a : a + job.n], a + job.n
    rows = [row for job in jobs if job.rows is not None for row in job.rows]
    if not rows:
        return jobs[0].x if len(jobs) == 1 else np.concatenate([job.x for job in jobs])
    table = codecs.to_float32(np.array(rows, dtype=np.float64))  # OverflowError: retried alone
    tabular.check_finite(runtime, table, records=True)
    a = 0
    for job in jobs:
        if job.rows is not None:
            job.x = table[a : a + len(job.rows)]
            a += len(job.rows)
    if a == len(table) and len(jobs) == 1:
        return table
    return np.concatenate([job.x for job in jobs])


def _reconstruct_answers(
    runtime: ModelRuntime, x: F32, jobs: list[_Job], metrics: Metrics
) -> list[dict[str, Any]]:
    xm = runtime.to_model_space(x)
    rec = runtime._reconstruction(xm, runtime.infer("forward", xm)[0])
    return [{"outputs": rec.outputs[a:b], "scores": rec.scores[a:b]} for a, b in _bounds(jobs)]


def _anomaly_answers(
    runtime: ModelRuntime, x: F32, jobs: list[_Job], metrics: Metrics
) -> list[dict[str, Any]]:
    if runtime.kind == "tabular":
        return _tabular_answers(runtime, x, jobs, metrics)
    xm = runtime.to_model_space(x)
    res = runtime._anomaly(runtime._reconstruction(xm, runtime.infer("forward", xm)[0]), None)
    metrics.observe_anomalies(runtime.name, res.is_anomaly)
    return [res.fields(slice(a, b)) for a, b in _bounds(jobs)]


def _tabular_answers(
    runtime: ModelRuntime, x: F32, jobs: list[_Job], metrics: Metrics
) -> list[dict[str, Any]]:
    xm = runtime.to_model_space(x, finite=True)
    explained: Explained = runtime._explained(x, xm, runtime.infer("forward", xm)[0], None)
    ids: list[tabular.Id] | None = None
    if any(job.ids is not None for job in jobs):
        ids = []
        for job in jobs:
            ids.extend(job.ids if job.ids is not None else [None] * job.n)
    rows = tabular.results(runtime, explained, ids, tabular.top_count(runtime, None))
    res = explained.result
    metrics.observe_anomalies(runtime.name, res.is_anomaly)
    return [{**res.fields(slice(a, b)), "results": rows[a:b]} for a, b in _bounds(jobs)]


def _bounds(jobs: list[_Job]) -> list[tuple[int, int]]:
    out, a = [], 0
    for job in jobs:
        b = a + job.n
        out.append((a, b))
        a = b
    return out


Prepare = Callable[[_Job, dict[str, Any]], None]
Answers = Callable[[ModelRuntime, F32, list[_Job], Metrics], list[dict[str, Any]]]


@dataclass(frozen=True)
class Endpoint:
    prepare: Prepare  # reads the request's inputs into the job, or raises (_Decline, errors)
    answers: Answers  # a batch's inputs -> each request's fields after model and version


ENDPOINTS: dict[str, Endpoint] = {
    "/reconstruct": Endpoint(_reconstruct_job, _reconstruct_answers),
    "/anomaly-score": Endpoint(_anomaly_job, _anomaly_answers),
}


class ExpressLane:
    """The express requests of one app (see the module docstring)."""

    def __init__(
        self,
        *,
        load: LoadState,
        metrics: Metrics,
        request_ids: RequestIds,
        max_body_bytes: int,
        cors: bool,
        max_size: int,
    ) -> None:
        self.load = load
        self.metrics = metrics
        self.request_ids = request_ids
        self.max_body = min(max_body_bytes, codecs.LARGE_BODY)
        self.cors = cors
        self.max_size = max_size  # samples per ONNX call (larger requests: the full path)
        self.endpoints = ENDPOINTS
        self.paths = {path.encode("ascii"): path for path in ENDPOINTS}  # raw URL -> path
        self.models: frozenset[str] = frozenset()  # set once loaded: models small enough
        self._queues: dict[tuple[str, str], list[_Job]] = {}
        self._scheduled = False

    def open(self, models: frozenset[str]) -> None:
        """Serve these models (their forward pass fits the inline bound)."""
        self.models = models

    def takes(self, scope: dict[str, Any]) -> bool:
        """Whether the lane may take this request, from its head (before the body)."""
        if (
            scope["method"] != "POST"
            or scope["path"] not in self.endpoints
            or scope["query_string"]
            or scope["root_path"]
            or not self.models
        ):
            return False
        return self.takes_headers(scope["headers"])

    def takes_headers(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """The header part of :meth:`takes`: a declared JSON body within bounds, nothing else."""
        length = None
        for name, value in headers:
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

    def take(self, protocol: ExpressProtocol, cycle: Cycle) -> bool:
        """Queue a request whose body is in; False: the full path answers it."""
        start = time.perf_counter()
        repository = self.load.repository
        if repository is None:
            return False
        path = cycle.scope["path"]
        body = cycle.body
        try:
            flat = _flat_body(body) if len(body) > _FLAT_MIN else None
            if flat is not None:  # a large flat array of numbers: straight into numpy
                name, rows = flat
                data = None
            else:
                data = orjson.loads(body)
                if type(data) is not dict:
                    return False
                name = data.get("model")
            if name is not None and type(name) is not str:
                return False
            runtime = repository.get(name)  # ModelNotFound: the full path says it
            if runtime.name not in self.models:
                return False
            job = _Job(protocol, cycle, runtime, _EMPTY, start)
            if data is None:
                if rows.shape[1] != runtime.size:
                    return False
                job.n = len(rows)
                if runtime.kind != "tabular":
                    job.wide = rows
                else:
                    job.x = _exact32(runtime, rows)
                    if path == "/anomaly-score":
                        tabular.check_finite(runtime, job.x, records=False)  # as _anomaly_job
            else:
                self.endpoints[path].prepare(job, data)
        except (orjson.JSONDecodeError, _Decline, ServiceError):
            return False
        if job.n > self.max_size:
            return False
        key = (path, runtime.name)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = []
        queue.append(job)
        if not self._scheduled:
            self._scheduled = True
            protocol.loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Serve every queued request: per endpoint and model, batches of up to max_size."""
        self._scheduled = False
        queues, self._queues = self._queues, {}
        for (path, _), jobs in queues.items():
            endpoint = self.endpoints[path]
            while jobs:
                batch, jobs = self._next_batch(jobs)
                self._serve(path, endpoint, batch)

    def _next_batch(self, jobs: list[_Job]) -> tuple[list[_Job], list[_Job]]:
        total = 0
        for i, job in enumerate(jobs):
            total += job.n
            if total > self.max_size:
                return jobs[:i], jobs[i:]
        return jobs, []

    def _serve(self, path: str, endpoint: Endpoint, batch: list[_Job]) -> None:
        runtime = batch[0].runtime
        try:
            x = _batch_inputs(runtime, batch)
            answers = endpoint.answers(runtime, x, batch, self.metrics)
        except Exception as exc:
            # Some request's values are refused (or a model call failed): alone, the good ones
            # are answered here and the others by the full path, which names the problem.
            if len(batch) == 1:
                if not isinstance(exc, ServiceError | OverflowError | _Decline):  # not a client's
                    logger.warning("express lane: %r; the full path answers", exc)
                batch[0].protocol.express_decline(batch[0].cycle)
                return
            for job in batch:
                self._serve(path, endpoint, [job])
            return
        head = {"model": runtime.name, "version": runtime.version}
        for job, fields in zip(batch, answers, strict=True):
            try:
                data = orjson.dumps({**head, **fields}, option=_DUMPS)
                request_id = self.request_ids(_header(job.cycle, b"x-request-id"))
                job.protocol.express_answer(job.cycle, request_id, data)
            except Exception:  # this request alone; the batch's others are still answered
                logger.exception("express lane: answering a request failed")
                job.protocol.transport.close()
        now = time.perf_counter()
        self.metrics.observe_many(path, runtime.name, 200, [now - job.start for job in batch])
        self.metrics.observe_express(path, len(batch))


_EMPTY: F32 = np.empty((0,), dtype=np.float32)
# Bodies above this size try the simdjson path first (below, orjson is as fast).
_FLAT_MIN = 2048


def _exact32(runtime: ModelRuntime, rows: npt.NDArray[np.float64]) -> F32:
    """Flat float64 rows [N, size] as the model's inputs (codecs.array_from_json's float32
    cast), if every value is within +-2**53 (so also within float32's range); else _Decline."""
    if not (rows.min() > -_EXACT and rows.max() < _EXACT):
        raise _Decline
    x: F32 = rows.astype(np.float32).reshape((rows.shape[0], *runtime.shape))
    return x


def _header(cycle: Cycle, name: bytes) -> bytes | None:
    for key, value in cycle.scope["headers"]:
        if key == name:
            return value
    return None


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


class _NoEvent:
    """uvicorn's protocol sets its cycle's event on disconnects; nobody waits on a held one."""

    @staticmethod
    def set() -> None:
        pass


class _Held:
    """A request held for the lane: the parts of uvicorn's RequestResponseCycle its protocol
    touches (the real one, with its asyncio.Event, is made only if the full path answers)."""

    __slots__ = ("body", "disconnected", "keep_alive", "more_body", "response_complete", "scope")

    message_event = _NoEvent
    waiting_for_100_continue = False

    def __init__(self, scope: dict[str, Any], keep_alive: bool) -> None:
        self.scope = scope
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.response_complete = False


Cycle = RequestResponseCycle | _Held


class ExpressProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; express requests skip the ASGI cycle (module docstring)."""

    loop: asyncio.AbstractEventLoop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lane = None if self.access_log else lane_of(self.app)
        self.held: Cycle | None = None  # its body is being read
        # Keep-alive after lane answers: one timer per idle spell, not one per request (see
        # _lane_complete). True while the armed timeout_keep_alive_task is the lane's.
        self.lane_timer = False
        self.reads = 0  # data read while the lane's timer is armed
        self.reads_seen = 0  # ... when it was armed

    def on_headers_complete(self) -> None:
        """An express request is held in a :class:`_Held` (uvicorn's own steps otherwise)."""
        lane, parser = self.lane, self.parser
        if (
            lane is None
            or (path := lane.paths.get(self.url)) is None  # an express path: no query, no escapes
            or (self.cycle is not None and not self.cycle.response_complete)  # pipelined
            or self.expect_100_continue
            or self.limit_concurrency is not None
            or self.root_path
            or parser.get_method() != b"POST"
            or parser.should_upgrade()
            or not lane.models
            or not lane.takes_headers(self.headers)
        ):
            super().on_headers_complete()
            return
        scope = self.scope
        version = parser.get_http_version()
        scope["method"] = "POST"
        if version != "1.1":
            scope["http_version"] = version
        scope["path"] = path
        scope["raw_path"] = self.url
        scope["query_string"] = b""
        held = _Held(scope, version != "1.0" and parser.should_keep_alive())  # type: ignore[arg-type]
        self.cycle = self.held = held  # type: ignore[assignment]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # A pipelined request, started by uvicorn once the one before it is answered.
        lane = self.lane
        if (
            lane is not None
            and app is self.app  # not uvicorn's 503 app (limit_concurrency)
            and not cycle.more_body
            and not cycle.waiting_for_100_continue
            and lane.takes(cycle.scope)  # type: ignore[arg-type]
        ):
            self._take(cycle)
            return
        super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        held = self.held
        if held is not None and held is self.cycle:
            held.body += body  # at most LARGE_BODY (declared): read whole, no pause
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        held = self.held
        if held is not None and held is self.cycle:
            self.held = None
            held.more_body = False
            self._take(held)
            return
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.held = None
        self._end_lane_timer()
        super().connection_lost(exc)

    # -- keep-alive: uvicorn arms a timer after every answer and cancels it on the next read;
    # after a lane answer the timer stays armed across requests and looks for reads when it fires.

    def _unset_keepalive_if_required(self) -> None:
        if self.lane_timer:  # a read (uvicorn calls this from data_received): the timer stays
            self.reads += 1
            return
        super()._unset_keepalive_if_required()

    def on_response_complete(self) -> None:
        """A full-path answer: uvicorn's own steps (and its timer instead of the lane's)."""
        self._end_lane_timer()
        super().on_response_complete()

    def _end_lane_timer(self) -> None:
        if self.lane_timer:
            self.lane_timer = False
            if self.timeout_keep_alive_task is not None:
                self.timeout_keep_alive_task.cancel()
                self.timeout_keep_alive_task = None

    def _lane_complete(self) -> None:
        """uvicorn's on_response_complete after a lane answer, but the keep-alive timer is armed
        only if none is: an idle connection is closed between ``timeout_keep_alive`` and twice
        that after its last request, not exactly then."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self.timeout_keep_alive_task is None:
            self._arm_lane_timer()

    def _arm_lane_timer(self) -> None:
        self.lane_timer = True
        self.reads_seen = self.reads
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self._lane_timer_fired
        )

    def _lane_timer_fired(self) -> None:
        self.lane_timer = False
        self.timeout_keep_alive_task = None
        if self.transport.is_closing() or (
            self.cycle is not None and not self.cycle.response_complete
        ):
            return  # a request is in progress: its answer arms a timer again
        if self.reads != self.reads_seen:
            self._arm_lane_timer()  # not idle all along: wait another timeout
        else:
            self.timeout_keep_alive_handler()

    def _take(self, cycle: Cycle) -> None:
        lane = self.lane
        assert lane is not None
        try:
            taken = lane.take(self, cycle)
        except Exception:  # a bug here must not cost the request: the full path answers
            logger.exception("express lane failed; the request goes the full path")
            taken = False
        if not taken:
            self.express_decline(cycle)

    def express_decline(self, cycle: Cycle) -> None:
        """The full path answers: the ASGI app gets the request, its body already read."""
        if cycle.disconnected:
            return
        if isinstance(cycle, _Held):
            real = RequestResponseCycle(
                scope=cycle.scope,  # type: ignore[arg-type]
                transport=self.transport,
                flow=self.flow,
                logger=self.logger,
                access_logger=self.access_logger,
                access_log=self.access_log,
                default_headers=self.server_state.default_headers,
                message_event=asyncio.Event(),
                expect_100_continue=False,
                keep_alive=cycle.keep_alive,
                on_response=self.on_response_complete,
            )
            real.body, real.more_body = cycle.body, False
            real.message_event.set()  # the body is in (uvicorn sets it on message complete)
            if self.cycle is cycle:  # type: ignore[comparison-overlap]
                self.cycle = real
            cycle = real
        super()._start_asgi_task(cycle, self.app)

    def express_answer(self, cycle: Cycle, request_id: str, data: bytes) -> None:
        """Write a 200 JSON answer and finish the request, as uvicorn's cycle would."""
        if cycle.disconnected or self.transport.is_closing():
            return
        keep_alive = cycle.keep_alive
        head = _OK_HEAD % (
            _default_headers(self.server_state.default_headers),
            len(data),
            request_id.encode("latin-1"),
            b"" if keep_alive else b"connection: close\r\n",
        )
        cycle.response_complete = True
        cycle.body = bytearray()
        self.transport.write(head + data)
        if isinstance(cycle, RequestResponseCycle):
            cycle.response_started = True
            cycle.message_event.set()
        if not keep_alive:
            self.transport.close()
        self._lane_complete()


_OK_HEAD = (
    STATUS_LINE[200]
    + b"%scontent-length: %d\r\ncontent-type: application/json\r\nx-request-id: %s\r\n%s\r\n"
)
_DEFAULTS: list[Any] = [None, b""]  # uvicorn's default_headers list (a new one every second)


def _default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (date, server) as header lines, made once per list."""
    if headers is not _DEFAULTS[0]:
        _DEFAULTS[1] = b"".join(b"%s: %s\r\n" % pair for pair in headers)
        _DEFAULTS[0] = headers
    text: bytes = _DEFAULTS[1]
    return text
