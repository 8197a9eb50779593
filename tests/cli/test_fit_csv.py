"""``aeserve fit-csv`` on generated CSVs: categories, missing cells, unlabelled files, mistakes."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from service.runtime.manifest import Manifest
from tests.cli.conftest import Result, assert_user_error, serve

Run = Callable[..., Result]
MERCHANTS = {"grocery": 40.0, "travel": 400.0, "online": 80.0}


def write_transactions(
    path: Path, n: int = 800, seed: int = 0, labelled: bool = True, missing: bool = True
) -> None:
    """Transactions whose amount depends on the merchant; anomalies are travel-sized amounts
    at the grocery at night. About 5% of amounts and 3% of merchants are missing."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tx_id", "amount", "hour", "merchant", *(["is_fraud"] if labelled else [])])
        for i in range(n):
            fraud = rng.random() < 0.1
            merchant = str(rng.choice(list(MERCHANTS)))
            amount = rng.normal(MERCHANTS[merchant], 8)
            hour = rng.normal(14, 2)
            if fraud:
                merchant, amount, hour = "grocery", rng.normal(400, 30), rng.normal(3, 1)
            cells = [f"tx{i}", f"{amount:.2f}", f"{hour:.1f}", merchant]
            if missing and rng.random() < 0.05:
                cells[1] = ""
            if missing and rng.random() < 0.03:
                cells[3] = "NA"
            w.writerow(cells + ([str(int(fraud))] if labelled else []))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One labelled model, fitted once for the tests that read or serve it."""
    from aeserve.cli import main

    d = tmp_path_factory.mktemp("fit")
    write_transactions(d / "tx.csv")
    argv = [
        "fit-csv",
        str(d / "tx.csv"),
        "--label",
        "is_fraud",
        "--id-column",
        "tx_id",
        "--name",
        "tx",
        "--models",
        str(d / "models"),
        "--epochs",
        "60",
        "--quiet",
    ]
    assert main(argv) == 0
    return d / "models"


@pytest.mark.slow
def test_manifest_records_columns_and_metrics(fitted: Path) -> None:
    m = Manifest.read(fitted / "tx")
    assert m.tabular is not None
    cols = {c.name: c for c in m.tabular.columns}
    assert list(cols) == ["amount", "hour", "merchant"]  # tx_id and the label are no features
    assert cols["merchant"].kind == "categorical"
    assert cols["merchant"].categories == ["grocery", "online", "travel"]
    assert cols["amount"].kind == "numeric" and cols["amount"].missing == "impute"
    assert cols["amount"].indicator and cols["amount"].fill is not None
    assert not cols["hour"].indicator  # no missing hours in the file
    assert m.input.features == [
        "amount",
        "amount:missing",
        "hour",
        "merchant=grocery",
        "merchant=online",
        "merchant=travel",
    ]
    assert m.metrics["roc_auc_test"].value > 0.95
    assert "roc_auc_iforest_test" in m.metrics
    assert m.training.command.startswith("aeserve fit-csv ")
    card = (fitted / "tx" / "card.md").read_text()
    assert "### Columns" in card and "`merchant` | categorical" in card


@pytest.mark.slow
def test_served_model_takes_raw_records(fitted: Path) -> None:
    records = [
        {"id": "ok", "amount": 41.5, "hour": 13, "merchant": "grocery"},
        {"id": "fraud", "amount": 420, "hour": 2.5, "merchant": "grocery"},
        {"id": "strings", "amount": "82.10", "hour": "15", "merchant": " online "},
        {"id": "empty", "amount": "", "hour": 14, "merchant": "travel"},
        {"id": "null", "amount": None, "hour": 14, "merchant": None},
        {"id": "absent", "hour": 14, "merchant": "NA"},
    ]
    with serve(fitted) as client:
        r = client.post("/anomaly-score", json={"model": "tx", "records": records})
        assert r.status_code == 200, r.text
        res = {row["id"]: row for row in r.json()["results"]}
        assert not res["ok"]["is_anomaly"] and res["fraud"]["is_anomaly"]
        assert res["fraud"]["score"] > 10 * res["ok"]["score"]
        assert res["strings"]["score"] < res["fraud"]["score"]
        # Missing cells are imputed; /reconstruct shows the encoded features: the fill value
        # and the indicator for the amount, an all-zero one-hot row for the merchant.
        m = Manifest.read(fitted / "tx")
        assert m.tabular is not None
        fill = m.tabular.columns[0].fill
        for rid in ("empty", "null", "absent"):
            assert res[rid]["score"] > 0
        r = client.post(
            "/anomaly-score", json={"model": "tx", "records": records[4:5], "top_features": 6}
        )
        values = {c["feature"]: c["value"] for c in r.json()["results"][0]["contributions"]}
        assert values["amount"] == pytest.approx(fill) and values["amount:missing"] == 1.0
        assert values["merchant=grocery"] == values["merchant=travel"] == 0.0
        bare = [{k: v for k, v in rec.items() if k != "id"} for rec in records]
        r = client.post("/reconstruct", json={"model": "tx", "records": bare})
        assert r.status_code == 200 and np.asarray(r.json()["outputs"]).shape == (6, 6)

        def refused(record: dict[str, object], *needles: str) -> None:
            r = client.post("/anomaly-score", json={"model": "tx", "records": [record]})
            assert r.status_code == 422, r.text
            for needle in needles:
                assert needle in r.json()["detail"], r.json()["detail"]

        refused(
            {"amount": 1, "hour": 1, "merchant": "casino"},
            "records[0].merchant",
            "'casino'",
            "['grocery', 'online', 'travel']",
        )
        refused(
            {"amount": "lots", "hour": 1, "merchant": "travel"},
            "records[0].amount",
            "must be a number",
        )
        refused({"amount": 1, "hour": 1, "merchant": "travel", "zip": 9}, "unknown column", "'zip'")
        refused({"amount": "1e999", "hour": 1, "merchant": "travel"}, "not a finite number")
        refused({"amount": True, "hour": 1, "merchant": "travel"}, "must be a number")


@pytest.mark.slow
def test_unlabelled_csv_calibrates_only(run: Run, tmp_path: Path) -> None:
    write_transactions(tmp_path / "sessions.csv", n=400, labelled=False)
    res = run(
        "fit-csv",
        tmp_path / "sessions.csv",
        "--drop",
        "tx_id",
        "--models",
        tmp_path / "models",
        "--epochs",
        "30",
        "--quiet",
    )
    assert res.code == 0, res.err
    m = Manifest.read(tmp_path / "models" / "sessions")  # the name comes from the file
    assert not any(k.startswith("roc_auc") for k in m.metrics)
    assert m.score.threshold_rule == "quantile:0.99" and m.score.calibration.n == 80
    assert "validation" in m.score.calibration.split
    with serve(tmp_path / "models") as client:
        r = client.post(
            "/anomaly-score", json={"records": [{"amount": 400, "hour": 14, "merchant": "travel"}]}
        )
        assert r.status_code == 200 and r.json()["model"] == "sessions"


@pytest.mark.slow
def test_refuse_policy_is_served(run: Run, tmp_path: Path) -> None:
    write_transactions(tmp_path / "full.csv", n=300, missing=False)
    res = run(
        "fit-csv",
        tmp_path / "full.csv",
        "--label",
        "is_fraud",
        "--drop",
        "tx_id",
        "--missing",
        "refuse",
        "--categorical",
        "hour",
        "--max-categories",
        "200",
        "--models",
        tmp_path / "models",
        "--epochs",
        "10",
        "--quiet",
    )
    assert res.code == 0, res.err
    m = Manifest.read(tmp_path / "models" / "full")
    assert m.tabular is not None and all(c.missing == "refuse" for c in m.tabular.columns)
    with serve(tmp_path / "models") as client:
        r = client.post(
            "/anomaly-score",
            json={"records": [{"amount": None, "hour": "14.0", "merchant": "travel"}]},
        )
        assert r.status_code == 422 and "records[0].amount is missing" in r.json()["detail"]


def test_user_mistakes(run: Run, tmp_path: Path) -> None:
    write_transactions(tmp_path / "tx.csv", n=60)
    tx = tmp_path / "tx.csv"
    models = ["--models", tmp_path / "models"]
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("a,b,label\n1,2,0\n1,2\n")
    (tmp_path / "ids.csv").write_text(
        "id,a,label\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(10))
    )
    (tmp_path / "blank.csv").write_text("a,b,label\n1,,0\n2,,1\n")
    cases: list[tuple[list[object], str]] = [
        ([tmp_path / "nope.csv"], "no such file"),
        ([tx, "--label", "fraud"], "no label column 'fraud'"),
        ([tx, "--label", "is_fraud", "--anomaly-values", "yes"], "both kinds are needed"),
        ([tx, "--drop", "nope"], "no column 'nope' to drop"),
        ([tx, "--threshold-rule", "best_f1"], "needs labels"),
        ([tx, "--threshold-rule", "median"], "quantile:Q"),
        ([tx, "--label", "is_fraud", "--categorical", "nope"], "no feature column 'nope'"),
        ([tx, "--label", "is_fraud"], "'tx_id' has 60 distinct values"),
        ([tx, "--epochs", "0"], "--epochs must be at least 1"),
        ([tx, "--id-column", "is_fraud", "--label", "is_fraud"], "same column"),
        ([tx, "--name", "Bad Name"], "model name"),
        ([tx, "--missing", "guess"], "invalid choice"),
        ([tmp_path / "empty.csv"], "empty"),
        ([tmp_path / "ragged.csv", "--label", "label"], ":3: 2 fields"),
        ([tmp_path / "ids.csv", "--label", "label"], "--id-column id"),
        ([tmp_path / "blank.csv", "--label", "label"], "column 'b' has no values"),
        ([tx, "--label", "is_fraud", "--drop", "tx_id", "--missing", "refuse"], "is missing"),
    ]
    for argv, needle in cases:
        assert_user_error(run("fit-csv", *argv, *models, "--quiet"), needle)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
