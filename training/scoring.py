"""The contract's per-sample anomaly scores, in numpy (no torch).

This is the very definition the manifest's ``score.kind`` names and the service recomputes at
request time: keep the two in step. The training losses in :mod:`training.losses` are the
per-sample sums of the same quantities.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ScoreKind = Literal["bce", "mse"]
EPS = 1e-7  # the contract clips decoder outputs to [EPS, 1 - EPS] before BCE


def scores(x: np.ndarray, x_hat: np.ndarray, kind: ScoreKind) -> np.ndarray:
    """Per-sample MEAN error over all input values, float64 [N].

    ``bce``: binary cross-entropy, ``x_hat`` clipped to [1e-7, 1 - 1e-7]; ``mse``: squared error.
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    x_hat = np.asarray(x_hat, np.float64).reshape(len(x_hat), -1)
    if kind == "bce":
        p = np.clip(x_hat, EPS, 1 - EPS)
        err = -(x * np.log(p) + (1 - x) * np.log(1 - p))
    else:
        err = (x - x_hat) ** 2
    result: np.ndarray = err.mean(axis=1)
    return result
