"""Tabular anomaly datasets: a CSV loader with a declared label column, and the benchmarks.

Every set becomes the same :class:`Dataset`: one stratified split (seeded) into train /
validation / test, labels ``y`` = 1 for anomalies, features standardised with the mean and std
of the *training* rows (stored in the manifest as the scaler, so clients send raw values).

- ``train_on = "normal"`` (default, semi-supervised): the training split holds its normal rows
  only; ``"all"`` (unsupervised): every training row, anomalies included, labels unused.
- Validation keeps both classes: its normal rows calibrate the score, its labels serve the
  ``best_f1`` threshold rule. Test is held out for the evaluation.

Sources (offline, see shared/DESIGN.md section 4): ``shuttle`` and ``phishing`` from the river
wheel (``make data`` puts them in ``data/river/``), ``breast-cancer`` from scikit-learn
(malignant = anomaly), ``creditcard`` from a CSV the user provides (``Time, V1..V28, Amount,
Class``): ``path`` in the recipe, else ``$AESERVE_CREDITCARD_CSV``, else
``data/creditcard/creditcard.csv[.gz]``.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict, Unpack

import numpy as np

from training.datasets.base import Dataset, Split, register

REPO = Path(__file__).resolve().parents[2]
TrainOn = Literal["normal", "all"]
CREDITCARD_ENV = "AESERVE_CREDITCARD_CSV"
CREDITCARD_COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]


class SplitOptions(TypedDict, total=False):
    """Split options every tabular loader takes from its recipe (see :func:`tabular_dataset`)."""

    seed: int
    val_fraction: float
    test_fraction: float
    train_on: TrainOn


class DatasetUnavailable(FileNotFoundError):
    """A user-provided data file is absent (``make models`` skips recipes that need it)."""


def data_root() -> Path:
    """``$AESERVE_DATA_DIR`` (as for scripts/fetch-data.sh), else the repository's ``data/``."""
    root = Path(os.environ.get("AESERVE_DATA_DIR", REPO / "data"))
    return root if root.is_absolute() else REPO / root


@dataclass(frozen=True)
class Table:
    """A parsed CSV: raw features ``x`` float64 [n, f], labels ``y`` int8 [n] (1 = anomaly)."""

    x: np.ndarray
    y: np.ndarray | None
    features: list[str]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # closed by the caller


def read_csv(
    path: Path,
    label: str | None,
    *,
    anomaly_values: Iterable[str] = ("1",),
    drop: Sequence[str] = (),
    features: Sequence[str] | None = None,
) -> Table:
    """Read a CSV (optionally gzipped) with a header row into a :class:`Table`.

    ``label`` names the label column (None: unlabelled); a row is an anomaly when its label,
    stripped of spaces and quotes, is one of ``anomaly_values`` (numeric labels compare as
    numbers, so "1.0" matches "1"). ``drop`` lists columns to ignore (ids, timestamps);
    ``features`` selects the feature columns (default: every other column, in file order).
    Every feature value must be a finite number: the error names the row and the column.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetUnavailable(f"no such file: {path}")
    wanted = {_norm(v) for v in anomaly_values}
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip().strip('"') for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: the file is empty") from None
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: duplicate column names in the header")
        if label is not None and label not in header:
            raise ValueError(f"{path}: no label column {label!r} (columns: {', '.join(header)})")
        for name in drop:
            if name not in header:
                raise ValueError(f"{path}: cannot drop {name!r}: no such column")
        if features is None:
            features = [h for h in header if h != label and h not in drop]
        else:
            missing = [f for f in features if f not in header]
            if missing:
                raise ValueError(f"{path}: no feature column(s) {', '.join(missing)}")
        if not features:
            raise ValueError(f"{path}: no feature columns left")
        cols = [header.index(f) for f in features]
        label_col = header.index(label) if label is not None else -1
        rows: list[list[float]] = []
        labels: list[int] = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue  # blank line
            if len(row) != len(header):
                raise ValueError(
                    f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}"
                )
            values = []
            for c in cols:
                try:
                    v = float(row[c].strip().strip('"'))
                except ValueError:
                    raise ValueError(
                        f"{path}:{lineno}: column {header[c]!r} is not a number: {row[c]!r}"
                    ) from None
                if not np.isfinite(v):
                    raise ValueError(f"{path}:{lineno}: column {header[c]!r} is {row[c]!r}")
                values.append(v)
            rows.append(values)
            if label_col >= 0:
                labels.append(int(_norm(row[label_col]) in wanted))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    y = np.asarray(labels, dtype=np.int8) if label is not None else None
    return Table(x=np.asarray(rows, dtype=np.float64), y=y, features=list(features))


def _norm(value: str) -> str:
    """Label text as compared: stripped; numbers in one canonical form ("1.0" -> "1")."""
    text = str(value).strip().strip('"').strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:g}"


def split_indices(
    y: np.ndarray, val: float, test: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified shuffled split of row indices into (train, val, test), per class."""
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"val and test fractions must be in (0, 1) and sum below 1: {val}, {test}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test = round(len(idx) * test)
        n_val = round(len(idx) * val)
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    train_idx, val_idx, test_idx = (np.sort(np.concatenate(p)) for p in parts)
    return train_idx, val_idx, test_idx


