"""OpenTelemetry tracing, opt-in (``AESERVE_TRACING=true``; ``pip install '.[tracing]'``).

Each request on the ASGI path gets a span (``POST /reconstruct``) carrying its request id, model
and status, with four children: ``parse`` (reading and validating the body, building the job),
``queue wait`` (from the model's queue to its batch), ``inference`` (the batch's work: checks,
ONNX, scores) and ``encode`` (writing the answer). The scheduler only stamps the job
(``queued_at``, ``started_at``, ``finished_at``); the spans are made here, afterwards, with those
times, so the data plane knows nothing of OpenTelemetry.

Spans go to an OTLP exporter over HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables (default ``http://localhost:4318``). The express lane is off while tracing is on
(the log says so): its requests would carry no spans.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import service

logger = logging.getLogger(__name__)

# perf_counter() -> time_ns(): the scheduler stamps jobs with perf_counter.
_OFFSET_NS = time.time_ns() - int(time.perf_counter() * 1e9)


def wall_ns(perf: float) -> int:
    return _OFFSET_NS + int(perf * 1e9)


class Tracing:
    """The app's tracer (see the module docstring); ``provider`` takes more span processors."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("aeserve", service.__version__)

    @classmethod
    def otlp(cls) -> Tracing:
        """A tracer exporting over OTLP/HTTP in batches; ImportError without the extra."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "aeserve"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    @contextmanager
    def request(self, method: str, path: str) -> Iterator[Any]:
        """The request's span; the caller adds its request id, model and status."""
        with self.tracer.start_as_current_span(f"{method} {path}") as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", path)
            yield span

    @contextmanager
    def step(self, name: str) -> Iterator[Any]:
        with self.tracer.start_as_current_span(name) as span:
            yield span

    def job(self, job: Any) -> None:
        """The queue wait and inference spans of a finished job, from its stamps."""
        if not job.started_at:
            return
        for name, start, end in (
            ("queue wait", job.queued_at, job.started_at),
            ("inference", job.started_at, job.finished_at or job.started_at),
        ):
            span = self.tracer.start_span(name, start_time=wall_ns(start))
            span.set_attribute("aeserve.batch_size", job.batch_size)
            span.end(end_time=wall_ns(end))

    def shutdown(self) -> None:
        self.provider.shutdown()
