"""OpenTelemetry tracing (service/http/tracing.py): spans for parse, queue wait, inference and
encode under the request's span, carrying its request id; the express lane off while on."""

from __future__ import annotations

import itertools

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.http.tracing import Tracing
from tests.service.conftest import ClientFactory, glyphs


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(Tracing, "otlp", classmethod(lambda cls: cls(provider)))
    return exporter


def test_a_request_has_parse_queue_inference_and_encode_spans_with_its_id(
    make_client: ClientFactory, spans: InMemorySpanExporter
) -> None:
    with make_client(tracing=True, express=True) as client:
        assert not client.app.state.express.on  # type: ignore[attr-defined]
        r = client.post(
            "/reconstruct",
            json={"inputs": glyphs(2).tolist()},
            headers={"x-request-id": "trace-me-1"},
        )
        assert r.status_code == 200
    finished = [s for s in spans.get_finished_spans() if s.context is not None]
    (root,) = [s for s in finished if s.name == "POST /reconstruct"]
    assert root.attributes is not None
    assert root.attributes["aeserve.request_id"] == "trace-me-1"
    assert root.attributes["aeserve.model"] == "glyph"
    assert root.attributes["http.response.status_code"] == 200
    children = {
        s.name: s for s in finished if s.parent and s.parent.span_id == root.context.span_id
    }
    assert set(children) == {"parse", "queue wait", "inference", "encode"}
    order = [children[n] for n in ("parse", "queue wait", "inference", "encode")]
    for before, after in itertools.pairwise(order):
        assert before.start_time is not None and after.start_time is not None
        assert before.start_time <= after.start_time, (before.name, after.name)
    assert root.start_time <= order[0].start_time and order[-1].end_time <= root.end_time  # type: ignore[operator]


def test_the_otlp_exporter_is_built_from_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:21999")
    tracing = Tracing.otlp()
    tracing.shutdown()  # nothing recorded: nothing sent
