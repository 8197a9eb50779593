"""The scheduler (service/dataplane/scheduler.py): micro-batching never changes answers:
bit-for-bit equal to unbatched, in order, isolated."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.models import build_image
from service.dataplane.operations import ENCODE, RECONSTRUCT, Job
from service.dataplane.plane import DataPlane
from service.dataplane.scheduler import Arrivals, BatchOptions, LoopLag, Scheduler
from service.http.problems import status_of
from service.metrics import Metrics
from service.runtime.errors import NotReady, Overloaded
from service.runtime.repository import ModelRepository
from service.runtime.sessions import F32

from .conftest import ClientFactory, glyphs


class FakeModel:
    """infer(op, x) = x * 2 per row; rows with -1 make the whole call fail; can be held."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: list[int] = []  # the thread of each call
        self.gate = threading.Event()
        self.gate.set()

    def infer(self, op: str, x: F32) -> list[F32]:
        self.gate.wait(5)
        self.calls.append(int(x.shape[0]))
        self.threads.append(threading.get_ident())
        if (x == -1).any():
            raise ValueError("poisoned row")
        return [x * 2, x.sum(axis=1)]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# The operation of the fake jobs (the scheduler batches by identity; the loop may run it).
FORWARD = types.SimpleNamespace(loop_safe=True)


def work_of(model: FakeModel) -> object:
    """A scheduler's batch work over the fake model: one call, each job its rows."""

    def work(jobs: list[Job]) -> list[dict[str, object]]:
        x = np.concatenate([job.x for job in jobs])
        doubled, summed = model.infer("forward", x)
        out, a = [], 0
        for job in jobs:
            out.append({"out": [doubled[a : a + job.n], summed[a : a + job.n]]})
            a += job.n
        return out

    return work


async def started(
    model: FakeModel, inline: bool = False, arrivals: Arrivals | None = None, **options: float
) -> Scheduler:
    batcher = Scheduler(
        work_of(model),  # type: ignore[arg-type]
        BatchOptions(**options),  # type: ignore[arg-type]
        name="fake",
        inline=inline,
        arrivals=arrivals,
    )
    batcher.start()
    return batcher


async def submit(batcher: Scheduler, x: F32) -> list[F32]:
    """One job through the scheduler, as DataPlane.run does it."""
    future: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    def reply(result: object) -> None:
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    job = Job(FORWARD, None, None, x, len(x), reply=reply, cancelled=future.done)  # type: ignore[arg-type]
    batcher.submit(job)
    out = (await future)["out"]
    return out  # type: ignore[return-value]


def test_rows_come_back_to_their_request_in_order() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, max_size=16, max_wait_s=0.01)
        sizes = [1, 3, 1, 2, 5, 1, 1, 4]
        xs = [
            np.full((n, 3), i, dtype=np.float32) + np.arange(n)[:, None]
            for i, n in enumerate(sizes)
        ]
        outs = await asyncio.gather(*(submit(batcher, x) for x in xs))
        for x, (doubled, summed) in zip(xs, outs, strict=True):
            assert np.array_equal(doubled, x * 2) and np.array_equal(summed, x.sum(axis=1))
        # Gathered into fewer calls than requests, none larger than max_size.
        assert len(model.calls) < len(sizes) and max(model.calls) <= 16
        assert sum(model.calls) == sum(sizes) and batcher.queued == 0
        await batcher.stop()

    run(main())


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
def test_gathering_waits_for_requests_the_front_has_started(inline: bool) -> None:
    """Requests take several loop turns from their first byte to submit(); a batch waits for
    the ones the front has counted (Arrivals) instead of stopping at the first quiet turn."""
    staggered = [0, 1, 2, 3, 5, 8, 13, 21]  # loop turns each request spends before submit()

    async def client(batcher: Scheduler, arrivals: Arrivals | None, turns: int, i: int) -> F32:
        arrival = arrivals.start() if arrivals is not None else None
        try:
            for _ in range(turns):  # reading, parsing, validating ...
                await asyncio.sleep(0)
            out = await submit(batcher, np.full((1, 3), i, dtype=np.float32))
        finally:
            if arrival is not None:
                arrival.done()
        return out[0]

    def calls(counted: bool) -> list[int]:
        model = FakeModel()

        async def main() -> None:
            arrivals = Arrivals() if counted else None
            batcher = await started(
                model, inline=inline, arrivals=arrivals, max_size=64, max_wait_s=0.5
            )
            outs = await asyncio.gather(
                *(client(batcher, arrivals, t, i) for i, t in enumerate(staggered))
            )
            for i, out in enumerate(outs):
                assert np.array_equal(out, np.full((1, 3), 2 * i, dtype=np.float32))
            assert arrivals is None or arrivals.count == 0
            await batcher.stop()

        run(main())
        return model.calls

    assert calls(counted=True) == [len(staggered)]  # one batch: everybody joined
    assert len(calls(counted=False)) > 1  # without the count the first quiet turn ends it


