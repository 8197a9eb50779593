"""service/runtime/columns.py: raw tabular records -> feature rows; the manifest's tabular part."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from service.codecs.arrays import record_rows
from service.runtime.columns import ColumnEncoder, ColumnError, category_key
from service.runtime.manifest import TabularColumn, TabularSpec

SPEC = TabularSpec(
    columns=[
        TabularColumn(name="amount", kind="numeric", missing="impute", fill=5.0, indicator=True),
        TabularColumn(name="hour", kind="numeric"),
        TabularColumn(
            name="shop", kind="categorical", categories=["7", "a", "b"], missing="impute"
        ),
    ]
)


def test_features_and_encoding() -> None:
    enc = ColumnEncoder(SPEC)
    assert enc.features == ["amount", "amount:missing", "hour", "shop=7", "shop=a", "shop=b"]
    assert not enc.plain
    rows = enc.encode(
        [
            {"amount": 2, "hour": 1.5, "shop": "a"},
            {"amount": " 3.5 ", "hour": "2", "shop": 7},  # numeric text, an integer category
            {"amount": None, "hour": 0, "shop": "NA"},  # missing: fill + indicator, zero one-hot
            {"hour": 0, "shop": 7.0},  # absent key; 7.0 is the category "7"
            {"amount": "", "hour": 0, "shop": " b "},
        ]
    )
    np.testing.assert_array_equal(
        rows,
        [
            [2, 0, 1.5, 0, 1, 0],
            [3.5, 0, 2, 1, 0, 0],
            [5, 1, 0, 0, 0, 0],
            [5, 1, 0, 1, 0, 0],
            [5, 1, 0, 0, 0, 1],
        ],
    )


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        (
            {"amount": 1, "hour": 1, "shop": "c"},
            "records[0].shop is 'c', not a known category; allowed values: ['7', 'a', 'b']",
        ),
        ({"amount": 1, "hour": None, "shop": "a"}, "records[0].hour is missing"),
        ({"amount": 1, "shop": "a"}, "records[0].hour is missing"),
        ({"amount": "x", "hour": 1, "shop": "a"}, "records[0].amount must be a number"),
        ({"amount": [1], "hour": 1, "shop": "a"}, "must be a number"),
        ({"amount": False, "hour": 1, "shop": "a"}, "must be a number"),
        ({"amount": 10**400, "hour": 1, "shop": "a"}, "not a finite number"),
        ({"amount": "inf", "hour": 1, "shop": "a"}, "not a finite number"),
        ({"amount": 1, "hour": 1, "shop": True}, "not a known category"),
        ({"amount": 1, "hour": 1, "shop": "a", "zip": 1}, "unknown column(s) ['zip']"),
        ("not an object", "records[0] must be an object"),
    ],
)
def test_refusals_name_record_and_column(record: Any, needle: str) -> None:
    with pytest.raises(ColumnError) as info:
        ColumnEncoder(SPEC).encode([record])
    assert needle in str(info.value)


def test_long_category_lists_are_cut() -> None:
    spec = TabularSpec(
        columns=[
            TabularColumn(name="c", kind="categorical", categories=[str(i) for i in range(30)])
        ]
    )
    with pytest.raises(ColumnError, match=r"and 10 more"):
        ColumnEncoder(spec).encode([{"c": "x"}])


def test_category_keys() -> None:
    assert category_key(" 007 ") == "007" and category_key(3) == "3" and category_key(3.0) == "3"
    assert category_key(3.5) is None and category_key(True) is None and category_key(None) is None


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match="needs its categories"):
        TabularColumn(name="c", kind="categorical")
    with pytest.raises(ValidationError, match="needs a finite fill"):
        TabularColumn(name="n", kind="numeric", missing="impute")
    with pytest.raises(ValidationError, match="cannot have categories"):
        TabularColumn(name="n", kind="numeric", categories=["a"])
    with pytest.raises(ValidationError, match="unique"):
        TabularSpec(columns=[TabularColumn(name="n", kind="numeric")] * 2)


def test_record_rows_leaves_encoded_models_to_records_to_array() -> None:
    """The express lane reads records through codecs.record_rows: for categorical or indicator
    features it must decline (None), so such requests take the full path and its encoding."""
    enc = ColumnEncoder(SPEC)
    runtime: Any = SimpleNamespace(
        columns=enc, feature_set=frozenset(enc.features), features=enc.features
    )
    record = dict.fromkeys(enc.features, 1.0)
    assert record_rows(runtime, [record]) is None
    plain = ColumnEncoder(TabularSpec(columns=[TabularColumn(name="a", kind="numeric")]))
    assert plain.plain
    runtime = SimpleNamespace(columns=plain, feature_set=frozenset(["a"]), features=["a"])
    assert record_rows(runtime, [{"a": 2.0}]) == [[2.0]]  # identical to encode()
    np.testing.assert_array_equal(plain.encode([{"a": 2.0}]), [[2.0]])


def test_columns_module_is_pure() -> None:
    code = (
        "import sys, service.runtime.columns\n"
        "bad = [m for m in ('fastapi', 'starlette', 'torch') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
