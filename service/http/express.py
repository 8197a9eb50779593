"""The express lane: common inference POSTs answered straight from uvicorn's HTTP protocol.

Per request, uvicorn's ASGI cycle, Starlette's request and response objects, option parsing, a
task and a future cost several times a small model's own work. The lane is a transport like
the REST routes, over the same data plane: for a ``POST /{operation}`` of an operation that
takes samples, with a JSON body of declared length that gives only ``model`` and ``inputs`` (or
``records``), or a ``.npy`` body answered as ``.npy`` (its options in the query string, read
as the full path reads them), :class:`ExpressProtocol` holds the request until its body is in; then
:meth:`ExpressLane.take` applies the policy (request id, admission: body limit and request
hooks), parses the body in the protocol callback and submits a job to the model's scheduler,
whose reply writes the 200 answer in one write. Metrics and the access log go through the same
:class:`~service.http.policy.Policy` as every other request.

Other transports add their plain requests with :meth:`ExpressLane.add_route` (an
:class:`ExpressRoute`: it matches raw paths, makes the job and writes the answer; the v2
protocol's infer, ``service/http/v2/express.py``), under the same conditions and policy.

The lane answers only 200s, and the 503 of a model that sheds load (its queue full or too
slow: answered here, as the full path would find the queue drained a loop turn later). Whatever
it does not take falls back to the full ASGI path exactly
as uvicorn would have sent it, body included, and the app answers it (problem+json, request id,
metrics): a body that does not parse, other options, an unknown model, a refusal by the policy
(the app renders it without admitting the request again), inputs the data plane refuses (then
only that request of the batch), the service still loading. Requests the lane never looks at:
other paths and methods, query strings (but a ``.npy`` body's), chunked bodies, ``Expect:
100-continue``, JSON bodies over ``LARGE_BODY``, ``Accept`` other than JSON (or ``.npy`` for a
``.npy`` body), CORS requests (with an ``Origin`` when CORS is on),
and all of them while uvicorn's own access log is on, while an ordinary ASGI middleware is
installed (the lane cannot run it), with batching off, or when the app is served another way
than ``python -m service`` (e.g. ``uvicorn --factory service.http.app:create_app``): the log
says at start-up whether the lane is on.

uvicorn's internals. The protocol subclasses uvicorn's ``HttpToolsProtocol``; everything it
relies on (methods it overrides, attributes it reads, ``RequestResponseCycle``'s constructor)
is in this module only, pinned by ``tests/service/test_express_contract.py`` and by the uvicorn
range in pyproject.toml, so an upgrade fails in CI, not in production.

Connection limits (``service/http/limits.py``): the protocol also times heads and bodies out
(408), refuses heads over the size limit (431) and connections over the cap (503), for every
request of ``python -m service`` whichever path answers it; and on SIGTERM it drains (see
:meth:`ExpressProtocol.shutdown`). A request that completes within one read costs no timer.

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
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import parse_qsl

import httptools
import numpy as np
import orjson
from starlette.middleware.cors import CORSMiddleware
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from service.codecs.arrays import LARGE_BODY, array_from_json, record_rows
from service.codecs.flatjson import FLAT_MIN, exact32, flat_body
from service.codecs.npy import decode_npy
from service.dataplane import tabular
from service.dataplane.operations import Fields, Job, Operation
from service.dataplane.plane import DataPlane
from service.http.limits import ConnectionLimits
from service.http.middleware import RequestContextMiddleware
from service.http.policy import ADMITTED_KEY, Policy, RequestHead
from service.http.problems import PROBLEM_JSON, problem_body, status_of
from service.http.requests import validate
from service.http.responses import npy_parts
from service.runtime.errors import Overloaded, ServiceError
from service.runtime.model import ModelRuntime

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_JSON_TYPES = (b"application/json",)
_NPY = b"application/x-npy"
# What takes_headers found: no express request, a body the lane reads (JSON, or a route's
# binary tensors), or a .npy body answered as .npy.
_NO, _PLAIN, _NPY_BODY = 0, 1, 2
_OCTETS = b"application/octet-stream"
_HEADER_LENGTH = b"inference-header-content-length"
NPY_KEY = "aeserve.npy"  # scope key: the held request is a .npy one
_ACCEPTS = (b"*/*", b"application/json", b"application/*")
_DUMPS = orjson.OPT_SERIALIZE_NUMPY
_EMPTY = np.empty((0,), dtype=np.float32)


class _Decline(Exception):
    """The lane does not take this request: the full path answers it."""


class _Refused(Exception):
    """A request head over the limit, raised from a parser callback (see ``refusal``)."""


_OVERLOADED = Overloaded(
    "the server is overloaded: it runs later than AESERVE_MAX_QUEUE_WAIT_MS; retry shortly"
)
_IDLE, _HEAD, _BODY = 0, 1, 2  # what a connection's parser is reading
# Paths matched against the other routes' patterns, remembered (cleared when this many).
_ROUTED_MAX = 1024
# On shutdown an idle keep-alive connection is closed once nothing arrived for this long.
DRAIN_IDLE_S = 0.25


def _too_large_head(limit: int) -> tuple[int, str]:
    return 431, (
        f"the request head (request line and headers) is larger than {limit} bytes "
        "(AESERVE_MAX_HEADER_BYTES); send shorter headers"
    )


Decline = _Decline  # for the transports that add routes to the lane (ExpressRoute)


class ExpressRoute(Protocol):
    """Another transport's POSTs through the lane (the v2 protocol's infer): it matches raw
    paths, makes the job of a body (raising Decline, a ServiceError or ValueError to let the
    full path answer) and writes the 200 answer of the job's fields."""

    endpoint: str  # the route template: the metrics label, and what the lane logs

    def matches(self, path: bytes) -> bool: ...

    def job(
        self,
        lane: ExpressLane,
        path: bytes,
        body: bytes | bytearray,
        headers: list[tuple[bytes, bytes]],
    ) -> tuple[Job, Answer]: ...


