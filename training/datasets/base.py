"""What a dataset is to the pipeline, and the registry of loaders."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["image", "tabular"]


@dataclass(frozen=True)
class Split:
    """One data split: ``x`` float32 ``[n, *shape]`` in the model's input space, optional labels.

    ``y`` holds class labels (image sets) or anomaly flags (tabular sets, 1 = anomaly) when known.
    """

    x: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset and what the manifest needs to know about its inputs.

    ``val`` and ``test`` may be the very arrays of ``train`` when a set is too small to split (the
    32 font glyphs); ``splits_note`` then says so, and the manifest records it with each metric.
    """

    name: str
    kind: Kind
    shape: tuple[int, ...]  # per sample, no batch axis; images are grayscale [H, W]
    train: Split
    val: Split
    test: Split
    binary: bool = False
    value_range: tuple[float, float] | None = (0.0, 1.0)
    features: list[str] | None = None
    # Tabular sets (issue 5): the standardisation applied to raw values, stored in the manifest.
    scaler_mean: list[float] | None = None
    scaler_std: list[float] | None = None
    # Human-readable names of the samples or classes (font: the characters), for plots.
    label_names: list[str] | None = None
    splits_note: str = ""
    # Which split names metrics are measured on, e.g. {"test": "test (10,000 images)"}.
    split_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            split: Split = getattr(self, name)
            if tuple(split.x.shape[1:]) != self.shape:
                raise ValueError(f"{self.name}.{name}: shape {split.x.shape[1:]} != {self.shape}")
            if split.x.dtype != np.float32:
                raise ValueError(f"{self.name}.{name}: dtype must be float32, got {split.x.dtype}")

    @property
    def size(self) -> int:
        """Number of input values per sample."""
        return math.prod(self.shape)

    @property
    def score_kind(self) -> Literal["bce", "mse"]:
        """The contract's score: BCE for images (and 0/1 data), MSE otherwise."""
        return "bce" if self.kind == "image" or self.binary else "mse"

    def split_name(self, split: str) -> str:
        return self.split_names.get(split, split)


# A loader gets the data directory (None: the default location) and loader-specific options from
# the recipe's [dataset] table.
Loader = Callable[..., Dataset]
DATASETS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make a loader available to recipes under ``name``."""

    def deco(fn: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = fn
        return fn

    return deco


def get_dataset(name: str) -> Loader:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset {name!r} (known: {known})") from None


def load_dataset(name: str, data_dir: Path | None = None, **options: Any) -> Dataset:
    """Load a registered dataset; ``options`` come from the recipe's ``[dataset]`` table."""
    return get_dataset(name)(data_dir, **options)
