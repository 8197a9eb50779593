"""Raw tabular records -> model feature rows: one-hot categories, missing cells (numpy only).

A model fitted on a user's table (``aeserve fit-csv``) records its raw columns in the manifest's
``tabular`` section (:class:`service.manifest.TabularSpec`). Clients send ``records`` of those raw
values; :meth:`ColumnEncoder.encode` turns them into the feature rows ``[N, n_features]`` that the
scaler and the encoder see. Training encodes the CSV's cells with the very same function, so the
writer and the reader of the manifest share one definition.

A cell value is, per column kind:

- numeric: a number, or a string that reads as one ("12.5"); finite;
- categorical: a string (stripped) or an integer; it must be one of the known categories;
- missing: null, an absent key, or a string listed in ``missing_values`` ("", "NA", ...):
  refused or imputed as the column's ``missing`` policy says.

Errors are :class:`ColumnError` (a ValueError) whose message names the record and the column;
the service maps it to a 422. No FastAPI here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.runtime.manifest import TabularColumn, TabularSpec

F64 = npt.NDArray[np.float64]
# How many allowed categories an error message lists before it cuts the list short.
MAX_LISTED = 20


class ColumnError(ValueError):
    """A record the columns cannot encode; the message says which record, column and why."""


@dataclass(frozen=True)
class _Column:
    spec: TabularColumn
    start: int  # its first feature's index
    index: dict[str, int] | None  # categorical: category -> offset from start


def category_key(value: Any) -> str | None:
    """A categorical cell as compared with the known categories; None when it cannot be one.

    Strings compare stripped (so "007" stays "007"); integers, and floats that are whole
    numbers, as their integer text (3 and 3.0 are "3")."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


class ColumnEncoder:
    """The encoding of one :class:`TabularSpec`, compiled once per model."""

    def __init__(self, spec: TabularSpec) -> None:
        self.spec = spec
        self.features = spec.features()
        self.names = [c.name for c in spec.columns]
        self.name_set = frozenset(self.names)
        self._missing = frozenset(v.strip().lower() for v in spec.missing_values)
        self._columns: list[_Column] = []
        start = 0
        for column in spec.columns:
            index = None
            if column.kind == "categorical":
                index = {c: i for i, c in enumerate(column.categories or [])}
            self._columns.append(_Column(column, start, index))
            start += len(column.features())
        # Every column numeric, no indicators: features are the raw columns themselves, so a
        # record of plain numbers is already its feature row (codecs.record_rows' fast path).
        self.plain = self.features == self.names

    def is_missing(self, value: Any) -> bool:
        return value is None or (isinstance(value, str) and value.strip().lower() in self._missing)

    def encode(self, records: list[Any]) -> F64:
        """Records (objects keyed by raw column name) -> feature rows [N, n_features] float64."""
        out = np.zeros((len(records), len(self.features)), dtype=np.float64)
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise ColumnError(f"records[{i}] must be an object keyed by column name")
            unknown = [k for k in record if k not in self.name_set]
            if unknown:
                raise ColumnError(
                    f"records[{i}] has unknown column(s) {unknown[:MAX_LISTED]}; the model's "
                    f"columns are {self.names}"
                )
            row = out[i]
            for col in self._columns:
                self._cell(row, col, record.get(col.spec.name), i)
        return out

    def _cell(self, row: F64, col: _Column, value: Any, i: int) -> None:
        spec = col.spec
        where = f"records[{i}].{spec.name}"
        if self.is_missing(value):
            if spec.missing == "refuse":
                raise ColumnError(f"{where} is missing; this column needs a value")
            if spec.kind == "numeric":
                row[col.start] = spec.fill if spec.fill is not None else 0.0
                if spec.indicator:
                    row[col.start + 1] = 1.0
            return  # categorical: the all-zero one-hot row stands for "missing"
        if col.index is not None:
            key = category_key(value)
            offset = col.index.get(key) if key is not None else None
            if offset is None:
                allowed = spec.categories or []
                more = f" and {len(allowed) - MAX_LISTED} more" if len(allowed) > MAX_LISTED else ""
                raise ColumnError(
                    f"{where} is {value!r:.40}, not a known category; allowed values: "
                    f"{allowed[:MAX_LISTED]}{more}"
                )
            row[col.start + offset] = 1.0
            return
        row[col.start] = _number(value, where)

    def encode_cells(self, rows: list[list[str]], header: list[str]) -> F64:
        """CSV rows (cells as text, columns in ``header`` order) -> feature rows, as encode()."""
        positions = [header.index(name) for name in self.names]
        return self.encode(
            [{n: r[p] for n, p in zip(self.names, positions, strict=True)} for r in rows]
        )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ColumnError(f"{where} must be a number, got {value!r:.40}")
    try:
        number = float(value)
    except ValueError:
        raise ColumnError(f"{where} must be a number, got {value!r:.40}") from None
    except OverflowError:  # an integer beyond float64
        number = math.inf
    if not math.isfinite(number):
        raise ColumnError(f"{where} is not a finite number: {value!r:.40}")
    return number