def test_arrival_done_is_idempotent_and_submit_marks_the_request_arrived() -> None:
    arrivals = Arrivals()

    async def main() -> None:
        arrival = arrivals.start()
        assert arrivals.count == 1
        batcher = await started(FakeModel(), max_size=4, max_wait_s=0.01)
        await submit(batcher, np.zeros((1, 3), dtype=np.float32))
        assert arrivals.count == 0  # submit() marked it
        arrival.done()
        arrival.done()
        assert arrivals.count == 0
        await batcher.stop()

    run(main())


def test_a_request_larger_than_max_size_runs_alone() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, max_size=4, max_wait_s=0.01)
        x = np.ones((10, 2), dtype=np.float32)
        (doubled, _), (small, _) = await asyncio.gather(submit(batcher, x), submit(batcher, x[:1]))
        assert doubled.shape == (10, 2) and small.shape == (1, 2)
        assert sorted(model.calls) == [1, 10]
        await batcher.stop()

    run(main())


def test_a_failing_request_fails_alone() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, max_size=64, max_wait_s=0.01)
        xs = [np.full((1, 2), v, dtype=np.float32) for v in (1, 2, -1, 3)]
        results = await asyncio.gather(*(submit(batcher, x) for x in xs), return_exceptions=True)
        assert isinstance(results[2], ValueError)
        for i in (0, 1, 3):
            out = results[i]
            assert isinstance(out, list) and np.array_equal(out[0], xs[i] * 2)
        await batcher.stop()

    run(main())


def test_cancelled_and_timed_out_clients_do_not_poison_the_queue() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, max_size=64, max_wait_s=0.0)
        x = np.ones((1, 2), dtype=np.float32)
        model.gate.clear()  # the worker blocks inside its first call
        first = asyncio.create_task(submit(batcher, x))
        await asyncio.sleep(0.05)
        cancelled = asyncio.create_task(submit(batcher, x * 5))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(submit(batcher, x * 7), 0.05)
        await asyncio.sleep(0.01)
        cancelled.cancel()
        later = asyncio.create_task(submit(batcher, x * 3))
        await asyncio.sleep(0.01)
        model.gate.set()
        assert np.array_equal((await first)[0], x * 2)
        assert np.array_equal((await later)[0], x * 6)
        assert cancelled.cancelled()
        # The abandoned rows never reached the model; the queue is empty again.
        assert model.calls == [1, 1] and batcher.queued == 0
        assert np.array_equal((await submit(batcher, x))[0], x * 2)
        await batcher.stop()

    run(main())


def test_a_full_queue_answers_503_with_retry_after() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, max_size=2, max_wait_s=0.0, queue_limit=4)
        x = np.ones((2, 2), dtype=np.float32)
        model.gate.clear()
        running = asyncio.create_task(submit(batcher, x))  # taken by the worker
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(submit(batcher, x)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as err:
            await submit(batcher, x)
        assert status_of(err.value) == 503 and err.value.headers["Retry-After"] == "1"
        model.gate.set()
        for task in [running, *queued]:
            assert np.array_equal((await task)[0], x * 2)
        await batcher.stop()

    run(main())


def test_stop_fails_queued_requests_with_503() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, max_size=1, max_wait_s=0.0)
        x = np.ones((1, 2), dtype=np.float32)
        model.gate.clear()
        tasks = [asyncio.create_task(submit(batcher, x)) for _ in range(3)]
        await asyncio.sleep(0.05)
        model.gate.set()
        await batcher.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert any(isinstance(r, NotReady) for r in results)
        with pytest.raises(NotReady):
            await submit(batcher, x)

    run(main())


