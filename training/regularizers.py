"""Penalties added to the training loss, as a registry: kind -> function.

A regulariser gets a :class:`RegularizerContext` and returns a scalar tensor; the trainer adds
``weight * penalty``: ``l1`` (on the code), ``kl_sparsity`` (on the code, with ``rho``) and
``contractive`` (the Frobenius norm of the encoder Jacobian); the manifest's
``training.regularizer`` names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from training.models import Autoencoder, ForwardOut
from training.registry import Registry


@dataclass(frozen=True)
class RegularizerContext:
    """What a penalty may look at: the model, the (possibly noisy) input batch and its outputs."""

    model: Autoencoder
    x_in: torch.Tensor
    out: ForwardOut
    rho: float | None = None


RegularizerFn = Callable[[RegularizerContext], torch.Tensor]
REGULARIZERS: Registry[RegularizerFn] = Registry("regularizer")
register = REGULARIZERS.register
get_regularizer = REGULARIZERS.lookup


def _code(ctx: RegularizerContext) -> torch.Tensor:
    """The code a penalty acts on: z for AEs, the posterior mean for VAEs, [N, d]."""
    return ctx.out.mu if ctx.out.mu is not None else ctx.out.z


@register("l1")
def l1_activity(ctx: RegularizerContext) -> torch.Tensor:
    """L1 activity sparsity on the code: mean over the batch of sum_j |z_j|."""
    return _code(ctx).abs().sum(1).mean()


KL_EPS = 1e-6


@register("kl_sparsity")
def kl_sparsity(ctx: RegularizerContext) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j the mean activation of code unit j over the batch
    (Ng, "Sparse autoencoder", CS294A notes):
    KL = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)).

    The code must lie in [0, 1] (``latent_activation = "sigmoid"``).
    """
    rho = ctx.rho
    if rho is None or not 0.0 < rho < 1.0:
        raise ValueError(f"kl_sparsity needs rho in (0, 1), got {rho}")
    z = _code(ctx)
    if bool(z.min() < 0) or bool(z.max() > 1):
        raise ValueError("kl_sparsity needs a code in [0, 1]: use latent_activation = 'sigmoid'")
    rho_hat = z.mean(0).clamp(KL_EPS, 1 - KL_EPS)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def jacobian_frobenius_sq(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """||d code / d x||_F^2 per sample, [N], differentiable (one backward pass per code unit).

    Samples are independent, so the gradient of sum_n z[n, k] w.r.t. x holds row k of every
    sample's Jacobian.
    """
    x = x.detach().requires_grad_(True)
    z = model.encode(x)
    total = torch.zeros(len(x), dtype=x.dtype)
    for k in range(z.shape[1]):
        (g,) = torch.autograd.grad(z[:, k].sum(), x, create_graph=True)
        total = total + g.pow(2).flatten(1).sum(1)
    return total


@register("contractive")
def contractive(ctx: RegularizerContext) -> torch.Tensor:
    """Contractive penalty (Rifai et al. 2011): mean over the batch of ||J_f(x)||_F^2, J_f the
    Jacobian of the encoder (the code, VAE: the mean) at the input."""
    return jacobian_frobenius_sq(ctx.model, ctx.x_in).mean()
