"""Dynamic micro-batching: one inference worker per model.

Requests put their model-space batch on the model's queue (:meth:`Batcher.submit`) and await a
future. The worker, an asyncio task, takes the oldest request and every queued request of the
same operation, up to ``max_size`` samples, concatenates them, runs
:meth:`ModelRuntime.infer <service.runtime.ModelRuntime.infer>` once in the model's own inference
thread, and hands each request its rows back, in order.

Waiting policy. After the first request arrives the worker yields to the event loop, which lets
requests whose bytes have already arrived be parsed and join. It keeps yielding while requests
are still on their way: while a turn of the loop added requests, or while the front
(service/fastpath.py) has requests it started that have not reached a batcher yet
(:class:`Arrivals`); it stops when the batch is full or ``max_wait`` has passed since it started
collecting. A lone client therefore waits one loop turn, not ``max_wait``. Counting the requests
on their way matters: a request's bytes are read, parsed and validated over several turns of
the loop, so "nothing new this turn" does not mean "nothing coming", and without the count
16 concurrent clients made batches of one or two (measured: bench/NOTES.md, fourth pass).

Isolation. Inputs are validated per request before they are queued, so a bad request never joins
a batch. If a batch still fails in onnxruntime, each of its requests is run again alone and only
the failing one gets the error. A cancelled or timed-out client leaves a cancelled future behind;
the worker skips it. The queue is bounded in samples: beyond ``queue_limit`` a request gets 503
with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from service.errors import NotReady, ServiceError
from service.runtime import F32, Op

if TYPE_CHECKING:
    from service.repository import ModelRepository

logger = logging.getLogger(__name__)

Infer = Callable[[Op, F32], list[F32]]


class Overloaded(ServiceError):
    """The model's queue is full; the client should retry later."""

    status = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class Arrivals:
    """How many requests the front has started that have not reached a batcher yet.

    The front calls :meth:`start` when it begins a request (in the request's own task, so the
    mark lives in that task's context) and :meth:`Arrival.done` when the request ends; a
    batcher's :meth:`Batcher.submit` calls :func:`arrived` first. Batches keep gathering while
    :attr:`count` is above zero (bounded by ``max_wait``).
    """

    def __init__(self) -> None:
        self.count = 0

    def start(self) -> Arrival:
        arrival = Arrival(self)
        self.count += 1
        _ARRIVAL.set(arrival)
        return arrival


class Arrival:
    """One request on its way to a batcher (see :class:`Arrivals`)."""

    __slots__ = ("arrivals",)

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals: Arrivals | None = arrivals

    def done(self) -> None:
        """The request reached a batcher or ended; idempotent."""
        if self.arrivals is not None:
            self.arrivals.count -= 1
            self.arrivals = None


_ARRIVAL: ContextVar[Arrival | None] = ContextVar("aeserve_arrival", default=None)


def arrived() -> None:
    """The current request (if the front counted it) has reached a batcher."""
    arrival = _ARRIVAL.get()
    if arrival is not None:
        arrival.done()


@dataclass(frozen=True)
class BatchOptions:
    """How a model's worker forms batches."""

    max_size: int = 64  # samples per ONNX call; a larger request runs alone
    max_wait_s: float = 0.0005  # longest a request waits for others to join
    queue_limit: int = 4096  # samples waiting per model; beyond it 503
    # Models whose forward pass on a full batch (max_size samples) takes at most this long run
    # their batches inline, on the event loop (see Batcher.submit); 0: never.
    inline_max_s: float = 0.005


@dataclass(eq=False)
class _Item:
    op: Op
    x: F32
    future: asyncio.Future[list[F32]]
    n: int = field(init=False)

    def __post_init__(self) -> None:
        self.n = int(self.x.shape[0])


