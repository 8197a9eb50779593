"""Prometheus metrics, in a per-app CollectorRegistry (tests build many apps in one process)."""

from __future__ import annotations

import collections
import math
from bisect import bisect_left
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from service.drift import ScoreDrift, nan_if_none

if TYPE_CHECKING:
    from service.runtime.repository import ModelRepository

__all__ = ["CONTENT_TYPE", "ENDPOINT_KEY", "MODEL_KEY", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Routes put the served model's name into the ASGI scope under this key for the labels.
MODEL_KEY = "aeserve.model"
# ... and the endpoint label (the route path) where the router does not name the route.
ENDPOINT_KEY = "aeserve.endpoint"
# Request latency buckets in seconds: most requests take a few milliseconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request counters and latency by endpoint, model and status; model load gauges."""

    def __init__(self, drift_window: int = 2048) -> None:
        self.registry = CollectorRegistry()
        # Requests and their latency by endpoint, model and status: one collector of ours
        # (prometheus_client's public Collector API), fed once per request or per batch.
        self.requests = RequestStats()
        self.registry.register(self.requests)
        # Samples scored by /anomaly-score and how many were flagged: the flag rate per model
        # (docker/prometheus/rules.yml) shows drift in what clients send.
        self.anomaly_samples = Counter(
            "aeserve_anomaly_samples",
            "Samples scored by /anomaly-score, by model",
            ["model"],
            registry=self.registry,
        )
        self.anomaly_flagged = Counter(
            "aeserve_anomaly_flagged",
            "Samples /anomaly-score flagged as anomalies (score above the threshold), by model",
            ["model"],
            registry=self.registry,
        )
        # Answers written by the express lane (service/http/express.py), by endpoint: the share of
        # aeserve_requests that skipped the ASGI path.
        self.express = Counter(
            "aeserve_express_requests",
            "Inference requests answered by the express lane (HTTP straight to the model)",
            ["endpoint"],
            registry=self.registry,
        )
        self._express_children: dict[str, Counter] = {}
        self.models_loaded = Gauge(
            "aeserve_models_loaded", "Models loaded and serving", registry=self.registry
        )
        self.models_failed = Gauge(
            "aeserve_models_failed", "Model directories refused at load", registry=self.registry
        )
        self.model_info = Gauge(
            "aeserve_model_info",
            "1 for every loaded model, labelled with its version and family",
            ["model", "version", "family"],
            registry=self.registry,
        )
        self._anomaly_children: dict[str, tuple[Counter, Counter]] = {}  # by model name
        # Drift of the live anomaly scores from the calibration (service/drift.py), per model,
        # computed when scraped.
        self.drift_window = drift_window
        self.drift: dict[str, ScoreDrift] = {}
        self.drift_psi = Gauge(
            "aeserve_score_drift_psi",
            "PSI of the last scored samples' calibration deciles against the calibration "
            "(NaN until the window holds 200 samples), by model",
            ["model"],
            registry=self.registry,
        )
        self.drift_ks = Gauge(
            "aeserve_score_drift_ks",
            "Kolmogorov-Smirnov statistic of the last scored samples against the calibration, "
            "on its deciles (NaN until the window holds 200 samples), by model",
            ["model"],
            registry=self.registry,
        )
        self.drift_samples = Gauge(
            "aeserve_score_drift_window_samples",
            "Scored samples in the drift window, by model",
            ["model"],
            registry=self.registry,
        )

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.observe(endpoint, model, status, seconds)

    def observe_many(self, endpoint: str, model: str, status: int, seconds: list[float]) -> None:
        """:meth:`observe` for several requests of one endpoint, model and status at once."""
        self.requests.observe_many(endpoint, model, status, seconds)

    def observe_express(self, endpoint: str, n: int = 1) -> None:
        child = self._express_children.get(endpoint)
        if child is None:
            child = self._express_children[endpoint] = self.express.labels(endpoint)
        child.inc(n)

    def observe_anomalies(
        self,
        model: str,
        is_anomaly: npt.NDArray[np.bool_],
        percentiles: npt.NDArray[np.float64] | None = None,
    ) -> None:
        """Count one /anomaly-score answer: ``is_anomaly`` [N], score above the threshold;
        ``percentiles`` [N], the scores' ranks in the calibration, feed the drift window."""
        if percentiles is not None:
            drift = self.drift.get(model)
            if drift is None:
                drift = self.drift[model] = ScoreDrift(self.drift_window)
            drift.observe(percentiles)
        children = self._anomaly_children.get(model)
        if children is None:
            children = (self.anomaly_samples.labels(model), self.anomaly_flagged.labels(model))
            self._anomaly_children[model] = children
        children[0].inc(int(is_anomaly.size))
        flagged = int(np.count_nonzero(is_anomaly))
        if flagged:
            children[1].inc(flagged)

    def set_models(self, repository: ModelRepository) -> None:
        """The model gauges, after loading or any reload or unload: one info series per
        loaded version."""
        self.models_loaded.set(len(repository.models))
        self.models_failed.set(len(repository.failed))
        self.model_info.clear()
        for rt in repository.runtimes():
            self.model_info.labels(rt.name, rt.version, rt.manifest.family).set(1)

    def render(self) -> bytes:
        for model, drift in self.drift.items():
            self.drift_psi.labels(model).set(nan_if_none(drift.psi()))
            self.drift_ks.labels(model).set(nan_if_none(drift.ks()))
            self.drift_samples.labels(model).set(drift.filled)
        return generate_latest(self.registry)


class RequestStats(Collector):
    """``aeserve_requests_total`` and the ``aeserve_request_duration_seconds`` histogram by
    endpoint, model and status, kept as plain counts and exposed through prometheus_client's
    public Collector API.

    One request costs a bisect and three additions; a batch of the express lane one update
    per bucket it touched. The label sets are bounded: route paths (or "unmatched"), loaded
    model names (or "") and status codes. Updated on the event loop only.
    """

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = [*buckets, math.inf]
        # (endpoint, model, status) -> [count per bucket (not cumulative)..., sum of seconds]
        self._series: dict[tuple[str, str, int], list[float]] = {}

    def _row(self, key: tuple[str, str, int]) -> list[float]:
        row = self._series.get(key)
        if row is None:
            row = self._series[key] = [0.0] * (len(self.bounds) + 1)
        return row

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        row = self._row((endpoint, model, status))
        # Histogram.observe's rule: the first bucket whose bound is >= the value.
        row[bisect_left(self.bounds, seconds)] += 1
        row[-1] += seconds

    def observe_many(self, endpoint: str, model: str, status: int, seconds: list[float]) -> None:
        row = self._row((endpoint, model, status))
        for index, count in collections.Counter(
            map(partial(bisect_left, self.bounds), seconds)
        ).items():
            row[index] += count
        row[-1] += sum(seconds)

    def collect(self) -> Iterator[Metric]:
        labels = ["endpoint", "model", "status"]
        total = CounterMetricFamily(
            "aeserve_requests",
            "HTTP requests by endpoint (route path), model and status code",
            labels=labels,
        )
        latency = HistogramMetricFamily(
            "aeserve_request_duration_seconds",
            "HTTP request latency by endpoint, model and status code",
            labels=labels,
        )
        for (endpoint, model, status), row in list(self._series.items()):
            values = [endpoint, model, str(status)]
            counts = row[:-1]
            total.add_metric(values, sum(counts))
            cumulative, buckets = 0.0, []
            for bound, count in zip(self.bounds, counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
            latency.add_metric(values, buckets, row[-1])
        yield total
        yield latency