# -- inline models: the batches run on the event loop, without the thread hop --------------


def test_inline_lone_request_runs_on_the_event_loop_thread() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, inline=True, max_size=16, max_wait_s=0.01)
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        doubled, summed = await submit(batcher, x)
        assert np.array_equal(doubled, x * 2) and np.array_equal(summed, x.sum(axis=1))
        assert model.threads == [threading.get_ident()] and batcher.inlined == 1
        assert batcher.queued == 0
        await batcher.stop()

    run(main())


def test_inline_concurrent_requests_are_batched_in_order_and_fail_alone() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, inline=True, max_size=16, max_wait_s=0.01)
        sizes = [1, 3, 1, 2, 5, 1]
        xs = [np.full((n, 2), i + 1, dtype=np.float32) for i, n in enumerate(sizes)]
        xs[3] = np.full((2, 2), -1, dtype=np.float32)  # poisons its batch: retried alone
        results = await asyncio.gather(*(submit(batcher, x) for x in xs), return_exceptions=True)
        assert isinstance(results[3], ValueError)
        for i, out in enumerate(results):
            if i != 3:
                assert isinstance(out, list) and np.array_equal(out[0], xs[i] * 2)
        # One gathered call (failed), then each request alone; all on this thread.
        assert model.calls[0] == sum(sizes) and sorted(model.calls[1:]) == sorted(sizes)
        assert set(model.threads) == {threading.get_ident()} and batcher.queued == 0
        await batcher.stop()

    run(main())


def test_inline_batches_of_a_deep_queue_leave_turns_to_the_rest_of_the_loop() -> None:
    """Past inline_max_s of batches, the rest wait for the loop's next turn: other requests
    (other models, health checks, bytes to read) run between them, not after all of them."""
    model = FakeModel()
    events: list[str] = []
    infer = model.infer

    def logged(op: str, x: F32) -> list[F32]:
        events.append("batch")
        return infer(op, x)

    model.infer = logged  # type: ignore[method-assign]

    async def main() -> None:
        batcher = await started(model, inline=True, max_size=2, max_wait_s=0.0, inline_max_s=1e-9)
        done = asyncio.Event()

        async def other() -> None:  # the rest of the loop's work
            while not done.is_set():
                events.append("other")
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        xs = [np.full((2, 2), i, dtype=np.float32) for i in range(4)]
        outs = await asyncio.gather(*(submit(batcher, x) for x in xs))
        done.set()
        await task
        assert all(np.array_equal(out[0], x * 2) for out, x in zip(outs, xs, strict=True))
        at = [i for i, event in enumerate(events) if event == "batch"]
        assert len(at) == 4 and batcher.inlined == 4 and batcher.queued == 0
        assert all("other" in events[a:b] for a, b in itertools.pairwise(at)), events
        await batcher.stop()

    run(main())


def test_inline_batch_that_cannot_even_be_formed_runs_each_request_alone() -> None:
    """An error outside the model call (here: rows that do not concatenate) sends each request
    of the batch alone, as any failed batch; none is left waiting."""
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, inline=True, max_size=16, max_wait_s=0.01)
        xs = [np.ones((1, 2), dtype=np.float32), np.ones((1, 3), dtype=np.float32)]
        results = await asyncio.wait_for(
            asyncio.gather(*(submit(batcher, x) for x in xs), return_exceptions=True),
            2,
        )
        for x, r in zip(xs, results, strict=True):
            assert isinstance(r, list) and np.array_equal(r[0], x * 2)
        assert batcher.queued == 0
        x = np.ones((1, 2), dtype=np.float32)
        assert np.array_equal((await submit(batcher, x))[0], x * 2)  # still serving
        await batcher.stop()

    run(main())


def test_inline_request_larger_than_max_size_goes_to_the_thread() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, inline=True, max_size=4, max_wait_s=0.01)
        x = np.ones((10, 2), dtype=np.float32)
        doubled, _ = await submit(batcher, x)
        assert np.array_equal(doubled, x * 2) and batcher.inlined == 0
        assert model.threads[0] != threading.get_ident()
        await batcher.stop()

    run(main())