class Written(NamedTuple):
    """An answer other than JSON: its body, media type and extra header lines."""

    data: bytes | memoryview
    content_type: bytes
    extra: bytes


Answer = Callable[[Fields], "bytes | Written"]


class ExpressLane:
    """The express requests of one app (see the module docstring)."""

    def __init__(self, *, plane: DataPlane, policy: Policy, cors: bool, enabled: bool) -> None:
        self.plane = plane
        self.policy = policy
        self.cors = cors
        self.enabled = enabled  # asked for (python -m service, batching on, fast_path)
        self.on = False  # serving: set once the models are loaded (open)
        self.max_body = min(policy.max_body_bytes, LARGE_BODY)  # JSON: parsed on the loop
        self.max_npy = policy.max_body_bytes  # .npy: read in place, whatever its size
        # Raw URL -> operation: every registered operation that takes samples.
        self.paths: dict[bytes, Operation] = {
            f"/{op.name}".encode("ascii"): op
            for op in plane.operations.values()
            if op.takes == "samples"
        }
        self.routes: list[ExpressRoute] = []  # other transports' paths (add_route)
        self._routed: dict[bytes, ExpressRoute | None] = {}  # path -> route, as matched
        # Latencies answered this loop turn, counted at once (Metrics.observe_many).
        self._answered: dict[tuple[str, str], tuple[list[RequestHead], list[float]]] = {}
        self._counting = False

    def add_route(self, route: ExpressRoute) -> None:
        """Serve ``route``'s requests through the lane too (under the same conditions)."""
        self.routes.append(route)
        self._routed.clear()

    def route(self, path: bytes) -> Operation | ExpressRoute | None:
        """What serves a raw path through the lane: an operation, another route, or nothing."""
        op = self.paths.get(path)
        if op is not None or not self.routes:
            return op
        if path in self._routed:
            return self._routed[path]
        # The routes' patterns, once per path (a few per model).
        routed = next((r for r in self.routes if r.matches(path)), None)
        if len(self._routed) >= _ROUTED_MAX:
            self._routed.clear()
        self._routed[path] = routed
        return routed

    def open(self, app: Any) -> None:
        """Start serving (models are loaded), unless the app has ASGI middleware of its own
        that the lane could not run; say which in the log."""
        if not self.enabled:
            logger.info(
                "express lane off (it needs python -m service with batching on); every "
                "request takes the ASGI path"
            )
            return
        foreign = [
            getattr(m.cls, "__name__", str(m.cls))
            for m in getattr(app, "user_middleware", ())
            if m.cls not in (RequestContextMiddleware, CORSMiddleware)
        ]
        if foreign:
            logger.warning(
                "express lane off: ASGI middleware %s is installed and the lane cannot run it "
                "(use a request hook, service/http/policy.py, to keep the lane)",
                ", ".join(foreign),
            )
            return
        self.on = True
        served = [p.decode() for p in self.paths] + [r.endpoint for r in self.routes]
        logger.info("express lane on for POST %s", ", ".join(served))

    def takes(self, scope: dict[str, Any]) -> bool:
        """Whether the lane may take this request, from its head (before the body)."""
        if (
            not self.on
            or scope["method"] != "POST"
            or (op := self.route(scope["raw_path"])) is None
            or scope["root_path"]
        ):
            return False
        kind = self.takes_headers(scope["headers"], isinstance(op, Operation))
        if kind == _NO or (scope["query_string"] and kind != _NPY_BODY):
            return False
        scope[NPY_KEY] = kind == _NPY_BODY
        return True

    def takes_headers(self, headers: list[tuple[bytes, bytes]], npy: bool = True) -> int:
        """The header part of :meth:`takes`, by what the body is: _PLAIN for a declared JSON
        body within bounds answered as JSON (or, on a route's path, a v2 body of binary tensors
        with its Inference-Header-Content-Length), _NPY_BODY (``npy``: an operation's path) for
        a declared .npy body answered as .npy; _NO for anything else."""
        length = None
        ctype = accept = None
        binary = False  # a v2 body with binary tensors (Inference-Header-Content-Length)
        for name, value in headers:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return _NO
                length = int(value)
            elif name == b"content-type":
                if ctype is not None:
                    return _NO
                ctype = value.split(b";", 1)[0].strip().lower()
            elif name == b"accept":
                if accept is not None:
                    return _NO
                accept = value.strip().lower()
            elif name == _HEADER_LENGTH:
                binary = True
            elif name in (b"transfer-encoding", b"expect", b"content-encoding") or (
                name == b"origin" and self.cors
            ):
                return _NO
        if length is None or length <= 0:
            return _NO
        if npy and ctype == _NPY:  # an operation's .npy body: answered as .npy only
            return _NPY_BODY if accept == _NPY and length <= self.max_npy else _NO
        if accept is not None and accept not in _ACCEPTS:
            return _NO
        if binary:  # a route's (v2) body of binary tensors: read in place, whatever its size
            plain = not npy and ctype in (None, _OCTETS, *_JSON_TYPES) and length <= self.max_npy
            return _PLAIN if plain else _NO
        if ctype is None or ctype in _JSON_TYPES:
            return _PLAIN if length <= self.max_body else _NO
        return _NO

    def take(self, protocol: ExpressProtocol, cycle: Cycle) -> bool:
        """Submit a request whose body is in; False: the full path answers it."""
        start = time.perf_counter()
        plane = self.plane
        repository = plane.load.repository
        if repository is None:
            return False
        scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
        op = self.route(scope["raw_path"])
        assert op is not None
        head = self.policy.head("POST", scope["path"], scope["headers"], scope["client"])
        try:
            self.policy.admit(head)
        except ServiceError as exc:
            scope[ADMITTED_KEY] = exc  # the app renders the refusal, with this request id
            return False
        scope[ADMITTED_KEY] = head  # declined from here on: the app does not admit it again
        if plane.overloaded():  # shed before parsing: the cheapest answer
            self.shed(protocol, cycle, head, start, "", _OVERLOADED)
            return True
        npy = scope.get(NPY_KEY, False)
        try:
            if npy and isinstance(op, Operation):
                job = self._npy_job(op, repository, scope["query_string"], cycle.body)
                answer, endpoint = _npy_answer(job.runtime), head.path
            elif isinstance(op, Operation):
                job, answer, endpoint = self._job(op, repository.get, cycle.body), None, head.path
            else:
                job, answer = op.job(self, scope["raw_path"], cycle.body, scope["headers"])
                endpoint = op.endpoint
            job.reply = _Reply(self, protocol, cycle, head, start, job.runtime, answer, endpoint)
            job.cancelled = _Gone(cycle)
        except (orjson.JSONDecodeError, _Decline, ServiceError, ValueError):
            return False
        try:
            plane.submit(job)
        except Overloaded as exc:  # shed here: the full path would find the queue drained
            self.shed(protocol, cycle, head, start, job.runtime.name, exc)
        except ServiceError:
            return False
        return True

    def shed(
        self,
        protocol: ExpressProtocol,
        cycle: Cycle,
        head: RequestHead,
        start: float,
        model: str,
        exc: Overloaded,
    ) -> None:
        """Answer an overloaded model's 503 from the lane (the queue limit and the queue-wait
        bound hold on every path), counted as every answer is."""
        status = status_of(exc)
        body = problem_body(status, exc.detail, head.path, head.request_id)
        protocol.express_answer(
            cycle, head.request_id, body, status=status, retry_after=exc.retry_after
        )
        self.policy.finish(head, head.path, model, status, time.perf_counter() - start)

    def _job(self, op: Operation, get_model: Any, body: bytes | bytearray) -> Job:
        """The request's job, from a plain body; _Decline (or a ServiceError) otherwise."""
        flat = flat_body(body) if len(body) > FLAT_MIN else None
        if flat is not None:  # a large flat array of numbers: straight into numpy
            name, wide = flat
            runtime: ModelRuntime = get_model(name)
            if wide.shape[1] != runtime.size:
                raise _Decline
            job = self._new(op, runtime, _EMPTY, len(wide))
            if runtime.kind != "tabular":
                job.wide = wide  # checked and cast with the batch's
                return job
            x = _exact(wide)
            if op.name == "anomaly-score":
                tabular.check_finite(runtime, x, records=False)  # raises: the full path says it
                job.finite = True
            job.x = x
            return job
        data = orjson.loads(body)
        if type(data) is not dict:
            raise _Decline
        name = data.get("model")
        if name is not None and type(name) is not str:
            raise _Decline
        runtime = get_model(name)
        keys = data.keys() - {"model"}
        if keys == {"inputs"}:
            x = _inputs(runtime, data["inputs"])
            job = self._new(op, runtime, x, len(x))
            if runtime.kind == "tabular" and op.name == "anomaly-score":
                tabular.check_finite(runtime, x, records=False)
                job.finite = True
            return job
        if keys == {"records"} and runtime.kind == "tabular":
            records, ids = (
                tabular.split_ids(runtime, data["records"])
                if op.name == "anomaly-score"
                else (data["records"], None)
            )
            if type(records) is not list or not 0 < len(records) <= runtime.max_batch:
                raise _Decline
            rows = record_rows(runtime, records)
            if rows is None:
                raise _Decline
            job = self._new(op, runtime, _EMPTY, len(rows))
            job.rows, job.ids = rows, ids
            return job
        raise _Decline

    def _npy_job(
        self, op: Operation, repository: Any, query: bytes, body: bytes | bytearray
    ) -> Job:
        """A .npy body's job, its options from the query string, as the full path reads them
        (service/http/requests.py); _Decline or a ServiceError for anything else."""
        params: dict[str, Any] = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        if "inputs" in params:
            raise _Decline  # the full path says to send it as the body
        params["inputs"] = decode_npy(body)
        options = validate(op.options, params, "query parameters")
        if options.__dict__.get("output_format") == "png":
            raise _Decline  # not as .npy: the full path says so
        return self.plane.prepare(op, repository.get(options.model, options.version), options)

    def _new(self, op: Operation, runtime: ModelRuntime, x: Any, n: int) -> Job:
        options = op.default_options
        op.check(runtime, options, self.plane.context)
        return Job(op, runtime, options, x, n)

    def answered(self, path: str, model: str, head: RequestHead, seconds: float) -> None:
        """Count a lane answer; the counts of one loop turn go to the metrics at once."""
        key = (path, model)
        entry = self._answered.get(key)
        if entry is None:
            entry = self._answered[key] = ([], [])
        entry[0].append(head)
        entry[1].append(seconds)
        if not self._counting:
            self._counting = True
            asyncio.get_running_loop().call_soon(self._count)

    def _count(self) -> None:
        self._counting = False
        answered, self._answered = self._answered, {}
        metrics = self.policy.metrics
        for (path, model), (heads, seconds) in answered.items():
            self.policy.finish_many(heads, path, model, 200, seconds)
            metrics.observe_express(path, len(seconds))