def tabular_dataset(
    name: str,
    table: Table,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    train_on: TrainOn = "normal",
    source: str = "",
) -> Dataset:
    """Split, fit the scaler on the training rows, standardise every split."""
    if table.y is None:
        raise ValueError(f"{name}: tabular anomaly sets need a label column (1 = anomaly)")
    if train_on not in ("normal", "all"):
        raise ValueError(f"{name}: train_on must be 'normal' or 'all', got {train_on!r}")
    y = table.y.astype(np.int64)
    n_anom = int(y.sum())
    if n_anom == 0 or n_anom == len(y):
        raise ValueError(f"{name}: need both normal and anomalous rows ({n_anom} of {len(y)})")
    tr, va, te = split_indices(y, val_fraction, test_fraction, seed)
    if train_on == "normal":
        tr = tr[y[tr] == 0]
    raw_train = table.x[tr]
    mean = raw_train.mean(axis=0)
    std = raw_train.std(axis=0)
    # A constant training column carries no information; std 1 keeps it finite (and in the
    # manifest, whose scaler needs std > 0).
    std = np.where(std > 1e-12, std, 1.0)

    def part(idx: np.ndarray) -> Split:
        x = ((table.x[idx] - mean) / std).astype(np.float32)
        return Split(x=x, y=y[idx].astype(np.int8))

    def describe(idx: np.ndarray, what: str) -> str:
        k = int(y[idx].sum())
        return f"{what} ({len(idx):,} rows, {k:,} anomalies)"

    pct = f"{round(100 * (1 - val_fraction - test_fraction))}/{round(100 * val_fraction)}"
    pct += f"/{round(100 * test_fraction)}"
    mode = (
        "normal rows only (semi-supervised)" if train_on == "normal" else "all rows (unsupervised)"
    )
    return Dataset(
        name=name,
        kind="tabular",
        shape=(table.x.shape[1],),
        train=part(tr),
        val=part(va),
        test=part(te),
        value_range=None,
        features=list(table.features),
        scaler_mean=[float(v) for v in mean],
        scaler_std=[float(v) for v in std],
        splits_note=(
            f"{source}{len(y):,} rows, {n_anom:,} anomalies ({100 * n_anom / len(y):.2f}%). "
            f"One stratified split (seed {seed}, train/validation/test {pct}); the model trains "
            f"on {mode}; the scaler is fitted on those training rows."
        ),
        split_names={
            "train": describe(tr, f"train, {mode}"),
            "val": describe(va, "validation"),
            "test": describe(te, "test"),
        },
    )


def _river(
    name: str, data_dir: Path | None, file: str, label: str, source: str, split: SplitOptions
) -> Dataset:
    """A set from the river wheel (``make data`` unpacks it into ``data/river/``)."""
    path = Path(data_dir or data_root() / "river") / file
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `make data` (it unpacks the river wheel)")
    return tabular_dataset(name, read_csv(path, label), source=source, **split)