class Batcher:
    """The queue and inference worker of one model (see the module docstring)."""

    def __init__(
        self,
        infer: Infer,
        options: BatchOptions,
        *,
        name: str = "model",
        inline: bool = False,
        arrivals: Arrivals | None = None,
    ) -> None:
        self.infer = infer
        self.options = options
        self.name = name
        # Requests on their way (counted by the front): gathering waits for them.
        self.arrivals = arrivals if arrivals is not None else Arrivals()
        # Run a lone request's ONNX call on the event loop (a tiny model: the hand-off to the
        # inference thread would cost more than the call).
        self.inline = inline
        self.queued = 0  # samples on the queue
        self.batches = 0  # ONNX calls made by the worker, for tests and logs
        self.inlined = 0  # ONNX calls made inline
        self._busy = False  # a batch is running in the inference thread
        self._leading = False  # an inline request is gathering others (Batcher._lead)
        self._pending: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._work(), name=f"batch-{self.name}")

    async def stop(self) -> None:
        """Stop the worker; requests still queued get 503."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(NotReady("the service is shutting down"))
        self.queued = 0
        self._thread.shutdown(wait=True)

    async def submit(self, op: Op, x: F32) -> list[F32]:
        """Queue one request's model-space batch ``x`` [N, ...]; its rows of every output."""
        arrived()
        if self._task is None or self._wakeup is None:
            raise NotReady(f"the inference worker of model '{self.name}' is not running")
        n = int(x.shape[0])
        if self.queued and self.queued + n > self.options.queue_limit:
            raise Overloaded(
                f"model '{self.name}' has {self.queued} samples queued (limit "
                f"{self.options.queue_limit}, AESERVE_BATCH_QUEUE_LIMIT); retry shortly"
            )
        inline = (
            self.inline
            and n <= self.options.max_size
            and not self._busy
            and (self._leading or not self._pending)
        )
        item = _Item(op, x, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self.queued += n
        if inline and not self._leading:
            return await self._lead(item)
        if not inline:
            self._wakeup.set()
        # A cancelled caller cancels the future; the worker (or the leader) skips it.
        return await item.future

    async def _lead(self, item: _Item) -> list[F32]:
        """Inline models: gather like the worker, then run the batches here, on the event loop.

        The same batches, the same function, so the same bits as the worker's; what it saves
        is the hand-off (waking the worker task, the thread, the loop's wake-up from the thread),
        which costs more than a tiny model's ONNX call.
        """
        assert self._wakeup is not None
        self._leading = True
        try:
            await self._gather_more()
        except BaseException:  # cancelled while gathering: the worker takes the queue over
            self._leading = False
            item.future.cancel()  # this request's rows are dropped like any cancelled client's
            self._wakeup.set()
            raise
        self._leading = False
        while True:  # no await below: nothing joins meanwhile
            batch = self._take()
            if not batch:
                break
            self.inlined += 1
            try:
                outputs = self._run(batch)
            except Exception as exc:  # as the worker does: every request of the batch gets it
                outputs = [exc] * len(batch)
            self._finish(batch, outputs)
        if not item.future.done():  # the worker took it (a large request woke it meanwhile)
            return await item.future
        return item.future.result()

    # -- the worker ------------------------------------------------------------------------

    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._gather_more()
            batch = self._take()
            if not batch:
                continue
            self._busy = True
            try:
                outputs = await loop.run_in_executor(self._thread, self._run, batch)
            except BaseException as exc:
                for item in batch:
                    if not item.future.done():
                        if isinstance(exc, asyncio.CancelledError):
                            item.future.set_exception(NotReady("the service is shutting down"))
                        else:
                            item.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            finally:
                self._busy = False
            self._finish(batch, outputs)

    @staticmethod
    def _finish(batch: list[_Item], outputs: list[list[F32] | BaseException]) -> None:
        """Each request its rows (or its error); cancelled requests are skipped."""
        for item, out in zip(batch, outputs, strict=True):
            if item.future.done():  # cancelled meanwhile
                continue
            if isinstance(out, BaseException):
                item.future.set_exception(out)
            else:
                item.future.set_result(out)

    async def _gather_more(self) -> None:
        """Yield to the event loop while requests are on their way (bounded by max_wait):
        while a turn added requests or the front has requests not yet at a batcher."""
        deadline = time.perf_counter() + self.options.max_wait_s
        seen = len(self._pending)
        arrivals = self.arrivals
        while self.options.max_wait_s > 0 and self._samples_ready() < self.options.max_size:
            await asyncio.sleep(0)
            if time.perf_counter() >= deadline:
                break
            if len(self._pending) == seen and arrivals.count <= 0:
                break
            seen = len(self._pending)

    def _samples_ready(self) -> int:
        return sum(item.n for item in self._pending if item.op == self._pending[0].op)

    def _take(self) -> list[_Item]:
        """The oldest live request and the next live ones of the same op, up to max_size."""
        while self._pending and self._pending[0].future.done():  # cancelled clients
            self.queued -= self._pending.popleft().n
        if not self._pending:
            return []
        op = self._pending[0].op
        batch: list[_Item] = []
        rest: deque[_Item] = deque()
        total = 0
        for item in self._pending:
            if item.future.done():
                self.queued -= item.n
            elif item.op == op and (not batch or total + item.n <= self.options.max_size):
                batch.append(item)
                total += item.n
                self.queued -= item.n
            else:
                rest.append(item)
        self._pending = rest
        return batch

    def _run(self, batch: list[_Item]) -> list[list[F32] | BaseException]:
        """In the inference thread: one ONNX call for the batch, split back per request."""
        self.batches += 1
        op = batch[0].op
        if len(batch) == 1:
            return [self._run_one(batch[0])]
        x = np.concatenate([item.x for item in batch])
        try:
            outputs = self.infer(op, x)
        except Exception:
            # Find the culprit: each request alone, so only the failing one gets the error.
            logger.warning(
                "a batch of %d requests failed on %s; retrying one by one", len(batch), self.name
            )
            return [self._run_one(item) for item in batch]
        bounds = np.cumsum([item.n for item in batch])[:-1]
        split = [np.split(out, bounds) for out in outputs]
        return [[parts[i] for parts in split] for i in range(len(batch))]

    def _run_one(self, item: _Item) -> list[F32] | BaseException:
        try:
            return self.infer(item.op, item.x)
        except Exception as exc:
            return exc


def forward_times(repository: ModelRepository, samples: int) -> dict[str, float]:
    """Each model's forward time on ``samples`` samples, in seconds (blocking: call it in a
    thread). A full batch, not one sample: the bound is on how long a batch holds the loop,
    and a full batch's time is far from the bound for every model of the zoo, while one
    sample of the bench's image model took 64-105 µs from one start to the next, across the
    old 100 µs bound."""
    return {
        name: runtime.forward_seconds(samples, repeats=5)
        for name, runtime in repository.models.items()
    }


def attach(
    repository: ModelRepository,
    options: BatchOptions,
    forward_s: Mapping[str, float] | None = None,
    arrivals: Arrivals | None = None,
) -> None:
    """Give every model of the repository its batching worker (on the running loop).

    A model runs its batches inline when its forward pass on a full batch (``forward_s``, from
    :func:`forward_times`; timed here when missing) takes at most ``options.inline_max_s``.
    """
    inline_models = []
    for runtime in repository.models.values():
        inline = False
        if options.inline_max_s > 0:
            known = forward_s.get(runtime.name) if forward_s is not None else None
            seconds = known if known is not None else runtime.forward_seconds(options.max_size, 5)
            inline = seconds <= options.inline_max_s
        if inline:
            inline_models.append(runtime.name)
        batcher = Batcher(
            runtime.infer, options, name=runtime.name, inline=inline, arrivals=arrivals
        )
        batcher.start()
        runtime.executor = batcher
    logger.info("batches on the event loop for: %s", ", ".join(inline_models) or "no model")


async def detach(repository: ModelRepository) -> None:
    """Stop every model's worker; the runtimes fall back to the thread pool."""
    for runtime in repository.models.values():
        batcher = runtime.executor
        runtime.executor = None
        if isinstance(batcher, Batcher):
            await batcher.stop()
