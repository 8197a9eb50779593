"""Typed results, one per operation: numpy arrays plus the model and version that answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Answer:
    model: str
    version: str


@dataclass(frozen=True)
class Encoded(_Answer):
    latents: F32  # [N, latent]; VAE: the posterior mean
    logvar: F32 | None = None  # VAEs, when asked


@dataclass(frozen=True)
class Decoded(_Answer):
    outputs: F32  # [N, *shape]


@dataclass(frozen=True)
class Reconstruction(_Answer):
    outputs: F32  # [N, *shape]
    scores: F64  # [N]


@dataclass(frozen=True)
class Denoised(_Answer):
    outputs: F32


@dataclass(frozen=True)
class Samples(_Answer):
    seed: int
    latents: F32
    outputs: F32


@dataclass(frozen=True)
class AnomalyScores(_Answer):
    scores: F64
    threshold: float
    is_anomaly: npt.NDArray[np.bool_]
    percentiles: F64
    # Tabular models: per row its id, score and top contributing features (as the API sends).
    results: list[dict[str, Any]] | None = field(default=None)
