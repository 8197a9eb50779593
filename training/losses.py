"""Training losses (torch). The contract's scores (numpy) are in :mod:`training.scoring`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.scoring import EPS, ScoreKind


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
