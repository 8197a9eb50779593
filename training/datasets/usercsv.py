"""A user's own table: numeric and categorical columns, missing cells, labelled or not.

``aeserve fit-csv`` reads its CSV through this loader (a recipe can too: ``[dataset] name =
"user-csv"``). Unlike the ``csv`` loader, which takes numbers only, it finds each column's kind:

- a column whose every present cell reads as a number is numeric, any other is categorical
  (``categorical`` forces one, e.g. integer codes); categories are the distinct values of the
  file, sorted, at most ``max_categories`` per column (an id-like column is refused: drop it);
- a missing cell is empty or one of :data:`service.manifest.DEFAULT_MISSING_VALUES`; with
  ``missing = "impute"`` (default) numeric cells take the median of the training rows and, when
  the column has missing cells, a 0/1 ``<name>:missing`` feature; categorical ones an all-zero
  one-hot row; ``"refuse"``: a missing cell is an error.

The columns go into the manifest's ``tabular`` section and the rows are encoded by
:class:`service.columns.ColumnEncoder`, the very code that encodes the service's records. With a
``label`` the set is split and evaluated as every labelled tabular set (``tabular.py``); without
one it is split 60/20/20 at random, trains on every training row and calibrates on the
validation rows (no detection metrics: nothing says which rows are anomalies).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from service.runtime.columns import ColumnEncoder, ColumnError
from service.runtime.manifest import DEFAULT_MISSING_VALUES, TabularColumn, TabularSpec
from training.datasets.base import Dataset, Split, register
from training.datasets.tabular import (
    Table,
    TrainOn,
    _norm,
    _open_text,
    split_indices,
    tabular_dataset,
)

MissingPolicy = Literal["impute", "refuse"]
_MISSING = frozenset(v.lower() for v in DEFAULT_MISSING_VALUES)
# Feature columns may not be called "id": records use that key for the row id.
RESERVED = "id"


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in _MISSING


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read(
    path: Path, label: str | None, drop: Sequence[str]
) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (cells as text) and their line numbers; blank lines skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip().strip('"') for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: the file is empty") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise ValueError(f"{path}: duplicate column names in the header: {dupes}")
        if label is not None and label not in header:
            raise ValueError(f"{path}: no label column {label!r} (columns: {', '.join(header)})")
        for name in drop:
            if name not in header:
                raise ValueError(
                    f"{path}: no column {name!r} to drop (columns: {', '.join(header)})"
                )
        rows: list[list[str]] = []
        lines: list[int] = []
        try:
            for lineno, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}"
                    )
                rows.append(row)
                lines.append(lineno)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return header, rows, lines


def infer_columns(
    path: Path,
    header: list[str],
    rows: list[list[str]],
    features: list[str],
    train_rows: np.ndarray,
    *,
    categorical: Sequence[str],
    missing: MissingPolicy,
    max_categories: int,
) -> TabularSpec:
    """Each feature column's kind, categories, fill value and missing-cell policy."""
    columns = []
    for name in features:
        j = header.index(name)
        cells = [row[j] for row in rows]
        present = [c.strip() for c in cells if not _is_missing(c)]
        if not present:
            raise ValueError(f"{path}: column {name!r} has no values; drop it (--drop {name})")
        has_missing = len(present) < len(cells)
        if name not in categorical and all(_is_number(c) for c in present):
            values = [float(rows[i][j]) for i in train_rows if not _is_missing(rows[i][j])]
            if not values:  # no value among the training rows: the file's median
                values = [float(c) for c in present]
            fill = float(np.median(values))
            columns.append(
                TabularColumn(
                    name=name,
                    kind="numeric",
                    missing=missing,
                    fill=fill if math.isfinite(fill) else 0.0,
                    indicator=has_missing and missing == "impute",
                )
            )
            continue
        categories = sorted(set(present))
        if len(categories) > max_categories:
            raise ValueError(
                f"{path}: column {name!r} has {len(categories)} distinct values (at most "
                f"{max_categories} categories); if it is an id or free text, drop it (--drop "
                f"{name}), or raise --max-categories"
            )
        columns.append(
            TabularColumn(name=name, kind="categorical", categories=categories, missing=missing)
        )
    return TabularSpec(columns=columns)


