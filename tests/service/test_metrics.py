"""service.metrics: the batched observation gives the exposition one observation at a time gives."""

from __future__ import annotations

import re

from service.metrics import BUCKETS, Metrics


def _samples(metrics: Metrics) -> dict[str, float]:
    out = {}
    for line in metrics.render().decode().splitlines():
        if line.startswith("aeserve_request") and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_observe_many_counts_like_one_observe_per_request() -> None:
    # Values on, just above and just below every bucket bound, beyond the last, and repeats.
    values = [b + d for b in BUCKETS for d in (-1e-9, 0.0, 1e-9)] + [0.0, 20.0, 0.003, 0.003]
    one, many = Metrics(), Metrics()
    for value in values:
        one.observe("/reconstruct", "m", 200, value)
    many.observe_many("/reconstruct", "m", 200, values[:7])
    many.observe_many("/reconstruct", "m", 200, values[7:])
    expected, got = _samples(one), _samples(many)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        if name.startswith("aeserve_request_duration_seconds_sum"):
            assert abs(got[name] - value) < 1e-9  # the same sum, added in another order
        else:
            assert got[name] == value, name
    buckets = [v for k, v in got.items() if re.search(r"_bucket\{", k)]
    assert buckets[-1] == len(values)  # le="+Inf": every observation


def test_the_exposition_is_prometheus_clients_own() -> None:
    """RequestStats writes what prometheus_client's Counter and Histogram would write."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    values = [b + d for b in BUCKETS for d in (-1e-9, 0.0, 1e-9)] + [0.0, 20.0, 0.003]
    registry = CollectorRegistry()
    labels = ["endpoint", "model", "status"]
    counter = Counter("aeserve_requests", "x", labels, registry=registry)
    histogram = Histogram(
        "aeserve_request_duration_seconds", "x", labels, buckets=BUCKETS, registry=registry
    )
    ours = Metrics()
    for value in values:
        counter.labels("/encode", "m", "200").inc()
        histogram.labels("/encode", "m", "200").observe(value)
        ours.observe("/encode", "m", 200, value)

    def lines(text: bytes) -> set[str]:
        return {
            line
            for line in text.decode().splitlines()
            if line.startswith("aeserve_request") and "_created" not in line
        }

    assert lines(ours.render()) == lines(generate_latest(registry))
