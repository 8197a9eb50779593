"""Filling in missing values with an autoencoder (issue 17): numpy and onnxruntime only.

The algorithm the course teaches: start from a guess for every missing value (the training
mean), reconstruct, copy the reconstruction into the missing entries only (the known values stay
clamped), and repeat until the filled values stop moving. It is a fixed-point iteration of
``x <- known + missing * reconstruct(x)``; each step can only use what the autoencoder learnt
about how the values go together.

Pure functions over arrays in the model's input space (tabular: the standardised space): no
torch, no HTTP. The training side measures it (``training/impute_study.py``) and the data
plane's ``impute`` operation serves it (its ``reconstruct`` is the runtime's ONNX forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# x [N, *shape] float32 -> reconstruction of the same shape.
Reconstruct = Callable[[np.ndarray], np.ndarray]

DEFAULT_ITERATIONS = 100
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Imputation:
    """The completed inputs and how they came about."""

    values: np.ndarray  # [N, *shape] float32: known values as given, missing ones filled
    filled: np.ndarray  # [N, *shape] bool: which entries were filled
    iterations: np.ndarray  # [N] int: reconstructions each sample needed (0: nothing missing)
    converged: np.ndarray  # [N] bool: the largest change of the last step was <= the tolerance


def missing_mask(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Entries to fill: the NaNs of ``x``, plus ``mask`` where given (True = unknown)."""
    missing = np.isnan(np.asarray(x, np.float32))
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != missing.shape:
            raise ValueError(f"mask shape {m.shape} differs from the inputs' {missing.shape}")
        missing |= m
    return missing


def impute(
    reconstruct: Reconstruct,
    x: np.ndarray,
    missing: np.ndarray | None = None,
    *,
    start: np.ndarray | float = 0.0,
    iterations: int = DEFAULT_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Imputation:
    """Fill the ``missing`` entries of ``x`` [N, *shape] (default: its NaNs).

    ``start``: the first guess for missing entries, a scalar or one value per input position
    ``[*shape]`` (the training mean: in a standardised space that is 0). Each step reconstructs
    the samples still moving and overwrites their missing entries; a sample stops when its
    largest change is at most ``tolerance`` or after ``iterations`` steps.
    """
    x = np.asarray(x, np.float32)
    missing = missing_mask(x) if missing is None else np.asarray(missing, bool) | np.isnan(x)
    if missing.shape != x.shape:
        raise ValueError(f"missing shape {missing.shape} differs from the inputs' {x.shape}")
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    guess = np.broadcast_to(np.asarray(start, np.float32), x.shape)
    current = np.where(missing, guess, x).astype(np.float32)
    n = len(x)
    flat_missing = missing.reshape(n, -1)
    steps = np.zeros(n, np.int64)
    converged = np.logical_not(flat_missing.any(1))  # nothing to fill: done at the start
    active = np.flatnonzero(~converged)
    for _ in range(iterations):
        if not len(active):
            break
        rec = np.asarray(reconstruct(current[active]), np.float32)
        m = missing[active]
        new = np.where(m, rec, current[active])
        change = np.abs(new - current[active]).reshape(len(active), -1).max(1)
        current[active] = new
        steps[active] += 1
        done = change <= tolerance
        converged[active[done]] = True
        active = active[~done]
    return Imputation(values=current, filled=missing, iterations=steps, converged=converged)