def _npy_answer(runtime: ModelRuntime) -> Answer:
    """The REST answer as .npy, with its ``x-`` headers (as the full path's npy_response)."""

    def answer(fields: Fields) -> Written:
        table, headers = npy_parts(runtime, fields)
        extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
        return Written(table, _NPY, extra)

    return answer


class _Reply:
    """A lane job's reply: the answer written from the protocol, or the full path on errors."""

    __slots__ = ("answer", "cycle", "endpoint", "head", "lane", "protocol", "runtime", "start")

    def __init__(
        self,
        lane: ExpressLane,
        protocol: ExpressProtocol,
        cycle: Cycle,
        head: RequestHead,
        start: float,
        runtime: ModelRuntime,
        answer: Answer | None = None,
        endpoint: str = "",
    ) -> None:
        self.answer = answer  # None: the REST answer
        self.endpoint = endpoint  # the metrics label
        self.lane = lane
        self.protocol = protocol
        self.cycle = cycle
        self.head = head
        self.start = start
        self.runtime = runtime

    def __call__(self, result: Fields | BaseException) -> None:
        cycle, protocol = self.cycle, self.protocol
        if isinstance(result, Overloaded):  # shed from the queue (waited too long)
            self.lane.shed(protocol, cycle, self.head, self.start, self.runtime.name, result)
            return
        if isinstance(result, BaseException):
            if not isinstance(result, ServiceError | OverflowError | ValueError):
                logger.warning("express lane: %r; the full path answers", result)
            protocol.express_decline(cycle)
            return
        runtime = self.runtime
        try:
            if self.answer is None:
                data = orjson.dumps(
                    {"model": runtime.name, "version": runtime.version, **result}, option=_DUMPS
                )
                protocol.express_answer(cycle, self.head.request_id, data)
            else:
                out = self.answer(result)
                if isinstance(out, Written):
                    protocol.express_answer(
                        cycle,
                        self.head.request_id,
                        out.data,
                        content_type=out.content_type,
                        extra=out.extra,
                    )
                else:
                    protocol.express_answer(cycle, self.head.request_id, out)
        except Exception:  # this request alone; the batch's others are still answered
            logger.exception("express lane: answering a request failed")
            protocol.transport.close()
            return
        self.lane.answered(self.endpoint, runtime.name, self.head, time.perf_counter() - self.start)


