"""Tabular /anomaly-score: records and raw rows, ids, per-feature contributions, and every 422.

The fixture model ``table`` keeps the first two standardised features in its code and decodes
the other two to 0 (their mean), so the expected answers are written out by hand here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from .conftest import FEATURES, SCALER_MEAN, SCALER_STD, assert_problem

MEAN = np.array(SCALER_MEAN)
STD = np.array(SCALER_STD)
ROWS = [[12.0, -1.0, 2.5, 50.0], [10.0, -2.0, 0.5, 100.0], [8.0, -2.5, -4.5, 400.0]]


def record(row: list[float], **extra: Any) -> dict[str, Any]:
    return {**dict(zip(FEATURES, row, strict=True)), **extra}


def score(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/anomaly-score", json={"model": "table", **body})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    assert data["model"] == "table" and data["version"].startswith("1.0.0-test+")
    return data


def expected_parts(row: list[float]) -> np.ndarray:
    """Per-feature (x - x_hat)^2 / 4 in the standardised space (x_hat = x on 0, 1; 0 on 2, 3)."""
    z = (np.array(row) - MEAN) / STD
    z[:2] = 0.0
    return z**2 / 4


def test_records_in_raw_units_give_the_standardised_score(client: TestClient) -> None:
    """The scaler round trip: raw records in -> the score of the standardised row."""
    data = score(client, records=[record(r) for r in ROWS])
    want = [expected_parts(r).sum() for r in ROWS]
    np.testing.assert_allclose(data["scores"], want, rtol=1e-6)
    assert [r["score"] for r in data["results"]] == data["scores"]
    # The same rows as `inputs` (manifest feature order) give the same answer.
    by_inputs = score(client, inputs=ROWS)
    assert by_inputs["scores"] == data["scores"]
    assert by_inputs["results"] == data["results"]


def test_per_row_answer_threshold_percentile_and_flag(client: TestClient) -> None:
    data = score(client, records=[record(r) for r in ROWS])
    # threshold 3.0 from the manifest; calibration levels [0, .5, 1] at values [0, 1, 4].
    assert data["threshold"] == 3.0
    for res, s in zip(data["results"], data["scores"], strict=True):
        assert res["threshold"] == 3.0
        assert res["is_anomaly"] == (s > 3.0)
        assert res["percentile"] == pytest.approx(100 * np.interp(s, [0, 1, 4], [0, 0.5, 1]))
    assert [r["is_anomaly"] for r in data["results"]] == [False, False, True]
    lowered = score(client, records=[record(ROWS[0])], threshold=0.1)
    assert lowered["results"][0]["threshold"] == 0.1 and lowered["results"][0]["is_anomaly"]


def test_contributions_sum_to_the_score(client: TestClient) -> None:
    data = score(client, records=[record(r) for r in ROWS], top_features=4)
    for row, res in zip(ROWS, data["results"], strict=True):
        parts = res["contributions"]
        assert len(parts) == 4
        assert sum(p["contribution"] for p in parts) == pytest.approx(res["score"], rel=1e-12)
        if res["score"] > 0:
            assert sum(p["share"] for p in parts) == pytest.approx(1.0, rel=1e-12)
        by_feature = {p["feature"]: p for p in parts}
        want = expected_parts(row)
        for j, name in enumerate(FEATURES):
            p = by_feature[name]
            assert p["contribution"] == pytest.approx(want[j], rel=1e-5, abs=1e-12)
            assert p["value"] == pytest.approx(row[j])  # the raw value sent
            recon = row[j] if j < 2 else MEAN[j]  # in raw units
            assert p["reconstruction"] == pytest.approx(recon, rel=1e-6)
        values = [p["contribution"] for p in parts]
        assert values == sorted(values, reverse=True)  # largest first


def test_top_features_default_and_choice(client: TestClient) -> None:
    row = ROWS[2]  # gamma is -5 std, delta +12 std: delta explains most of the score
    default = score(client, records=[record(row)])["results"][0]["contributions"]
    assert [p["feature"] for p in default] == ["delta", "gamma", "alpha"]
    top1 = score(client, records=[record(row)], top_features=1)["results"][0]["contributions"]
    assert [p["feature"] for p in top1] == ["delta"]
    assert score(client, records=[record(row)], top_features=0)["results"][0]["contributions"] == []


def test_records_in_any_key_order_and_number_type_are_the_same_rows(client: TestClient) -> None:
    """Records are read column by column whatever their key order; ints are numbers too."""
    ints = [[12, -1, 3, 50], *ROWS[1:]]
    shuffled = [dict(reversed(list(record(r).items()))) for r in ints]
    by_records = score(client, records=shuffled, top_features=4)
    by_inputs = score(client, inputs=ints, top_features=4)
    assert by_records["results"] == by_inputs["results"]
    assert by_records["scores"] == by_inputs["scores"]
    # One bad record after good ones is still named (the slow path finds it).
    r = client.post(
        "/anomaly-score", json={"model": "table", "records": [*shuffled, {**GOOD, "beta": True}]}
    )
    assert_problem(r, 422, "records[3].beta must be a number")


def test_tied_contributions_keep_the_feature_order(client: TestClient) -> None:
    """A row at the scaler's mean reconstructs exactly: every part is 0, features in order."""
    data = score(client, records=[record(SCALER_MEAN)], top_features=4)
    res = data["results"][0]
    assert res["score"] == 0.0
    assert [p["feature"] for p in res["contributions"]] == FEATURES
    assert all(p["share"] == 0.0 for p in res["contributions"])


