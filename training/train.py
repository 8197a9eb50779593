"""The one generic training loop, with denoising and regulariser hooks.

Seeded and deterministic: the same recipe and seed give the same weights on the same machine
(one CPU thread, deterministic algorithms, seeded generators for shuffling and for noise).
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from training.datasets import Dataset
from training.losses import kl_standard_normal, reconstruction
from training.models import Autoencoder, build_model, make_config
from training.noise import get_noise
from training.recipe import Recipe
from training.regularizers import RegularizerContext, get_regularizer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: Autoencoder
    history: list[float]  # mean loss per sample, one value per epoch
    duration_s: float

    @property
    def final_loss(self) -> float:
        return self.history[-1] if self.history else float("nan")


def seed_everything(seed: int, threads: int = 1) -> torch.Generator:
    """Seed python, numpy and torch; returns the generator the loop draws batches from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    # Cheap here (CPU, dense layers) and it turns any nondeterministic kernel into an error.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def loss_terms(
    model: Autoencoder, x_in: torch.Tensor, target: torch.Tensor, recipe: Recipe, kind: str
) -> torch.Tensor:
    """Mean loss per sample of a batch: reconstruction (+ beta * KL for VAEs) (+ regulariser).

    AEs: the per-sample SUM of BCE/MSE over input values (so the scale matches a VAE's ELBO);
    VAEs: the negative ELBO, sum_i BCE(x_i, x_hat_i) + beta * KL(q(z|x) || N(0, I)).
    """
    out = model(x_in)
    rec = reconstruction(out.x_hat, target, "bce" if kind == "bce" else "mse")
    loss = rec
    if out.mu is not None and out.logvar is not None:
        beta = float(getattr(model.cfg, "beta", 1.0))
        loss = loss + beta * kl_standard_normal(out.mu, out.logvar)
    total = loss.mean()
    if recipe.regularizer is not None:
        reg = recipe.regularizer
        ctx = RegularizerContext(model=model, x_in=x_in, out=out, rho=reg.rho)
        total = total + reg.weight * get_regularizer(reg.kind)(ctx)
    return total


def train(recipe: Recipe, data: Dataset, *, quiet: bool = False) -> TrainResult:
    """Train the recipe's model on ``data.train``; returns the model in eval mode."""
    opts = recipe.train
    gen = seed_everything(recipe.seed, opts.threads)
    config = make_config(recipe.architecture, recipe.arch_options)
    model = build_model(recipe.architecture, config, data.shape)
    optim = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    milestones = sorted(int(m * recipe.epochs) for m in opts.lr_milestones)
    sched = torch.optim.lr_scheduler.MultiStepLR(optim, milestones, gamma=opts.lr_decay)
    noise = get_noise(recipe.noise.kind) if recipe.noise else None
    noise_rng = np.random.default_rng(recipe.seed)  # noise draws, separate from torch's stream

    clean = torch.from_numpy(data.train.x)
    if opts.repeat > 1:
        clean = clean.repeat(opts.repeat, *([1] * len(data.shape)))
    n = len(clean)
    batch = n if opts.batch_size <= 0 else opts.batch_size
    history: list[float] = []
    show = not quiet and sys.stderr.isatty()
    bar = tqdm(range(recipe.epochs), desc=recipe.name, disable=not show, leave=False)
    started = time.perf_counter()
    model.train()
    for _epoch in bar:
        order = torch.randperm(n, generator=gen) if batch < n else torch.arange(n)
        total = 0.0
        for start in range(0, n, batch):
            target = clean[order[start : start + batch]]
            # Denoising hook: corrupt the input, reconstruct the clean target.
            x_in = target
            if noise is not None and recipe.noise is not None:
                x_in = torch.from_numpy(noise(target.numpy(), recipe.noise.level, noise_rng))
            loss = loss_terms(model, x_in, target, recipe, data.score_kind)
            optim.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)  # = loss.backward(), which is untyped
            if opts.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
            optim.step()
            total += float(loss.detach()) * len(target)
        sched.step()
        history.append(total / n)
        if show and (_epoch % 50 == 0 or _epoch == recipe.epochs - 1):
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    duration = time.perf_counter() - started
    model.eval()
    log.info(
        "%s: %d epochs in %.1fs, final loss %.5f",
        recipe.name,
        recipe.epochs,
        duration,
        history[-1] if history else float("nan"),
    )
    return TrainResult(model=model, history=history, duration_s=duration)