class _Gone:
    """A lane job's ``cancelled``: its client disconnected."""

    __slots__ = ("cycle",)

    def __init__(self, cycle: Cycle) -> None:
        self.cycle = cycle

    def __call__(self) -> bool:
        return self.cycle.disconnected


def _inputs(runtime: ModelRuntime, value: Any) -> Any:
    """``inputs`` as the full path reads them (codecs.arrays.array_from_json), shape-checked."""
    if type(value) is not list:
        raise _Decline
    x = array_from_json(value, "inputs")
    if x.ndim < 2 or x.shape[0] == 0:
        raise _Decline
    return runtime.shaped(x)


def _exact(rows: Any) -> Any:
    x = exact32(rows)
    if x is None:
        raise _Decline
    return x


def lane_of(app: Any) -> ExpressLane | None:
    """The express lane of the app under uvicorn's wrappers (proxy headers, message logger)."""
    return _from_state(app, "express", ExpressLane)


def _from_state(app: Any, name: str, kind: type[_T]) -> _T | None:
    """``app.state.<name>`` of the app under uvicorn's wrappers, if it is a ``kind``."""
    for _ in range(8):
        state = getattr(app, "state", None)
        value = getattr(state, name, None) if state is not None else None
        if isinstance(value, kind):
            return value
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

    __slots__ = (
        "body", "chunks", "disconnected", "keep_alive", "more_body", "response_complete", "scope",
    )  # fmt: skip

    message_event = _NoEvent
    waiting_for_100_continue = False

    def __init__(self, scope: dict[str, Any], keep_alive: bool) -> None:
        self.scope = scope
        self.keep_alive = keep_alive
        self.body: bytes | bytearray = b""  # the whole body, once it is in
        self.chunks: list[bytes] = []  # ... as read: joined once (not grown read by read)
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
        # Connection limits (service/http/limits.py), on every request of the connection.
        self.limits: ConnectionLimits = _from_state(self.app, "limits", ConnectionLimits) or (
            ConnectionLimits()
        )
        self.phase = _IDLE  # what the parser is reading: between messages, a head, a body
        self.messages = 0  # messages begun on this connection
        self.chunk = 0  # size of the data being parsed
        self.head_read = 0  # bytes read while the current head was incomplete
        self.body_started = 0.0  # loop time the current body began
        self.received = 0  # data_received calls
        self.guard: asyncio.TimerHandle | None = None  # a head or body is taking time
        self.guard_mark = 0  # self.messages when the guard was armed
        self.refusal: tuple[int, str] | None = None  # a head refused from a parser callback
        self.draining = False  # SIGTERM: answer what comes with Connection: close, then close
        self.held: _Held | None = None  # its body is being read
        # Keep-alive after lane answers: one timer per idle spell, not one per request (see
        # _lane_complete). True while the armed timeout_keep_alive_task is the lane's.
        self.lane_timer = False
        self.reads = 0  # data read while the lane's timer is armed
        self.reads_seen = 0  # ... when it was armed

    def on_headers_complete(self) -> None:
        """An express request is held in a :class:`_Held` (uvicorn's own steps otherwise)."""
        self.phase = _BODY
        self.body_started = self.loop.time()
        if self.head_read + self.chunk > self.limits.max_header_bytes and not self._head_fits():
            raise _Refused  # data_received answers the refusal
        self._on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def _on_headers_complete(self) -> None:
        lane, parser = self.lane, self.parser
        path, _, query = self.url.partition(b"?")
        if (
            lane is None
            or (op := lane.route(path)) is None  # an express path, no escapes
            or (self.cycle is not None and not self.cycle.response_complete)  # pipelined
            or self.expect_100_continue
            or self.limit_concurrency is not None
            or self.root_path
            or parser.get_method() != b"POST"
            or parser.should_upgrade()
            or not lane.on
            or (kind := lane.takes_headers(self.headers, isinstance(op, Operation))) == _NO
            or (query and kind != _NPY_BODY)  # options in the query: .npy bodies only
        ):
            super().on_headers_complete()
            return
        scope = self.scope
        version = parser.get_http_version()
        scope["method"] = "POST"
        if version != "1.1":
            scope["http_version"] = version
        scope["path"] = "/" + op.name if isinstance(op, Operation) else path.decode("ascii")
        scope["raw_path"] = path
        scope["query_string"] = query
        held = _Held(scope, version != "1.0" and parser.should_keep_alive())  # type: ignore[arg-type]
        self.cycle = self.held = held  # type: ignore[assignment]
        held.scope[NPY_KEY] = kind == _NPY_BODY

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
        if held is not None and held is self.cycle:  # type: ignore[comparison-overlap]
            held.chunks.append(body)  # at most the declared length (bounded): no pause
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.phase = _IDLE
        held = self.held
        if held is not None and held is self.cycle:  # type: ignore[comparison-overlap]
            self.held = None
            held.more_body = False
            # One copy for the whole body (none for a body read at once), not one per read.
            held.body, held.chunks = b"".join(held.chunks), []
            self._take(held)
            return
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.held = None
        self._end_lane_timer()
        if self.guard is not None:
            self.guard.cancel()
            self.guard = None
        super().connection_lost(exc)

    # -- connection limits (service/http/limits.py) and draining on shutdown --------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                503,
                f"the server has {self.limits.max_connections} connections open "
                "(AESERVE_MAX_CONNECTIONS); retry shortly",
                retry_after=1,
            )
            return
        # A connection that never sends anything is idle: closed after the keep-alive timeout.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        """uvicorn's data_received, plus the head size limit and the head and body timers."""
        self.received += 1
        self.chunk = len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.refusal is not None:
                self._refuse(*self.refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        phase = self.phase
        if phase == _IDLE:
            if self.guard is not None:
                self.guard.cancel()
                self.guard = None
            return
        if phase == _HEAD:
            self.head_read += len(data)
            if self.head_read > self.limits.max_header_bytes:
                self._refuse(*_too_large_head(self.limits.max_header_bytes))
                return
        if self.guard is None and not self.transport.is_closing():
            self._arm_guard(
                self.limits.header_timeout_s if phase == _HEAD else self.limits.body_timeout_s
            )

    def on_message_begin(self) -> None:
        self.phase = _HEAD
        self.messages += 1
        self.head_read = 0
        super().on_message_begin()

    def _head_fits(self) -> bool:
        size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
        if size <= self.limits.max_header_bytes:
            return True
        self.refusal = _too_large_head(self.limits.max_header_bytes)
        return False

    def _arm_guard(self, seconds: float) -> None:
        self.guard_mark = self.messages
        self.guard = self.loop.call_later(seconds, self._guard_fired)

    def _guard_fired(self) -> None:
        """A head or a body has taken a while: 408 if it took too long, else look again."""
        self.guard = None
        if self.transport.is_closing() or self.phase == _IDLE:
            return
        limits = self.limits
        if self.phase == _HEAD:
            if self.messages == self.guard_mark:
                self._timed_out(f"the request head took more than {limits.header_timeout_s:g} s")
            else:
                self._arm_guard(limits.header_timeout_s)
            return
        left = self.body_started + limits.body_timeout_s - self.loop.time()
        if self.flow.read_paused:  # the app is not reading the body yet: not the client's fault
            self._arm_guard(limits.body_timeout_s)
        elif left > 0:
            self._arm_guard(left)
        else:
            self._timed_out(f"the request body took more than {limits.body_timeout_s:g} s")

    def _timed_out(self, why: str) -> None:
        cycle = self.cycle
        if cycle is not None and getattr(cycle, "response_started", False):
            self.transport.close()  # the app is answering: no second answer
            return
        self._refuse(
            408, f"{why}; send requests faster (AESERVE_HEADER_TIMEOUT_S, AESERVE_BODY_TIMEOUT_S)"
        )

    def _refuse(self, status: int, detail: str, retry_after: int | None = None) -> None:
        """Answer a problem document before the request reached the app, and close."""
        if self.transport.is_closing():
            return
        body = problem_body(status, detail, "", None)
        self.transport.write(
            b"%s%scontent-length: %d\r\ncontent-type: %s\r\n%sconnection: close\r\n\r\n%s"
            % (
                STATUS_LINE[status],
                _default_headers(self.server_state.default_headers),
                len(body),
                PROBLEM_JSON.encode(),
                b"" if retry_after is None else b"retry-after: %d\r\n" % retry_after,
                body,
            )
        )
        self.transport.close()

    def shutdown(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown): a request in progress is answered with
        ``Connection: close``; an idle connection waits briefly for a request already on its
        way (answered the same way) before it is closed, so a busy client loses none."""
        self.draining = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
            return
        self.loop.call_later(DRAIN_IDLE_S, self._drain, self.received)

    def _drain(self, received: int) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        idle = self.phase == _IDLE and (cycle is None or cycle.response_complete)
        if idle and self.received == received and received != -1:
            self.transport.close()
            return
        # A request is being read or answered (its answer closes the connection): look again.
        self.loop.call_later(DRAIN_IDLE_S, self._drain, self.received if idle else -1)

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
            real.body, real.more_body = cycle.body, False  # type: ignore[assignment]
            real.message_event.set()  # the body is in (uvicorn sets it on message complete)
            if self.cycle is cycle:  # type: ignore[comparison-overlap]
                self.cycle = real
            cycle = real
        super()._start_asgi_task(cycle, self.app)

    def express_answer(
        self,
        cycle: Cycle,
        request_id: str,
        data: bytes | memoryview,
        *,
        status: int = 200,
        retry_after: int | None = None,
        content_type: bytes = b"application/json",
        extra: bytes = b"",
    ) -> None:
        """Write an answer (200: JSON, or ``content_type`` with ``extra`` header lines; or a
        503 problem when shedding) and finish the request, as uvicorn's cycle would."""
        if cycle.disconnected or self.transport.is_closing():
            return
        keep_alive = cycle.keep_alive and not self.draining
        ending = b"" if keep_alive else b"connection: close\r\n"
        if status == 200:
            head = _OK_HEAD % (
                _default_headers(self.server_state.default_headers),
                len(data),
                content_type,
                extra,
                request_id.encode("latin-1"),
                ending,
            )
        else:
            head = _PROBLEM_HEAD % (
                STATUS_LINE[status],
                _default_headers(self.server_state.default_headers),
                len(data),
                request_id.encode("latin-1"),
                b"" if retry_after is None else b"retry-after: %d\r\n" % retry_after,
                ending,
            )
        cycle.response_complete = True
        cycle.body = bytearray()
        if len(data) > _JOIN_MAX:  # a large body: no copy to join it to its head
            self.transport.writelines((head, data))
        else:
            self.transport.write(head + data)
        if isinstance(cycle, RequestResponseCycle):
            cycle.response_started = True
            cycle.message_event.set()
        if not keep_alive:
            self.transport.close()
        self._lane_complete()


_OK_HEAD = (
    STATUS_LINE[200] + b"%scontent-length: %d\r\ncontent-type: %s\r\n%sx-request-id: %s\r\n%s\r\n"
)
_JOIN_MAX = 64 * 1024  # answers up to this size are joined to their head: one write
_PROBLEM_HEAD = (
    b"%s%scontent-length: %d\r\ncontent-type: "
    + PROBLEM_JSON.encode()
    + b"\r\nx-request-id: %s\r\n%s%s\r\n"
)
_DEFAULTS: list[Any] = [None, b""]  # uvicorn's default_headers list (a new one every second)


def _default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (date, server) as header lines, made once per list."""
    if headers is not _DEFAULTS[0]:
        _DEFAULTS[1] = b"".join(b"%s: %s\r\n" % pair for pair in headers)
        _DEFAULTS[0] = headers
    text: bytes = _DEFAULTS[1]
    return text
