"""One batching scheduler per model, for every transport.

Every request of every transport (REST routes, the express lane, the protocols to come) reaches
a model as a :class:`~service.dataplane.operations.Job` through :meth:`Scheduler.submit`, and is
answered through its own ``reply`` callback (a future for the routes, a write for the lane).
The scheduler gathers the queued jobs of one operation, up to ``max_size`` samples, and runs the
operation's batch work once for all of them (one ONNX call); each job gets its rows back.

Where the work runs. Models whose forward pass on a full batch is within
``inline_max_s`` (timed at load) run their batches on the event loop: the hand-off to a thread
costs more than their ONNX call. Larger models, requests larger than ``max_size`` samples, and
operations whose batch may cost many forward passes (``Operation.loop_safe`` false: impute,
neighbors) run in the model's own inference thread. With batching off, every job runs alone in
the thread pool (one ONNX call per request).

Waiting policy. A batch is formed once the event loop has run the callbacks that were ready when
the first job arrived (the socket reads of one loop turn: the express lane queues a request in
the read callback that completes it). It keeps gathering while requests that the HTTP layer has
started are still on their way to a scheduler (:class:`Arrivals`: their bytes are read, parsed
and validated over several loop turns), until the batch is full or ``max_wait`` has passed. A
lone client waits one loop turn, not ``max_wait``.

Isolation. Requests are checked one by one before they are queued (shapes, options); the batch
work checks values once for the batch. If a batch fails, each of its jobs is run again alone and
only the failing one gets its error. A job whose client is gone is skipped. The queue is bounded
in samples: beyond ``queue_limit`` a request gets :class:`Overloaded` (503 with Retry-After).
It is bounded in time too: while the oldest queued job has waited more than ``max_queue_wait_s``
new requests get :class:`Overloaded` at once, and a job that waited longer than that by the time
its batch is formed gets it instead of an answer (load shedding: under overload the queue stops
growing and the accepted requests' latency stays bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.runtime.errors import NotReady, Overloaded

if TYPE_CHECKING:
    from service.dataplane.operations import Job

logger = logging.getLogger(__name__)

Fields = dict[str, Any]
Result = Fields | BaseException
BatchWork = Callable[[list["Job"]], list[Fields]]


class Arrivals:
    """How many requests the HTTP layer has started that have not reached a scheduler yet.

    The request-context middleware calls :meth:`start` when an inference request begins (in
    the request's own task, so the mark lives in that task's context) and :meth:`Arrival.done`
    when it ends; :meth:`Scheduler.submit` calls :func:`arrived` first. Batches keep gathering
    while :attr:`count` is above zero (bounded by ``max_wait``).
    """

    def __init__(self) -> None:
        self.count = 0

    def start(self) -> Arrival:
        arrival = Arrival(self)
        self.count += 1
        _ARRIVAL.set(arrival)
        return arrival


class Arrival:
    """One request on its way to a scheduler (see :class:`Arrivals`)."""

    __slots__ = ("arrivals",)

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals: Arrivals | None = arrivals

    def done(self) -> None:
        """The request reached a scheduler or ended; idempotent."""
        if self.arrivals is not None:
            self.arrivals.count -= 1
            self.arrivals = None


_ARRIVAL: ContextVar[Arrival | None] = ContextVar("aeserve_arrival", default=None)


class LoopLag:
    """How late the event loop runs: a tick every ``interval_s`` measures how far behind it fires;
    ``late_s`` is the lesser of the last two (a single stall, e.g. a garbage collection, sheds
    nothing; a loop that stays behind does).

    Under overload most of a request's wait is before any queue: its bytes sit in the socket
    while the loop works through the turn's other requests (1,024 connections to a model that
    batches on the loop: p99 ~1 s with an empty queue). While the loop runs later than
    ``max_queue_wait_s``, :meth:`Scheduler.submit` sheds new requests (503) and the express lane
    sheds them before parsing, so that the turns shorten and the accepted requests' latency
    stays near the bound.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.late_s = 0.0  # how late the last two ticks both fired (one stall is no overload)
        self._last = 0.0  # how late the last tick fired
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.late_s = self._last = 0.0

    def _arm(self) -> None:
        assert self._loop is not None
        self._due = self._loop.time() + self.interval_s
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        late = self._loop.time() - self._due
        self.late_s, self._last = min(late, self._last), late
        self._arm()


def arrived() -> None:
    """The current request (if the HTTP layer counted it) has reached a scheduler."""
    arrival = _ARRIVAL.get()
    if arrival is not None:
        arrival.done()