def test_inline_cancelled_request_is_skipped() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, inline=True, max_size=64, max_wait_s=5.0)
        x = np.ones((1, 2), dtype=np.float32)
        first = asyncio.create_task(submit(batcher, x))
        await asyncio.sleep(0)  # queued; the flush comes on a later turn
        follower = asyncio.create_task(submit(batcher, x * 3))
        first.cancel()
        assert np.array_equal((await asyncio.wait_for(follower, 2))[0], x * 6)
        assert first.cancelled() and batcher.queued == 0
        # The follower ran alone, on the loop; the cancelled rows never reached the model.
        assert model.calls == [1] and model.threads == [threading.get_ident()]
        await batcher.stop()

    run(main())


def test_the_app_runs_a_model_inline_when_its_forward_pass_is_fast_enough(
    make_client: ClientFactory,
) -> None:
    # The app times the models: every forward pass is under a second; a bound of 0 turns it off.
    for bound, expected in ((1_000_000, True), (0, False)):
        with make_client(batch_inline_max_us=bound) as client:
            schedulers = client.app.state.plane.schedulers
            assert {s.inline for s in schedulers.values()} == {expected}
            r = client.post("/reconstruct", json={"model": "table", "inputs": [[1, 2, 3, 4]]})
            assert r.status_code == 200
            table = client.app.state.plane.repository.get("table")
            assert schedulers[table].inlined == int(expected)


# -- real models: batched == unbatched, bit for bit ----------------------------------------


@pytest.fixture(scope="module")
def repo(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRepository]:
    root = tmp_path_factory.mktemp("batching-zoo")
    for model in zoo_dir.iterdir():
        (root / model.name).symlink_to(model)
    build_image(root)  # a dense 784-256-64-32 AE: real GEMM blocking at every batch size
    yield ModelRepository.load(root)


def inputs_for(name: str, n: int, seed: int) -> F32:
    rng = np.random.default_rng(seed)
    if name in ("glyph", "glyph-vae"):
        return glyphs(n, seed)
    if name == "table":
        return rng.normal(0, 10, (n, 4)).astype(np.float32)
    return rng.random((n, 28, 28), dtype=np.float32)


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
@pytest.mark.parametrize("name", ["bench-mnist", "pixels28", "glyph-vae", "table"])
def test_batched_answers_equal_unbatched_bit_for_bit(
    repo: ModelRepository, name: str, inline: bool
) -> None:
    runtime = repo.get(name)
    sizes = [1, 1, 3, 1, 7, 1, 2, 1, 1, 16, 1, 5] * 3
    xs = [inputs_for(name, n, seed) for seed, n in enumerate(sizes)]
    expected = [runtime.reconstruct(x) for x in xs]  # unbatched: one ONNX call each
    expected_z = [runtime.encode(x).latents for x in xs]

    async def main() -> tuple[list[object], list[object], int]:
        # inline: the model runs its batches on the event loop; else always in the thread.
        plane = DataPlane(metrics=Metrics(), batching=BatchOptions(max_size=32, max_wait_s=0.002))
        plane.start(repo, frozenset(repo.models) if inline else frozenset())
        try:

            def job(op: object, x: F32) -> Job:
                options = op.options.model_validate({"inputs": x.tolist()})  # type: ignore[attr-defined]
                return plane.prepare(op, runtime, options)  # type: ignore[arg-type]

            recs = await asyncio.gather(*(plane.run(job(RECONSTRUCT, x)) for x in xs))
            encs = await asyncio.gather(*(plane.run(job(ENCODE, x)) for x in xs))
            scheduler = plane.schedulers[runtime]
            assert scheduler.inline is inline and (scheduler.inlined > 0) is inline
            return list(recs), list(encs), scheduler.batches
        finally:
            await plane.stop()

    recs, encs, batches = asyncio.run(main())
    assert batches < 2 * len(xs)  # requests really were batched together
    for want, got in zip(expected, recs, strict=True):
        assert np.array_equal(want.outputs, got["outputs"])  # type: ignore[index]
        assert np.array_equal(want.scores, got["scores"])  # type: ignore[index]
    for want_z, enc in zip(expected_z, encs, strict=True):
        assert np.array_equal(want_z, enc["latents"])  # type: ignore[index]


