"""The app factory. ``create_app(settings)`` builds an app; its lifespan loads the models.

Loading runs in a worker thread started by the lifespan, so the server answers ``/healthz``
(200) and ``/readyz`` (503) while models load; inference routes answer 503 with Retry-After
until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

import service
from service.dataplane.plane import DataPlane, forward_times
from service.dataplane.scheduler import BatchOptions
from service.http import openapi
from service.http.express import ExpressLane
from service.http.grpc.server import GrpcServer
from service.http.keys import ApiKeys
from service.http.limits import ConnectionLimits
from service.http.middleware import RequestContextMiddleware
from service.http.policy import Policy, RequestHook
from service.http.problems import install_handlers
from service.http.routes import health, inference, models, repository
from service.http.tracing import Tracing
from service.http.v2 import express as v2_express
from service.http.v2 import openapi as v2_openapi
from service.http.v2 import routes as v2_routes
from service.http.webui import install_webui
from service.metrics import Metrics
from service.runtime import memory
from service.runtime.repository import ModelRepository
from service.runtime.sessions import OnnxOptions
from service.settings import Settings, load_settings

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")

DESCRIPTION = """Serves trained autoencoders with onnxruntime.

Choose the model with the `model` field of the JSON body (`?model=` for multipart uploads and
.npy bodies); `GET /models` lists what is loaded. Errors are `application/problem+json`
(RFC 9457).
"""


def create_app(
    settings: Settings | None = None,
    *,
    hooks: Sequence[RequestHook] = (),
    express: bool = False,
    grpc: bool = False,
) -> FastAPI:
    """Build the app. Without ``settings`` they come from ``AESERVE_*`` (ConfigError if bad).

    ``hooks``: request hooks run for every request on every path (``service/http/policy.py``).
    ``express``: serve the common inference POSTs from uvicorn's protocol when the server runs
    :class:`~service.http.express.ExpressProtocol` (``python -m service`` does).
    ``grpc``: the lifespan serves the Open Inference Protocol over gRPC on
    ``AESERVE_GRPC_PORT`` (unless 0) too (``python -m service`` does).
    """
    settings = settings if settings is not None else load_settings()
    if settings.keep_large_blocks:
        memory.keep_large_blocks()
    metrics = Metrics(drift_window=settings.drift_window)
    batching = batch_options(settings) if settings.batching else None
    plane = DataPlane(
        metrics=metrics,
        batching=batching,
        max_samples=settings.max_samples,
        max_pixels=settings.max_decoded_pixels,
    )
    keys = ApiKeys.configured(
        settings.api_keys, settings.api_keys_file, metrics_need_key=settings.metrics_need_key
    )
    if keys is None and settings.host not in _LOOPBACK:
        logger.warning(
            "no API keys configured and listening on %s: anyone who reaches the port may use "
            "it (AESERVE_API_KEYS, AESERVE_API_KEYS_FILE)",
            settings.host,
        )
    plane.control = keys is not None and keys.admin
    policy = Policy(
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        hooks=[*hooks, *([keys] if keys is not None else [])],
        access_log=settings.access_log,
    )
    tracing = Tracing.otlp() if settings.tracing else None
    lane = ExpressLane(
        plane=plane,
        policy=policy,
        cors=bool(settings.cors_origins),
        # Off while tracing: the lane's requests would have no spans.
        enabled=express and settings.fast_path and batching is not None and tracing is None,
    )
    v2_express.install(lane)  # plain v2 inference through the lane too

    async def load_models() -> None:
        try:
            repository = await run_in_threadpool(
                ModelRepository.load,
                settings.model_dir,
                options=OnnxOptions(
                    settings.onnx_intra_op_threads,
                    settings.onnx_inter_op_threads,
                    spinning=settings.onnx_spinning,
                    arena=settings.onnx_arena,
                ),
                max_batch=settings.max_batch,
                default_model=settings.default_model,
            )
        except Exception as exc:  # a bug or an unreadable directory: report, stay unready
            logger.exception("loading models from %s failed", settings.model_dir)
            plane.load.error = f"{type(exc).__name__}: {exc}"
            return
        metrics.set_models(repository)
        policy.versions = {name: rt.version for name, rt in repository.models.items()}
        inline: frozenset[str] = frozenset()
        if batching is not None and batching.inline_max_s > 0:
            # Timing each model's forward pass blocks: in a thread, not on the loop.
            timings = await run_in_threadpool(forward_times, repository, batching.max_size)
            inline = frozenset(n for n, s in timings.items() if s <= batching.inline_max_s)
        plane.start(repository, inline)
        lane.open(app)
        # Everything loaded so far lives as long as the process: out of the garbage
        # collector's sight, its full collections no longer walk the app, the models' and the
        # libraries' objects on the request path (a few ms each, under load).
        gc.freeze()
        logger.info(
            "ready: %d model(s) loaded, %d refused, default %s",
            len(repository.models),
            len(repository.failed),
            repository.default_name,
        )

    grpc_server = None
    if grpc and settings.grpc_port:
        grpc_server = GrpcServer(
            plane,
            policy,
            host=settings.grpc_host or settings.host,
            port=settings.grpc_port,
            max_message=settings.max_body_bytes,
            reuse_port=settings.workers > 1,
        )

    async def start() -> None:
        await load_models()
        if settings.model_watch_s > 0 and plane.load.repository is not None:
            await plane.watch(settings.model_watch_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if grpc_server is not None:
            await grpc_server.start()  # answers ServerLive (and 'not ready') while models load
        task = asyncio.create_task(start())
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop()
            if plane.load.repository is not None:
                task.cancel()  # the watcher (loading is done)
            with contextlib.suppress(asyncio.CancelledError):
                await task  # a loading thread cannot be cancelled: let it finish first
            await plane.stop()
            if tracing is not None:
                tracing.shutdown()

    app = FastAPI(
        title="aeserve",
        version=service.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are served by service/http/webui.py from vendored files (no CDN);
        # /openapi.json by service/http/openapi.py (written once, gzipped, with an ETag).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.plane = plane
    app.state.load = plane.load
    app.state.metrics = metrics
    app.state.policy = policy
    app.state.express = lane
    app.state.limits = ConnectionLimits.from_settings(settings)
    app.state.tracing = tracing
    app.state.grpc = grpc_server
    install_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        policy=policy,
        arrivals=plane.arrivals,
        inference_paths=[inference.path_of(op) for op in plane.operations.values()],
        handlers=app.exception_handlers,
        tracing=tracing,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["x-request-id"],
        )
    # Inference routes first: routes are matched in order.
    app.router.routes.extend(inference.routes())
    app.router.routes.extend(v2_routes.routes())
    for module in (health, models, repository):
        app.include_router(module.router)
    install_webui(app)
    openapi.document(app)
    v2_openapi.document(app)
    openapi.serve(app)
    logging.getLogger("service").setLevel(_level(settings.log_level))
    return app


def batch_options(settings: Settings) -> BatchOptions:
    return BatchOptions(
        max_size=settings.batch_max_size,
        max_wait_s=settings.batch_max_wait_us / 1e6,
        queue_limit=settings.batch_queue_limit,
        max_queue_wait_s=settings.max_queue_wait_ms / 1000,
        inline_max_s=settings.batch_inline_max_us / 1e6,
    )


def create_express_app() -> FastAPI:
    """The app ``python -m service`` serves: settings from ``AESERVE_*``, express lane and
    gRPC on."""
    return create_app(express=True, grpc=True)


def _level(name: str) -> int:
    return logging.DEBUG if name == "trace" else logging.getLevelNamesMapping()[name.upper()]
