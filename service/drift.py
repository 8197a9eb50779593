"""Score drift: live anomaly scores of a model against its calibration, over a sliding window.

A model's manifest holds the quantiles of its scores on held-out normal data (the calibration);
every ``/anomaly-score`` answer already ranks each score among them (``percentiles``, 0-100).
Without drift those ranks are uniform, so each decile of the calibration should hold a tenth of
the live scores. Over the last ``window`` scored samples this module keeps how many fall in each
decile and reports:

- PSI (population stability index): ``sum((live - 0.1) * ln(live / 0.1))`` over the deciles,
  live shares floored at 1e-4. Conventionally < 0.1 stable, 0.1-0.25 moving, > 0.25 drifted.
- KS: the largest gap between the live and the calibration cumulative shares at the decile
  edges (the Kolmogorov-Smirnov statistic on a 10-point grid).

Both are None until the window holds ``min_samples``. Scores beyond the calibrated range count in
the first or last decile. Cost per batch: one ``np.bincount``; the statistics are computed when
the metrics are scraped.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

BINS = 10
_EXPECTED = 1.0 / BINS
_FLOOR = 1e-4


class ScoreDrift:
    """The sliding window of one model's score deciles (see the module docstring)."""

    def __init__(self, window: int = 2048, min_samples: int = 200) -> None:
        self.window = window
        self.min_samples = min(min_samples, window)
        self._ring = np.zeros(window, dtype=np.int8)  # decile of each sample in the window
        self._next = 0  # where the next sample goes
        self.filled = 0  # samples in the window
        self.counts = np.zeros(BINS, dtype=np.int64)

    def observe(self, percentiles: npt.NDArray[np.float64]) -> None:
        """Add scored samples by their calibration percentile (0-100)."""
        bins = np.minimum((np.asarray(percentiles) * (BINS / 100.0)).astype(np.int64), BINS - 1)
        bins = np.maximum(bins, 0)[-self.window :]
        n = len(bins)
        if n == 0:
            return
        end = self._next + n
        idx = np.arange(self._next, end) % self.window
        replaced = self.filled + n - self.window
        if replaced > 0:  # the last `replaced` positions hold the oldest samples: evict them
            evicted = self._ring[idx[n - replaced :]]
            self.counts -= np.bincount(evicted, minlength=BINS)
        self._ring[idx] = bins
        self.counts += np.bincount(bins, minlength=BINS)
        self._next = end % self.window
        self.filled = min(self.window, self.filled + n)

    def shares(self) -> npt.NDArray[np.float64] | None:
        if self.filled < self.min_samples:
            return None
        shares: npt.NDArray[np.float64] = self.counts / self.filled
        return shares

    def psi(self) -> float | None:
        live = self.shares()
        if live is None:
            return None
        live = np.maximum(live, _FLOOR)
        return float(np.sum((live - _EXPECTED) * np.log(live / _EXPECTED)))

    def ks(self) -> float | None:
        live = self.shares()
        if live is None:
            return None
        expected = np.arange(1, BINS + 1) * _EXPECTED
        return float(np.max(np.abs(np.cumsum(live) - expected)))


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
