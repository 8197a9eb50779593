"""Score drift against the calibration (service/drift.py) and its gauges."""

from __future__ import annotations

import re

import numpy as np

from service.drift import ScoreDrift
from tests.service.conftest import ClientFactory


def test_scores_like_the_calibration_do_not_drift_and_shifted_ones_do() -> None:
    rng = np.random.default_rng(0)
    drift = ScoreDrift(window=1000)
    assert drift.psi() is None and drift.ks() is None  # too few samples yet
    drift.observe(rng.uniform(0, 100, 5000))  # ranks uniform: the calibration's distribution
    assert drift.filled == 1000 and drift.counts.sum() == 1000
    assert drift.psi() < 0.05 and drift.ks() < 0.05  # type: ignore[operator]
    for _ in range(20):  # the window slides: after 1,000 high scores nothing else is left
        drift.observe(rng.uniform(90, 110, 50))
    assert drift.counts.sum() == 1000 and drift.counts[-1] == 1000
    assert drift.psi() > 2 and abs(drift.ks() - 0.9) < 1e-9  # type: ignore[operator]


def test_the_window_evicts_exactly_the_oldest_samples() -> None:
    drift = ScoreDrift(window=10, min_samples=1)
    drift.observe(np.full(7, 5.0))  # decile 0
    drift.observe(np.full(6, 95.0))  # decile 9: evicts 3 of the first 7
    assert drift.counts[0] == 4 and drift.counts[9] == 6
    drift.observe(np.full(25, 55.0))  # more than the window: only its last 10 stay
    assert drift.counts[5] == 10 and drift.counts.sum() == 10


def test_anomaly_scores_feed_the_drift_gauges(make_client: ClientFactory) -> None:
    with make_client(drift_window=100) as client:
        rows = np.random.default_rng(1).normal(size=(250, 4)) * 50 + 100
        r = client.post("/anomaly-score", json={"model": "table", "inputs": rows.tolist()})
        assert r.status_code == 200, r.text
        text = client.get("/metrics").text
    samples = re.search(r'aeserve_score_drift_window_samples\{model="table"\} (\S+)', text)
    psi = re.search(r'aeserve_score_drift_psi\{model="table"\} (\S+)', text)
    ks = re.search(r'aeserve_score_drift_ks\{model="table"\} (\S+)', text)
    assert samples and float(samples.group(1)) == 100
    assert psi and float(psi.group(1)) >= 0 and ks and 0 <= float(ks.group(1)) <= 1
