"""The data plane: what every transport calls to serve an operation on a model.

A transport (REST routes, the express lane, the v2 protocol) reads a request into an
operation's options and inputs, asks :meth:`DataPlane.prepare` for a job (checks that need no
batch), and hands it to :meth:`DataPlane.submit` (answer by callback) or awaits
:meth:`DataPlane.run` (answer as a value). One :class:`~service.dataplane.scheduler.Scheduler`
per model batches the jobs of every transport together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.codecs.images import MAX_REQUEST_PIXELS
from service.dataplane.operations import (
    BY_NAME,
    OPERATIONS,
    Fields,
    Job,
    Operation,
    prepare,
)
from service.dataplane.scheduler import Arrivals, BatchOptions, LoopLag, Scheduler
from service.metrics import Metrics
from service.runtime.errors import NotReady
from service.runtime.model import ModelRuntime
from service.runtime.repository import LoadState, ModelRepository

logger = logging.getLogger(__name__)


@dataclass
class Context:
    """What operations may consult besides their model: limits, metrics, the other models."""

    metrics: Metrics
    max_samples: int = 256
    max_pixels: int = MAX_REQUEST_PIXELS  # decoded image pixels per request
    supporting: Callable[[Operation], list[str]] = field(default=lambda op: [])


class DataPlane:
    """The operations and the models' schedulers (see the module docstring)."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        batching: BatchOptions | None = None,
        max_samples: int = 256,
        load: LoadState | None = None,
        max_pixels: int = MAX_REQUEST_PIXELS,
    ) -> None:
        self.metrics = metrics
        self.batching = batching  # None: each request alone in the thread pool
        self.load = load if load is not None else LoadState()
        self.arrivals = Arrivals()  # requests the HTTP layer started, not yet at a scheduler
        self.lag = LoopLag()  # how late the loop runs: shed beyond the queue-wait bound
        self.context = Context(metrics, max_samples, max_pixels, self.supporting)
        self.operations: Mapping[str, Operation] = BY_NAME
        self.schedulers: dict[str, Scheduler] = {}

    # -- what is served ----------------------------------------------------------------------

    @property
    def repository(self) -> ModelRepository:
        """The loaded models; NotReady (503) while they load."""
        return self.load.require()

    def operations_of(self, runtime: ModelRuntime) -> list[str]:
        """The names of the operations ``runtime`` supports, in registry order."""
        return [op.name for op in OPERATIONS if op.supports(runtime)]

    def supporting(self, op: Operation) -> list[str]:
        """The loaded models that support ``op``."""
        repository = self.load.repository
        if repository is None:
            return []
        return [name for name, rt in repository.models.items() if op.supports(rt)]

    # -- serving -----------------------------------------------------------------------------

    def prepare(
        self,
        op: Operation,
        runtime: ModelRuntime,
        options: Any,
        *,
        uploads: list[tuple[str, bytes]] | None = None,
    ) -> Job:
        """One request as a job (see :func:`service.dataplane.operations.prepare`)."""
        return prepare(op, runtime, options, self.context, uploads=uploads)

    def overloaded(self) -> bool:
        """Whether the loop runs later than the queue-wait bound (new requests are shed)."""
        batching = self.batching
        return batching is not None and self.lag.late_s > batching.max_queue_wait_s

    def submit(self, job: Job) -> None:
        """Queue ``job``; its ``reply`` gets the answer fields or the error, on the loop."""
        scheduler = self.schedulers.get(job.runtime.name)
        if scheduler is None:
            raise NotReady(f"model '{job.runtime.name}' is not being served yet; retry shortly")
        scheduler.submit(job)

    async def run(self, job: Job) -> Fields:
        """Queue ``job`` and wait for its answer fields (raises its error)."""
        future: asyncio.Future[Fields] = asyncio.get_running_loop().create_future()

        def reply(result: Fields | BaseException) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        job.reply = reply
        job.cancelled = future.done  # a cancelled caller cancels the future: skipped
        self.submit(job)
        return await future

    def work(self, runtime: ModelRuntime) -> Callable[[list[Job]], list[Fields]]:
        """The batch work of ``runtime``'s scheduler: each batch is one operation's."""
        context = self.context

        def run_batch(jobs: list[Job]) -> list[Fields]:
            return jobs[0].op.work(runtime, jobs, context)

        return run_batch

    # -- life ----------------------------------------------------------------------------------

    def start(self, repository: ModelRepository, inline: frozenset[str] = frozenset()) -> None:
        """Serve ``repository`` (on the running loop): a scheduler per model; the models in
        ``inline`` run their batches on the event loop."""
        for name, runtime in repository.models.items():
            scheduler = Scheduler(
                self.work(runtime),
                self.batching,
                name=name,
                inline=name in inline,
                arrivals=self.arrivals,
                lag=self.lag if self.batching is not None else None,
            )
            scheduler.start()
            self.schedulers[name] = scheduler
        self.load.repository = repository
        if self.batching is not None:
            self.lag.start()
            logger.info("batches on the event loop for: %s", ", ".join(sorted(inline)) or "none")

    async def stop(self) -> None:
        """Stop every scheduler; queued jobs get 503."""
        schedulers, self.schedulers = self.schedulers, {}
        self.lag.stop()
        for scheduler in schedulers.values():
            await scheduler.stop()


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