@dataclass(frozen=True)
class BatchOptions:
    """How a model's scheduler forms batches."""

    max_size: int = 64  # samples per ONNX call; a larger request runs alone
    max_wait_s: float = 0.0005  # longest a request waits for others to join
    queue_limit: int = 4096  # samples waiting per model; beyond it 503
    max_queue_wait_s: float = 0.25  # longest a job may wait in the queue; beyond it 503
    # Models whose forward pass on a full batch (max_size samples) takes at most this long run
    # their batches on the event loop; 0: never.
    inline_max_s: float = 0.005


class Scheduler:
    """The queue and batches of one model (see the module docstring).

    ``work`` runs one batch of jobs of one operation and returns each job's answer fields (the
    data plane gives :meth:`Operation.work <service.dataplane.operations.Operation>` here).
    ``options`` None: batching is off, each job runs alone in the thread pool.
    """

    def __init__(
        self,
        work: BatchWork,
        options: BatchOptions | None,
        *,
        name: str = "model",
        inline: bool = False,
        arrivals: Arrivals | None = None,
        lag: LoopLag | None = None,
    ) -> None:
        self.work = work
        self.options = options if options is not None else BatchOptions(max_size=1)
        self.batching = options is not None
        self.name = name
        self.inline = inline and self.batching
        self.arrivals = arrivals if arrivals is not None else Arrivals()
        self.lag = lag  # None: no shedding on the loop's lateness
        self.queued = 0  # samples waiting
        self.batches = 0  # batches run, for tests and logs
        self.inlined = 0  # ... of which on the event loop
        self._running = 0  # batches (or lone jobs) taken off the queue and not yet answered
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_loop: deque[Job] = deque()  # jobs for the event loop
        self._threaded: deque[Job] = deque()  # jobs for the inference thread
        self._flush_at: float | None = None  # a flush is scheduled; gathering ends then
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        if self.batching:
            self._task = self._loop.create_task(self._work(), name=f"batch-{self.name}")

    async def stop(self) -> None:
        """Stop; jobs still queued get NotReady (503)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None
        shutting = NotReady("the service is shutting down")
        for queue in (self._on_loop, self._threaded):
            while queue:
                job = queue.popleft()
                if not job.cancelled():
                    job.reply(shutting)
        self.queued = 0
        self._thread.shutdown(wait=True)

    @property
    def busy(self) -> bool:
        """Jobs are queued or a batch is running."""
        return self.queued > 0 or self._running > 0

    # -- submitting --------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue ``job``; its ``reply`` gets its fields (or its error) later, on the loop."""
        arrived()
        loop = self._loop
        if loop is None:
            raise NotReady(f"the scheduler of model '{self.name}' is not running")
        n = job.n
        options = self.options
        if self.lag is not None and self.lag.late_s > options.max_queue_wait_s:
            raise Overloaded(
                f"the server is overloaded: it runs {self.lag.late_s * 1000:.0f} ms behind "
                f"(AESERVE_MAX_QUEUE_WAIT_MS {options.max_queue_wait_s * 1000:.0f}); retry shortly"
            )
        if self.queued:
            if self.queued + n > options.queue_limit:
                raise Overloaded(
                    f"model '{self.name}' has {self.queued} samples queued (limit "
                    f"{options.queue_limit}, AESERVE_BATCH_QUEUE_LIMIT); retry shortly"
                )
            self._check_wait(time.perf_counter())
        job.queued_at = time.perf_counter()
        self.queued += n
        if not self.batching:
            loop.create_task(self._alone(job))
        elif self.inline and n <= options.max_size and job.op.loop_safe:
            self._on_loop.append(job)
            if self._flush_at is None:
                self._flush_at = time.perf_counter() + options.max_wait_s
                loop.call_soon(self._flush)
        else:
            self._threaded.append(job)
            assert self._wakeup is not None
            self._wakeup.set()

    def _check_wait(self, now: float) -> None:
        """Overloaded while the oldest queued job has waited longer than max_queue_wait_s."""
        limit = self.options.max_queue_wait_s
        for queue in (self._on_loop, self._threaded):
            if queue and now - queue[0].queued_at > limit:
                raise Overloaded(
                    f"model '{self.name}' is overloaded: queued requests have waited more than "
                    f"{limit * 1000:.0f} ms (AESERVE_MAX_QUEUE_WAIT_MS); retry shortly"
                )

    # -- on the event loop -----------------------------------------------------------------

    def _flush(self) -> None:
        """Run the batches of the loop's queue, unless requests are still on their way; after
        ``inline_max_s`` of batches, the rest wait for the next turn of the loop, so that one
        turn never runs a deep queue's worth of batches while every other request (other
        models', health checks, bytes to read) waits for it."""
        assert self._flush_at is not None and self._loop is not None
        now = time.perf_counter()
        if (
            self.arrivals.count > 0
            and now < self._flush_at
            and self._ready(self._on_loop) < self.options.max_size
        ):
            self._loop.call_soon(self._flush)  # one more turn: they may join
            return
        self._flush_at = None
        until = now + self.options.inline_max_s
        while True:
            batch = self._take(self._on_loop)
            if not batch:
                break
            self.inlined += 1
            self._finish(batch, self._run(batch))
            if self._on_loop and time.perf_counter() >= until:
                self._flush_at = until  # due: the next turn does not wait for arrivals
                self._loop.call_soon(self._flush)
                break

    # -- in the inference thread -----------------------------------------------------------

    async def _work(self) -> None:
        assert self._wakeup is not None and self._loop is not None
        loop = self._loop
        while True:
            if not self._threaded:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._gather(self._threaded)
            batch = self._take(self._threaded)
            if not batch:
                continue
            self._running += 1
            try:
                results = await loop.run_in_executor(self._thread, self._run, batch)
            except asyncio.CancelledError:
                shutting = NotReady("the service is shutting down")
                self._finish(batch, [shutting] * len(batch))
                raise
            finally:
                self._running -= 1
            self._finish(batch, results)

    async def _gather(self, queue: deque[Job]) -> None:
        """Yield to the event loop while requests are on their way (bounded by max_wait)."""
        options = self.options
        deadline = time.perf_counter() + options.max_wait_s
        seen = len(queue)
        while options.max_wait_s > 0 and self._ready(queue) < options.max_size:
            await asyncio.sleep(0)
            if time.perf_counter() >= deadline:
                break
            if len(queue) == seen and self.arrivals.count <= 0:
                break
            seen = len(queue)

    async def _alone(self, job: Job) -> None:
        """Batching off: this job alone in the thread pool."""
        assert self._loop is not None
        self.queued -= job.n
        if job.cancelled():
            return
        job.started_at, job.batch_size = time.perf_counter(), 1
        self._running += 1
        try:
            result = await self._loop.run_in_executor(None, self._run_one, job)
        finally:
            self._running -= 1
        job.finished_at = time.perf_counter()
        if not job.cancelled():
            job.reply(result)

    # -- batches -----------------------------------------------------------------------------

    @staticmethod
    def _ready(queue: deque[Job]) -> int:
        op = queue[0].op if queue else None
        return sum(job.n for job in queue if job.op is op)

    def _take(self, queue: deque[Job]) -> list[Job]:
        """The oldest live job and the next live ones of the same operation, in order, while
        they fit in max_size samples (a larger job alone); the others keep their order."""
        self._shed(queue)
        while queue and queue[0].cancelled():
            self.queued -= queue.popleft().n
        if not queue:
            return []
        op = queue[0].op
        limit = self.options.max_size
        batch: list[Job] = []
        rest: list[Job] = []
        total = 0
        full = False  # in order: once a job does not fit, the batch is closed
        for job in queue:
            if job.cancelled():
                self.queued -= job.n
            elif not full and job.op is op and (not batch or total + job.n <= limit):
                batch.append(job)
                total += job.n
                self.queued -= job.n
            else:
                full = full or job.op is op
                rest.append(job)
        queue.clear()
        queue.extend(rest)
        return batch

    def _shed(self, queue: deque[Job]) -> None:
        """Jobs that waited longer than max_queue_wait_s get Overloaded instead of a batch."""
        limit = self.options.max_queue_wait_s
        if not queue or time.perf_counter() - queue[0].queued_at <= limit:
            return
        deadline = time.perf_counter() - limit
        shed = Overloaded(
            f"model '{self.name}' is overloaded: this request waited more than "
            f"{limit * 1000:.0f} ms in its queue (AESERVE_MAX_QUEUE_WAIT_MS); retry shortly"
        )
        while queue and queue[0].queued_at < deadline:
            job = queue.popleft()
            self.queued -= job.n
            if not job.cancelled():
                job.reply(shed)

    def _run(self, batch: list[Job]) -> list[Result]:
        """One batch: the operation's work once; if it fails, each job alone, so that only
        the failing one gets the error."""
        self.batches += 1
        start = time.perf_counter()
        if len(batch) == 1:
            results = [self._run_one(batch[0])]
        else:
            try:
                results = list(self.work(batch))
            except Exception:
                results = [self._run_one(job) for job in batch]
        end = time.perf_counter()
        for job in batch:  # stamps for tracing (service/http/tracing.py)
            job.started_at, job.finished_at, job.batch_size = start, end, len(batch)
        return results

    def _run_one(self, job: Job) -> Result:
        try:
            return self.work([job])[0]
        except Exception as exc:
            return exc

    @staticmethod
    def _finish(batch: list[Job], results: list[Result]) -> None:
        """Each job its answer (or its error); jobs whose client is gone are skipped."""
        for job, result in zip(batch, results, strict=True):
            if not job.cancelled():
                job.reply(result)
