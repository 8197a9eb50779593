"""Training losses (torch) and the contract's per-sample scores (numpy).

The scores here are the very definition the manifest's ``score.kind`` names and the service
recomputes: keep them in step with ``service``'s runtime.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

ScoreKind = Literal["bce", "mse"]
EPS = 1e-7  # the contract clips decoder outputs to [EPS, 1 - EPS] before BCE


def reconstruction(x_hat: torch.Tensor, x: torch.Tensor, kind: ScoreKind) -> torch.Tensor:
    """Per-sample SUM of the reconstruction error over all input values, shape [N].

    BCE: -sum(x log x_hat + (1 - x) log(1 - x_hat)); MSE: sum((x - x_hat)^2).
    """
    if kind == "bce":
        err = F.binary_cross_entropy(x_hat.clamp(EPS, 1 - EPS), x, reduction="none")
    else:
        err = (x_hat - x) ** 2
    return err.flatten(1).sum(1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, shape [N] (Kingma & Welling 2014, appendix B):
    -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def scores(x: np.ndarray, x_hat: np.ndarray, kind: ScoreKind) -> np.ndarray:
    """The contract's anomaly score: per-sample MEAN error over all input values, float64 [N].

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
