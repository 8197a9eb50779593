"""Prometheus metrics, in a per-app CollectorRegistry (tests build many apps in one process)."""

from __future__ import annotations

import collections
from bisect import bisect_left
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

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
        labels = ["endpoint", "model", "status"]
        self.requests = Counter(
            "aeserve_requests",
            "HTTP requests by endpoint (route path), model and status code",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "aeserve_request_duration_seconds",
            "HTTP request latency by endpoint, model and status code",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
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
        # (endpoint, model, status) -> the counter and histogram children: labels() builds a
        # tuple, checks every label and takes a lock on each call. The keys are bounded: route
        # paths (or "unmatched"), loaded model names (or "") and status codes.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
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
        children = self._labelled(endpoint, model, status)
        children[0].inc()
        children[1].observe(seconds)

    def observe_many(self, endpoint: str, model: str, status: int, seconds: list[float]) -> None:
        """:meth:`observe` for several requests at once: one update of the counter, the sum and
        each bucket that got requests (Histogram.observe's own rule: the first bucket whose
        bound is >= the value), not one of each per request."""
        children = self._labelled(endpoint, model, status)
        children[0].inc(len(seconds))
        histogram = children[1]
        bounds = getattr(histogram, "_upper_bounds", None)  # prometheus_client's own fields
        buckets = getattr(histogram, "_buckets", None)
        total = getattr(histogram, "_sum", None)
        if bounds is None or buckets is None or total is None:  # pragma: no cover (other versions)
            for value in seconds:
                histogram.observe(value)
            return
        for index, count in collections.Counter(map(partial(bisect_left, bounds), seconds)).items():
            buckets[index].inc(count)
        total.inc(sum(seconds))

    def _labelled(self, endpoint: str, model: str, status: int) -> tuple[Counter, Histogram]:
        key = (endpoint, model, status)
        children = self._children.get(key)
        if children is None:
            code = str(status)
            children = (
                self.requests.labels(endpoint, model, code),
                self.latency.labels(endpoint, model, code),
            )
            self._children[key] = children
        return children

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
        self.models_loaded.set(len(repository.models))
        self.models_failed.set(len(repository.failed))
        for rt in repository.models.values():
            self.model_info.labels(rt.name, rt.version, rt.manifest.family).set(1)

    def render(self) -> bytes:
        for model, drift in self.drift.items():
            self.drift_psi.labels(model).set(nan_if_none(drift.psi()))
            self.drift_ks.labels(model).set(nan_if_none(drift.ks()))
            self.drift_samples.labels(model).set(drift.filled)
        return generate_latest(self.registry)