def test_http_answers_are_the_same_with_batching_on_and_off(make_client: ClientFactory) -> None:
    bodies = [
        ("/reconstruct", {"model": "pixels28", "inputs": inputs_for("pixels28", 3, 1).tolist()}),
        ("/encode", {"model": "glyph-vae", "inputs": glyphs(2).tolist(), "return_logvar": True}),
        ("/decode", {"model": "pixels28", "latents": [[0.1] * 8, [0.5] * 8]}),
        ("/anomaly-score", {"model": "table", "inputs": [[1.0, 2.0, 3.0, 4.0]]}),
        ("/sample", {"model": "glyph-vae", "n": 3, "seed": 5}),
        ("/denoise", {"model": "glyph-denoise", "inputs": glyphs(2).tolist()}),
        ("/reconstruct", {"model": "pixels28", "inputs": [[0.5] * 10]}),  # 422
    ]
    answers = {}
    for batching in (True, False):
        with make_client(batching=batching) as client:
            answers[batching] = [
                (r.status_code, r.json().get("detail") or r.json())
                for r in (client.post(path, json=body) for path, body in bodies)
            ]
    assert answers[True] == answers[False]
    assert [status for status, _ in answers[True]] == [200] * 6 + [422]


def test_requests_that_would_wait_longer_than_the_bound_are_shed_with_503() -> None:
    """The queue is bounded in time (AESERVE_MAX_QUEUE_WAIT_MS): while the oldest queued job
    has waited too long new requests get 503 at once, and a job that waited too long by the
    time its batch forms gets 503 instead of an answer."""
    model = FakeModel()

    async def main() -> None:
        batcher = await started(model, max_size=2, max_wait_s=0.0, max_queue_wait_s=0.05)
        x = np.ones((2, 2), dtype=np.float32)
        model.gate.clear()
        running = asyncio.create_task(submit(batcher, x))  # taken by the worker, held
        await asyncio.sleep(0.02)
        queued = asyncio.create_task(submit(batcher, x))
        await asyncio.sleep(0.1)  # the queued job is now older than the bound
        with pytest.raises(Overloaded, match="AESERVE_MAX_QUEUE_WAIT_MS"):
            await submit(batcher, x)
        model.gate.set()
        assert np.array_equal((await running)[0], x * 2)
        with pytest.raises(Overloaded, match="waited more than 50 ms"):
            await queued
        assert batcher.queued == 0
        assert np.array_equal((await submit(batcher, x))[0], x * 2)  # serving again
        await batcher.stop()

    run(main())


def test_requests_are_shed_while_the_loop_runs_later_than_the_bound() -> None:
    """Under overload the wait is in the sockets, before any queue: while the event loop runs
    later than AESERVE_MAX_QUEUE_WAIT_MS new requests get 503 at once."""
    model = FakeModel()

    async def main() -> None:
        lag = LoopLag(interval_s=0.005)
        lag.start()
        batcher = Scheduler(
            work_of(model),  # type: ignore[arg-type]
            BatchOptions(max_size=2, max_wait_s=0.0, max_queue_wait_s=0.05),
            name="fake",
            lag=lag,
        )
        batcher.start()
        x = np.ones((1, 2), dtype=np.float32)
        assert np.array_equal((await submit(batcher, x))[0], x * 2)
        time.sleep(0.2)  # one stall (a collection, a busy neighbour): nothing is shed
        for _ in range(3):
            await asyncio.sleep(0)
        assert lag.late_s < 0.05 and np.array_equal((await submit(batcher, x))[0], x * 2)
        for _ in range(2):  # the loop is held twice: two ticks in a row fire late
            time.sleep(0.2)
            for _ in range(3):  # the late tick runs within a loop turn or two
                await asyncio.sleep(0)
        assert lag.late_s > 0.05, lag.late_s
        with pytest.raises(Overloaded, match="AESERVE_MAX_QUEUE_WAIT_MS"):
            await submit(batcher, x)
        for _ in range(100):  # on time again (within a second on a busy machine)
            await asyncio.sleep(0.01)
            if lag.late_s < 0.05:
                break
        assert np.array_equal((await submit(batcher, x))[0], x * 2)
        lag.stop()
        await batcher.stop()

    run(main())