@register("user-csv")
def load_user_csv(
    data_dir: Path | None = None,
    *,
    path: str,
    label: str | None = None,
    anomaly_values: Sequence[str] = ("1",),
    drop: Sequence[str] = (),
    categorical: Sequence[str] = (),
    missing: MissingPolicy = "impute",
    max_categories: int = 50,
    dataset_name: str = "csv",
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    train_on: TrainOn = "normal",
) -> Dataset:
    """A CSV with a header; ``label`` (optional) names the column whose ``anomaly_values`` mark
    anomalies; ``drop`` lists columns that are not features (ids, timestamps)."""
    csv_path = Path(data_dir) / path if data_dir and not Path(path).is_absolute() else Path(path)
    if missing not in ("impute", "refuse"):
        raise ValueError(f"missing must be 'impute' or 'refuse', got {missing!r}")
    header, rows, lines = _read(csv_path, label, drop)
    features = [h for h in header if h != label and h not in drop]
    for name in categorical:
        if name not in features:
            raise ValueError(f"{csv_path}: no feature column {name!r} to treat as categorical")
    if not features:
        raise ValueError(f"{csv_path}: no feature columns left")
    if RESERVED in features:
        raise ValueError(
            f"{csv_path}: a feature column is called {RESERVED!r}, the key records use for row "
            f"ids; name it as the id column (--id-column {RESERVED}) or drop it"
        )

    y: np.ndarray | None = None
    if label is not None:
        j = header.index(label)
        wanted = {_norm(v) for v in anomaly_values}
        flags = []
        for row, lineno in zip(rows, lines, strict=True):
            if _is_missing(row[j]):
                raise ValueError(f"{csv_path}:{lineno}: the label {label!r} is missing")
            flags.append(int(_norm(row[j]) in wanted))
        y = np.asarray(flags, dtype=np.int8)
        n_anom = int(y.sum())
        if n_anom == 0 or n_anom == len(y):
            seen = sorted({_norm(row[j]) for row in rows})[:10]
            raise ValueError(
                f"{csv_path}: the label {label!r} marks {n_anom} of {len(y)} rows as anomalies "
                f"(anomaly values {sorted(wanted)}, values seen {seen}); both kinds are needed"
            )
    strata = y if y is not None else np.zeros(len(rows), dtype=np.int8)
    tr, va, te = split_indices(strata, val_fraction, test_fraction, seed)
    if y is not None and train_on == "normal":
        tr = tr[y[tr] == 0]
    spec = infer_columns(
        csv_path,
        header,
        rows,
        features,
        tr,
        categorical=categorical,
        missing=missing,
        max_categories=max_categories,
    )
    try:
        x = ColumnEncoder(spec).encode_cells(rows, header)
    except ColumnError as exc:  # "records[i]" -> the file's line
        message = re.sub(
            r"records\[(\d+)\]\.", lambda m: f"{csv_path}:{lines[int(m[1])]}: column ", str(exc)
        )
        raise ValueError(message) from None
    n_cat = sum(c.kind == "categorical" for c in spec.columns)
    n_missing = sum(_is_missing(row[header.index(f)]) for row in rows for f in features)
    summary = (
        f"{len(spec.columns) - n_cat} numeric and {n_cat} categorical column(s), "
        f"{len(spec.features())} model features (one-hot categories, missing indicators); "
        f"{n_missing:,} missing cell(s), missing policy `{missing}`. "
    )
    if y is not None:
        data = tabular_dataset(
            dataset_name,
            Table(x=x, y=y, features=spec.features()),
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            train_on=train_on,
            source=f"{csv_path.name} (label `{label}`): ",
        )
        return replace(data, tabular=spec, splits_note=summary + data.splits_note)
    return _unlabelled(dataset_name, csv_path, x, spec, (tr, va, te), summary, seed)


def _unlabelled(
    name: str,
    path: Path,
    x: np.ndarray,
    spec: TabularSpec,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    summary: str,
    seed: int,
) -> Dataset:
    """No labels: train on every training row, calibrate on validation, no detection metrics."""
    tr, va, te = parts
    mean = x[tr].mean(axis=0)
    std = x[tr].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)  # constant columns (as tabular_dataset)

    def part(idx: np.ndarray) -> Split:
        return Split(x=((x[idx] - mean) / std).astype(np.float32))

    return Dataset(
        name=name,
        kind="tabular",
        shape=(x.shape[1],),
        train=part(tr),
        val=part(va),
        test=part(te),
        value_range=None,
        features=spec.features(),
        scaler_mean=[float(v) for v in mean],
        scaler_std=[float(v) for v in std],
        splits_note=(
            f"{path.name}, unlabelled: {len(x):,} rows. {summary}One shuffled split (seed {seed}, "
            f"train/validation/test {len(tr):,}/{len(va):,}/{len(te):,} rows); the model trains "
            "on every training row; the validation rows calibrate the score."
        ),
        split_names={
            "train": f"train, all rows ({len(tr):,} rows, unlabelled)",
            "val": f"validation ({len(va):,} rows, unlabelled)",
            "test": f"test ({len(te):,} rows, unlabelled)",
        },
        tabular=spec,
    )