@register("shuttle")
def load_shuttle(data_dir: Path | None = None, **split: Unpack[SplitOptions]) -> Dataset:
    """Statlog shuttle (river's anomaly version): 49,097 rows, 9 features, 7% anomalies."""
    source = "Statlog shuttle (river's `shuttle.csv.gz`, column `anomaly`): "
    return _river("shuttle", data_dir, "shuttle.csv.gz", "anomaly", source, split)


@register("phishing")
def load_phishing(data_dir: Path | None = None, **split: Unpack[SplitOptions]) -> Dataset:
    """Phishing websites (river): 1,250 rows, 9 features, label ``is_phishing`` as the anomaly."""
    source = "Phishing websites (river's `phishing.csv.gz`, label `is_phishing`): "
    return _river("phishing", data_dir, "phishing.csv.gz", "is_phishing", source, split)


@register("breast-cancer")
def load_breast_cancer(data_dir: Path | None = None, **split: Unpack[SplitOptions]) -> Dataset:
    """Wisconsin diagnostic breast cancer (scikit-learn): 569 rows, 30 features, malignant = 1."""
    del data_dir  # bundled with scikit-learn
    from sklearn.datasets import load_breast_cancer as sk_load

    bunch = sk_load()
    # sklearn: target 0 = malignant, 1 = benign; malignant is the anomaly here.
    y = (bunch.target == 0).astype(np.int8)
    table = Table(x=np.asarray(bunch.data, np.float64), y=y, features=list(bunch.feature_names))
    return tabular_dataset(
        "breast-cancer",
        table,
        **split,
        source="Wisconsin diagnostic breast cancer (scikit-learn; malignant = anomaly): ",
    )


def creditcard_path(path: str | Path | None = None) -> Path:
    """Where the credit-card CSV is looked for: ``path``, ``$AESERVE_CREDITCARD_CSV``, data/."""
    if path:
        return Path(path)
    if os.environ.get(CREDITCARD_ENV):
        return Path(os.environ[CREDITCARD_ENV])
    base = data_root() / "creditcard"
    for name in ("creditcard.csv", "creditcard.csv.gz"):
        if (base / name).exists():
            return base / name
    return base / "creditcard.csv"


@register("creditcard")
def load_creditcard(
    data_dir: Path | None = None,
    *,
    path: str | None = None,
    drop: Sequence[str] = (),
    **split: Unpack[SplitOptions],
) -> Dataset:
    """A CSV in the public credit-card-fraud layout (``Time, V1..V28, Amount, Class``)."""
    csv_path = creditcard_path(path or (Path(data_dir) / "creditcard.csv" if data_dir else None))
    if not csv_path.exists():
        raise DatasetUnavailable(
            f"no credit-card CSV at {csv_path}: put it there or set ${CREDITCARD_ENV} "
            "(layout: Time, V1..V28, Amount, Class)"
        )
    features = [c for c in CREDITCARD_COLUMNS[:-1] if c not in drop]
    table = read_csv(csv_path, "Class", features=features)
    return tabular_dataset(
        "creditcard",
        table,
        **split,
        source=f"Credit-card transactions ({csv_path.name}, label `Class`): ",
    )


@register("csv")
def load_csv(
    data_dir: Path | None = None,
    *,
    path: str,
    label: str,
    anomaly_values: Sequence[str] = ("1",),
    drop: Sequence[str] = (),
    features: Sequence[str] | None = None,
    dataset_name: str = "csv",
    **split: Unpack[SplitOptions],
) -> Dataset:
    """Any CSV with a header and a label column: ``[dataset] name = "csv"``, ``path``, ``label``.

    A relative ``path`` is read from ``data_dir`` when given, else from the working directory;
    ``dataset_name`` names the set in splits and cards.
    """
    csv_path = Path(data_dir) / path if data_dir and not Path(path).is_absolute() else Path(path)
    table = read_csv(csv_path, label, anomaly_values=anomaly_values, drop=drop, features=features)
    return tabular_dataset(
        dataset_name,
        table,
        **split,
        source=f"{csv_path.name} (label `{label}`): ",
    )
