"""Corruptions for denoising training and evaluation, as a registry: kind -> function.

A noise function takes a clean batch ``x`` [N, *shape] (numpy, in the input range), a level and a
numpy generator, and returns a corrupted float32 copy of the same shape. Numpy, not torch, so the
same draws serve training and the onnxruntime-only checks of shipped models. Issue 4 adds
``gaussian`` and ``masking`` with :func:`register`; the manifest's ``training.denoising.kind``
already names them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from training.registry import Registry

NoiseFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
NOISES: Registry[NoiseFn] = Registry("noise")
register = NOISES.register
get_noise = NOISES.lookup


@register("bitflip")
def bitflip(x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each value of 0/1 data independently with probability ``p`` (x -> 1 - x)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must be in [0, 1], got {p}")
    x = np.asarray(x, np.float32)
    flip = rng.random(x.shape) < p
    return np.where(flip, 1.0 - x, x).astype(np.float32)


@register("gaussian")
def gaussian(x: np.ndarray, noise_factor: float, rng: np.random.Generator) -> np.ndarray:
    """Add ``noise_factor`` * N(0, 1) to every value, then clip to the valid range [0, 1]
    (the Keras denoising example's corruption)."""
    if noise_factor < 0:
        raise ValueError(f"noise factor must be >= 0, got {noise_factor}")
    x = np.asarray(x, np.float32)
    noisy = x + noise_factor * rng.standard_normal(x.shape, dtype=np.float32)
    clipped: np.ndarray = np.clip(noisy, 0.0, 1.0).astype(np.float32)
    return clipped


@register("masking")
def masking(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Set each value to 0 independently with probability ``fraction`` (masking noise,
    Vincent et al. 2010)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"masked fraction must be in [0, 1], got {fraction}")
    x = np.asarray(x, np.float32)
    keep = rng.random(x.shape) >= fraction
    return np.where(keep, x, 0.0).astype(np.float32)


def corrupt(x: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    """A seeded corrupted copy of a batch (evaluation and tests)."""
    return get_noise(kind)(x, level, np.random.default_rng(seed))
