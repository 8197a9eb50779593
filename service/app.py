"""The app factory. ``create_app(settings)`` builds an app; its lifespan loads the models.

Loading runs in a worker thread started by the lifespan, so the server answers ``/healthz``
(200) and ``/readyz`` (503) while models load; inference routes answer 503 with Retry-After
until then.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

import service
from service import batching, memory
from service.errors import install_handlers
from service.express import ExpressLane
from service.fastpath import FastFront
from service.metrics import Metrics
from service.middleware import RequestContextMiddleware, RequestIds
from service.repository import LoadState, ModelRepository
from service.routes import latent, models, ops, reconstruction
from service.runtime import OnnxOptions
from service.settings import Settings, load_settings
from service.webui import install_webui

logger = logging.getLogger(__name__)

# Inference endpoints served by the lean front (service/fastpath.py) when fast_path is on.
FAST_PATHS = ("/reconstruct", "/anomaly-score", "/encode", "/decode", "/denoise", "/sample")

DESCRIPTION = """Serves trained autoencoders with onnxruntime.

Choose the model with the `model` field of the JSON body (`?model=` for multipart uploads);
`GET /models` lists what is loaded. Errors are `application/problem+json` (RFC 9457).
"""


class AeserveApp(FastAPI):
    """FastAPI, with the lean front (service/fastpath.py) answering inference POSTs first."""

    front: FastFront | None = None
    express: ExpressLane | None = None  # answered from the protocol (service/express.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None:
            target = front.target(scope)
            if target is not None:
                scope["app"] = self  # what Starlette sets: request.app in the dependencies
                await front.serve(target, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> AeserveApp:
    """Build the app. Without ``settings`` they come from ``AESERVE_*`` (ConfigError if bad)."""
    settings = settings if settings is not None else load_settings()
    if settings.keep_large_blocks:
        memory.keep_large_blocks()
    state = LoadState()
    metrics = Metrics()
    arrivals = batching.Arrivals()  # shared by the front and the batchers

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
            state.error = f"{type(exc).__name__}: {exc}"
            return
        metrics.set_models(repository)
        if settings.batching:
            options = batch_options(settings)
            # Timing each model's forward pass blocks: in a thread, not on the loop.
            timings = (
                await run_in_threadpool(batching.forward_times, repository, options.max_size)
                if options.inline_max_s > 0
                else {}
            )
            batching.attach(repository, options, timings, arrivals)
            if app.express is not None:
                # The models small enough to run on the event loop take the express lane (a
                # batching design: with batching off every request takes the full path).
                app.express.open(
                    frozenset(n for n, s in timings.items() if s <= options.inline_max_s)
                )
        state.repository = repository
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(load_models())
        try:
            yield
        finally:
            await task  # a thread cannot be cancelled; let it finish before shutdown
            if state.repository is not None:
                await batching.detach(state.repository)

    app = AeserveApp(
        title="aeserve",
        version=service.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are served by service/webui.py from vendored files (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.load = state
    app.state.metrics = metrics
    install_handlers(app)
    request_ids = RequestIds()
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        request_ids=request_ids,
        handlers=app.exception_handlers,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["x-request-id"],
        )
    # Hot inference routes first: routes are matched in order.
    for module in (reconstruction, latent, ops, models):
        app.include_router(module.router)
    install_webui(app)
    if settings.fast_path:
        app.front = FastFront(
            routes=app.router.routes,
            paths=FAST_PATHS,
            handlers=app.exception_handlers,
            metrics=metrics,
            max_body_bytes=settings.max_body_bytes,
            request_ids=request_ids,
            cors=bool(settings.cors_origins),
            arrivals=arrivals,
        )
        app.express = ExpressLane(
            load=state,
            metrics=metrics,
            request_ids=request_ids,
            max_body_bytes=settings.max_body_bytes,
            cors=bool(settings.cors_origins),
            max_size=settings.batch_max_size,
        )
    logging.getLogger("service").setLevel(_level(settings.log_level))
    return app


def batch_options(settings: Settings) -> batching.BatchOptions:
    return batching.BatchOptions(
        max_size=settings.batch_max_size,
        max_wait_s=settings.batch_max_wait_us / 1e6,
        queue_limit=settings.batch_queue_limit,
        inline_max_s=settings.batch_inline_max_us / 1e6,
    )


def _level(name: str) -> int:
    return logging.DEBUG if name == "trace" else logging.getLevelNamesMapping()[name.upper()]