def test_ids_come_back_unchanged(client: TestClient) -> None:
    records = [
        record(ROWS[0], id="tx-0001"),
        record(ROWS[1]),
        record(ROWS[2], id=987654321012),
    ]
    data = score(client, records=records)
    assert [r["id"] for r in data["results"]] == ["tx-0001", None, 987654321012]
    rows = score(client, inputs=ROWS, ids=["a", 2, "c"])
    assert [r["id"] for r in rows["results"]] == ["a", 2, "c"]
    assert rows["scores"] == data["scores"]


def test_extreme_finite_values_are_scored(client: TestClient) -> None:
    """Only finiteness is required: an extreme value is what anomaly detection is for."""
    data = score(client, records=[record([1e30, -1e30, 3e38, -3e38])])
    assert data["results"][0]["is_anomaly"] is True
    assert np.isfinite(data["scores"][0]) and data["percentiles"][0] == 100.0


def test_image_models_keep_the_column_answer(client: TestClient) -> None:
    r = client.post("/anomaly-score", json={"model": "glyph", "inputs": [[[0] * 5] * 7]})
    assert r.status_code == 200
    assert "results" not in r.json()


def _raw(body: str) -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": "application/json"}}


GOOD = record(ROWS[0])


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ({"records": []}, ["records is empty"]),
        ({"inputs": []}, ["inputs is empty"]),
        ({"records": [{k: v for k, v in GOOD.items() if k != "gamma"}]}, ["records[0]", "gamma"]),
        ({"records": [GOOD, {**GOOD, "epsilon": 1}]}, ["records[1]", "unknown", "epsilon"]),
        ({"records": [GOOD, [1, 2, 3, 4]]}, ["records[1] must be an object"]),
        ({"records": [{**GOOD, "beta": "7"}]}, ["records[0].beta must be a number"]),
        ({"records": [{**GOOD, "beta": None}]}, ["records[0].beta must be a number"]),
        ({"records": [{**GOOD, "beta": True}]}, ["records[0].beta must be a number"]),
        ({"records": [{**GOOD, "delta": 1e39}]}, ["records[0].delta is not a finite number"]),
        ({"inputs": [ROWS[0], [1, 2, 1e39, 4]]}, ["inputs[1][2] (feature 'gamma')", "finite"]),
        ({"inputs": [[1, 2, 3]]}, ["inputs has shape [1, 3]", "[N, 4]"]),
        ({"inputs": [[1, "2", 3, 4]]}, ["only numbers"]),
        ({"records": [{**GOOD, "id": 1.5}]}, ["records[0].id must be a string or an integer"]),
        ({"records": [{**GOOD, "id": [1]}]}, ["records[0].id"]),
        ({"records": [GOOD], "ids": ["x"]}, ["'ids' goes with 'inputs'"]),
        ({"inputs": [ROWS[0]], "ids": ["x", "y"]}, ["ids has 2 entries for 1 rows"]),
        ({"inputs": [ROWS[0]], "ids": [True]}, ["ids.0"]),
        ({"inputs": [ROWS[0]], "top_features": 5}, ["top_features is 5", "4 features"]),
        ({"inputs": [ROWS[0]], "top_features": -1}, ["top_features"]),
        ({"model": "glyph", "inputs": [[[0] * 5] * 7], "ids": [1]}, ["'ids' is for tabular"]),
        ({"model": "glyph", "inputs": [[[0] * 5] * 7], "top_features": 2}, ["'top_features'"]),
    ],
)
def test_invalid_tabular_requests_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], needles: list[str]
) -> None:
    r = client.post("/anomaly-score", json={"model": "table", **body})
    assert_problem(r, 422, *needles)


@pytest.mark.parametrize(
    ("literal", "needles"),
    [
        ("NaN", ["records[0].gamma is not a finite number"]),
        ("-Infinity", ["records[0].gamma is not a finite number"]),
        ("1e400", ["records[0].gamma is not a finite number"]),
        ("1" + "0" * 400, ["records[0].gamma is not a finite number"]),
    ],
)
def test_nan_and_overflow_literals_are_422_naming_the_field(
    client: TestClient, literal: str, needles: list[str]
) -> None:
    """Python's json.dumps writes NaN/Infinity: not JSON, but the mistake is the value."""
    body = json.dumps({"model": "table", "records": [{**GOOD, "gamma": 0}]})
    body = body.replace('"gamma": 0', f'"gamma": {literal}')
    assert_problem(client.post("/anomaly-score", **_raw(body)), 422, *needles)
    r = client.post(
        "/anomaly-score", **_raw(f'{{"model": "table", "inputs": [[1, 2, {literal}, 4]]}}')
    )
    if literal.startswith("1" + "0" * 10):
        assert_problem(r, 422, "only numbers")  # a Python int too large for numpy
    else:
        assert_problem(r, 422, "inputs[0][2] (feature 'gamma') is not a finite number")


def test_broken_json_is_still_400(client: TestClient) -> None:
    assert_problem(client.post("/anomaly-score", **_raw('{"model": "table", "records": [')), 400)
