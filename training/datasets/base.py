"""What a dataset is to the pipeline, and the registry of loaders."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from service.runtime.manifest import TabularSpec
from training.registry import Registry

Kind = Literal["image", "tabular"]
LabelKind = Literal["class", "sample"]


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
    # Human-readable names for plots, of what ``label_kind`` says: "class", the names of the class
    # labels in ``y`` (``label_names[y[i]]``: MNIST's digits, Fashion-MNIST's garments); "sample",
    # one name per sample, in the order of every split (font: the 32 characters).
    label_names: list[str] | None = None
    label_kind: LabelKind = "class"
    splits_note: str = ""
    # Which split names metrics are measured on, e.g. {"test": "test (10,000 images)"}.
    split_names: dict[str, str] = field(default_factory=dict)
    # Sets read from a user's table (``user-csv``): the raw columns and their encoding, written
    # into the manifest so the service takes raw records (categories, missing cells).
    tabular: TabularSpec | None = None

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            split: Split = getattr(self, name)
            if tuple(split.x.shape[1:]) != self.shape:
                raise ValueError(f"{self.name}.{name}: shape {split.x.shape[1:]} != {self.shape}")
            if split.x.dtype != np.float32:
                raise ValueError(f"{self.name}.{name}: dtype must be float32, got {split.x.dtype}")
            self._check_names(name, split)

    def _check_names(self, name: str, split: Split) -> None:
        """Per-sample names must match the split's samples, class names its labels."""
        if self.label_names is None:
            return
        n_names = len(self.label_names)
        if self.label_kind == "sample" and len(split) != n_names:
            raise ValueError(f"{self.name}.{name}: {len(split)} samples, {n_names} sample names")
        y = split.y
        if (
            self.label_kind == "class"
            and y is not None
            and len(y)
            and not 0 <= y.min() <= y.max() < n_names
        ):
            raise ValueError(f"{self.name}.{name}: labels outside the {n_names} class names")

    @property
    def size(self) -> int:
        """Number of input values per sample."""
        return math.prod(self.shape)

    @property
    def score_kind(self) -> Literal["bce", "mse"]:
        """The contract's score: BCE for images (and 0/1 data), MSE otherwise."""
        return "bce" if self.kind == "image" or self.binary else "mse"

    def sample_names(self, split: Split) -> list[str] | None:
        """One name per sample of ``split`` for plots: the per-sample names themselves, or each
        sample's class name; None when the set has no names (or a class set no labels)."""
        if self.label_names is None:
            return None
        if self.label_kind == "sample":
            return list(self.label_names)
        if split.y is None:
            return None
        return [self.label_names[int(c)] for c in split.y]

    def split_name(self, split: str) -> str:
        return self.split_names.get(split, split)


# A loader gets the data directory (None: the default location) and loader-specific options from
# the recipe's [dataset] table.
Loader = Callable[..., Dataset]
DATASETS: Registry[Loader] = Registry("dataset")
# Decorator: make a loader available to recipes under a name.
register = DATASETS.register
get_dataset = DATASETS.lookup


def load_dataset(name: str, data_dir: Path | None = None, **options: Any) -> Dataset:
    """Load a registered dataset; ``options`` come from the recipe's ``[dataset]`` table."""
    return DATASETS.lookup(name)(data_dir, **options)
