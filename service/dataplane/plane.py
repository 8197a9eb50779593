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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
from service.runtime.manifest import MANIFEST_FILE
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
        # One scheduler per loaded version (a ModelRuntime), keyed by the runtime itself.
        self.schedulers: dict[ModelRuntime, Scheduler] = {}
        self.inline_max_s = batching.inline_max_s if batching is not None else 0.0
        self._retiring: set[asyncio.Task[None]] = set()
        self.control = False  # loading and unloading models is allowed (an admin key exists)

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
        scheduler = self.schedulers.get(job.runtime)
        if scheduler is None:
            raise NotReady(
                f"model '{job.runtime.name}' version '{job.runtime.version}' is no longer "
                "served; retry"
            )
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
        """Serve ``repository`` (on the running loop): a scheduler per loaded version; the
        models named in ``inline`` run their batches on the event loop."""
        for runtime in repository.runtimes():
            self._schedule(runtime, runtime.name in inline)
        self.load.repository = repository
        if self.batching is not None:
            self.lag.start()
            logger.info("batches on the event loop for: %s", ", ".join(sorted(inline)) or "none")

    def _schedule(self, runtime: ModelRuntime, inline: bool) -> None:
        scheduler = Scheduler(
            self.work(runtime),
            self.batching,
            name=runtime.name,
            inline=inline,
            arrivals=self.arrivals,
            lag=self.lag if self.batching is not None else None,
        )
        scheduler.start()
        self.schedulers[runtime] = scheduler

    async def reload(self, name: str) -> list[str]:
        """(Re)load model ``name`` from its folder while everything serves: its versions are
        loaded and checked in a thread, given their schedulers, then swapped in at once;
        the versions they replace finish the requests they hold, then stop. A folder that
        does not load raises ModelLoadError and changes nothing. Returns the new versions."""
        repository = self.repository
        versions = await asyncio.to_thread(repository.read, name)
        inline: dict[str, bool] = {}
        if self.batching is not None and self.inline_max_s > 0:
            size = self.batching.max_size
            inline = await asyncio.to_thread(
                lambda: {
                    v: rt.forward_seconds(size, repeats=5) <= self.inline_max_s
                    for v, rt in versions.items()
                }
            )
        for version, runtime in versions.items():
            self._schedule(runtime, inline.get(version, False))
        replaced = repository.install(name, versions)
        self.metrics.set_models(repository)
        self._retire(replaced.values())
        return sorted(versions)

    async def unload(self, name: str) -> list[str]:
        """Stop serving model ``name``; requests it holds finish first. Returns its versions."""
        repository = self.repository
        removed = repository.unload(name)
        self.metrics.set_models(repository)
        self._retire(removed.values())
        return sorted(removed)

    def _retire(self, runtimes: Iterable[ModelRuntime]) -> None:
        for runtime in runtimes:
            scheduler = self.schedulers.pop(runtime, None)
            if scheduler is not None:
                task = asyncio.get_running_loop().create_task(self._drain(scheduler))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _drain(scheduler: Scheduler, grace_s: float = 2.0, most_s: float = 30.0) -> None:
        """Stop a replaced version's scheduler once the requests that hold it are answered:
        after ``grace_s`` (requests still being read and checked reach it meanwhile), when
        its queue is empty (at most ``most_s``)."""
        await asyncio.sleep(grace_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + most_s
        while scheduler.busy and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await scheduler.stop()

    async def watch(self, every_s: float) -> None:
        """Load, reload or unload the models whose folders change, polling every ``every_s``
        seconds (a task of the app's lifespan; runs until cancelled)."""
        repository = self.repository
        seen = await asyncio.to_thread(folder_stamps, repository.model_dir)
        while True:
            await asyncio.sleep(every_s)
            now = await asyncio.to_thread(folder_stamps, repository.model_dir)
            for name in sorted(now.keys() | seen.keys()):
                if now.get(name) == seen.get(name):
                    continue
                try:
                    if name not in now:
                        if name in repository.models:
                            await self.unload(name)
                            logger.info("model %s unloaded: its folder is gone", name)
                    else:
                        versions = await self.reload(name)
                        logger.info("model %s reloaded: versions %s", name, ", ".join(versions))
                except Exception as exc:  # a broken folder: logged; the old versions serve
                    logger.error("model %s: not reloaded: %s", name, exc)
            seen = now

    async def stop(self) -> None:
        """Stop every scheduler; queued jobs get 503."""
        for task in list(self._retiring):
            task.cancel()
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


def folder_stamps(model_dir: Path) -> dict[str, tuple[tuple[str, int, int], ...]]:
    """Per model folder, the manifests it holds with their modification time and size: a
    folder whose stamp changes is reloaded by :meth:`DataPlane.watch`."""
    stamps = {}
    for folder in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "_")):
            continue
        files = [folder / MANIFEST_FILE, *sorted(folder.glob(f"*/{MANIFEST_FILE}"))]
        stamp = []
        for file in files:
            try:
                st = file.stat()
            except OSError:
                continue
            stamp.append((str(file.relative_to(folder)), st.st_mtime_ns, st.st_size))
        stamps[folder.name] = tuple(stamp)
    return stamps
