"""Tabular datasets, thresholds and the tabular pipeline on small generated CSV files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from service.runtime.manifest import Manifest
from training.anomaly import best_f1_threshold, choose_threshold, quantile_threshold
from training.cli import main as cli_main
from training.datasets import load_dataset
from training.datasets.tabular import (
    CREDITCARD_COLUMNS,
    DatasetUnavailable,
    read_csv,
    split_indices,
)
from training.onnx_model import OnnxAutoencoder
from training.pipeline import build
from training.recipe import load, parse
from training.scoring import scores


def write_creditcard(path: Path, n: int = 3000, fraud: float = 0.03, seed: int = 0) -> Path:
    """A CSV in the public credit-card-fraud layout: correlated normal rows, shifted frauds."""
    rng = np.random.default_rng(seed)
    k = int(n * fraud)
    mix = rng.normal(0, 1, (28, 28)) / 4
    v = rng.normal(0, 1, (n, 28)) @ mix  # normal rows live near a low-rank structure
    v[:, 4:] += rng.normal(0, 0.05, (n, 24))
    y = np.zeros(n, dtype=int)
    y[:k] = 1
    v[:k] += rng.normal(0, 1.5, (k, 28))  # frauds leave the structure
    time = np.sort(rng.uniform(0, 172_800, n))
    amount = np.round(rng.lognormal(3, 1, n), 2)
    amount[:k] *= 4
    order = rng.permutation(n)
    lines = [",".join(f'"{c}"' for c in CREDITCARD_COLUMNS)]
    for i in order:
        row = [f"{time[i]:.0f}", *(f"{x:.6f}" for x in v[i]), f"{amount[i]:.2f}", f'"{y[i]}"']
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def creditcard_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_creditcard(tmp_path_factory.mktemp("cc") / "creditcard.csv")


def test_read_csv_label_column_drop_and_gzip(tmp_path: Path) -> None:
    text = 'id,a,b,"label"\n1,1.5,2,no\n2,-3,4e2,yes\n\n3,0,0,"yes"\n'
    plain = tmp_path / "t.csv"
    plain.write_text(text)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    for path in (plain, gz):
        t = read_csv(path, "label", anomaly_values=["yes"], drop=["id"])
        assert t.features == ["a", "b"]
        np.testing.assert_array_equal(t.x, [[1.5, 2], [-3, 400], [0, 0]])
        assert t.y is not None and t.y.tolist() == [0, 1, 1]
    # numeric labels compare as numbers: "1.0" is "1"
    (tmp_path / "n.csv").write_text("a,y\n1,1.0\n2,0\n")
    assert read_csv(tmp_path / "n.csv", "y").y.tolist() == [1, 0]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,x\n", "column 'b' is not a number"),
        ("a,b\n1,nan\n", "column 'b' is 'nan'"),
        ("a,b\n1\n", "1 fields, the header has 2"),
        ("a,a\n1,2\n", "duplicate column"),
        ("a,b\n", "no data rows"),
    ],
)
def test_read_csv_errors_name_row_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_csv(path, None)


def test_read_csv_missing_label_and_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no label column 'Class'"):
        read_csv(tmp_path / "x.csv", "Class")
    with pytest.raises(DatasetUnavailable):
        read_csv(tmp_path / "absent.csv", "Class")


def test_split_is_stratified_disjoint_and_seeded() -> None:
    y = np.array([0] * 90 + [1] * 10)
    tr, va, te = split_indices(y, 0.2, 0.2, seed=3)
    assert len(set(tr) | set(va) | set(te)) == 100 == len(tr) + len(va) + len(te)
    assert (y[va].sum(), y[te].sum()) == (2, 2)
    again = split_indices(y, 0.2, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))


def test_creditcard_loader_semi_supervised_scaler(creditcard_csv: Path) -> None:
    d = load_dataset("creditcard", path=str(creditcard_csv))
    assert d.kind == "tabular" and d.shape == (30,)
    assert d.features == CREDITCARD_COLUMNS[:-1]
    assert d.train.y is not None and d.train.y.sum() == 0  # normal rows only by default
    assert d.test.y is not None and d.test.y.sum() == 18  # 20% of 90 frauds
    # The scaler standardises the training rows: mean 0, std 1 there.
    np.testing.assert_allclose(d.train.x.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(d.train.x.std(0), 1, atol=1e-3)
    raw = read_csv(creditcard_csv, "Class")
    # Undoing the scaler on a test row gives back a raw row of the file.
    row = d.test.x[0] * np.asarray(d.scaler_std) + np.asarray(d.scaler_mean)
    assert np.abs(raw.x - row).max(axis=1).min() < 1e-2
    every = load_dataset("creditcard", path=str(creditcard_csv), train_on="all")
    assert every.train.y is not None and every.train.y.sum() == 90 - 36


def test_creditcard_env_var_and_missing_file(
    creditcard_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AESERVE_CREDITCARD_CSV", str(creditcard_csv))
    assert len(load_dataset("creditcard").test) == 600
    monkeypatch.setenv("AESERVE_CREDITCARD_CSV", str(tmp_path / "none.csv"))
    with pytest.raises(DatasetUnavailable, match="AESERVE_CREDITCARD_CSV"):
        load_dataset("creditcard")


def test_generic_csv_loader(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["txid,amount,hour,fraud"]
    for i in range(200):
        rows.append(f"t{i},{rng.normal(50, 5):.3f},{rng.integers(0, 24)},{int(i % 20 == 0)}")
    (tmp_path / "tx.csv").write_text("\n".join(rows))
    d = load_dataset(
        "csv", tmp_path, path="tx.csv", label="fraud", drop=["txid"], dataset_name="tx"
    )
    assert d.features == ["amount", "hour"] and d.name == "tx"
    with pytest.raises(ValueError, match="not a number"):
        load_dataset("csv", tmp_path, path="tx.csv", label="fraud")  # txid is text


def test_breast_cancer_malignant_is_the_anomaly() -> None:
    d = load_dataset("breast-cancer")
    assert d.shape == (30,) and d.features is not None and d.features[0] == "mean radius"
    total = sum(int(s.y.sum()) for s in (d.val, d.test) if s.y is not None)
    assert total == round(212 * 0.2) * 2  # 212 malignant, 20% each in val and test


def test_threshold_rules() -> None:
    normal = np.arange(101, dtype=np.float64)
    assert quantile_threshold(normal, 0.99) == 99.0
    s = np.array([0.1, 0.2, 0.3, 0.9, 1.0, 0.35])
    y = np.array([0, 0, 0, 1, 1, 0])
    t = best_f1_threshold(s, y)
    assert 0.35 < t < 0.9  # flags exactly the two anomalies (F1 = 1)
    assert choose_threshold("best_f1", normal, s, y) == t
    assert choose_threshold("quantile:0.5", normal, s, y) == 50.0
    with pytest.raises(ValueError, match="needs labels"):
        choose_threshold("best_f1", normal, s, None)
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold("top_k:3", normal, s, y)


def _recipe(csv: Path, rule: str, **extra: object) -> dict[str, object]:
    return {
        "name": "cc-tiny",
        "seed": 0,
        "epochs": 15,
        "dataset": {"name": "creditcard", "path": str(csv)},
        "architecture": {
            "kind": "dense_ae",
            "latent_dim": 4,
            "hidden": [16],
            "activation": "tanh",
            "output": "identity",
        },
        "training": {"lr": 0.01, "batch_size": 128},
        "score": {"threshold_rule": rule},
        **extra,
    }


@pytest.fixture(scope="module")
def cc_model(creditcard_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo") / "cc-tiny"
    build(parse(_recipe(creditcard_csv, "quantile:0.99")), out, "test", quiet=True)
    return out


def test_pipeline_tabular_manifest_calibration_and_card(
    cc_model: Path, creditcard_csv: Path
) -> None:
    m = Manifest.read(cc_model)
    assert m.input.kind == "tabular" and m.input.features == CREDITCARD_COLUMNS[:-1]
    assert m.input.scaler is not None and m.score.kind == "mse"
    assert m.score.threshold_rule == "quantile:0.99"
    cal = m.score.calibration
    assert cal.split.startswith("validation, normal rows only") and cal.n == 582
    # Calibration: the threshold is the 0.99-quantile of the normal validation scores, so its
    # percentile (interpolated into the calibration, as the service does) is 99.
    assert np.interp(m.score.threshold, cal.values, cal.levels) == pytest.approx(0.99, abs=1e-9)
    d = load_dataset("creditcard", path=str(creditcard_csv))
    onnx = OnnxAutoencoder(cc_model)
    assert d.val.y is not None
    normal = d.val.x[d.val.y == 0]
    val_scores = scores(normal, onnx.reconstruct(normal), "mse")
    assert m.score.threshold == pytest.approx(np.quantile(val_scores, 0.99), rel=1e-6)
    assert cal.values[50] == pytest.approx(np.median(val_scores), rel=1e-6)
    # Side-by-side metrics, recomputed from the ONNX files.
    from sklearn.metrics import roc_auc_score

    assert d.test.y is not None
    test_scores = scores(d.test.x, onnx.reconstruct(d.test.x), "mse")
    assert m.metrics["roc_auc_test"].value == pytest.approx(roc_auc_score(d.test.y, test_scores))
    for key in ("roc_auc_iforest_test", "roc_auc_pca_test", "average_precision_test"):
        assert 0.5 < m.metrics[key].value <= 1.0
    assert m.metrics["roc_auc_test"].value > 0.9  # the generated frauds are easy
    flagged = test_scores > m.score.threshold
    normal_test = d.test.y == 0
    fpr = flagged[normal_test].mean()
    assert m.metrics["fpr_at_threshold_test"].value == pytest.approx(fpr)
    assert m.training.extra["dataset_options"] == {"path": str(creditcard_csv)}
    card = (cc_model / "card.md").read_text()
    assert "| IsolationForest |" in card and "![ROC curves](roc.png)" in card
    for plot in ("roc.png", "pr.png", "score_histograms.png"):
        assert (cc_model / plot).stat().st_size > 1000


def test_best_f1_rule_is_recorded(creditcard_csv: Path, tmp_path: Path) -> None:
    r = parse(_recipe(creditcard_csv, "best_f1", epochs=3))
    res = build(r, tmp_path / "cc-f1", "test", quiet=True)
    m = res.manifest
    assert m.score.threshold_rule == "best_f1"
    d = load_dataset("creditcard", path=str(creditcard_csv))
    assert d.val.y is not None
    onnx = OnnxAutoencoder(res.out_dir)
    s = scores(d.val.x, onnx.reconstruct(d.val.x), "mse")
    assert m.score.threshold == pytest.approx(best_f1_threshold(s, d.val.y), rel=1e-6)


def test_creditcard_recipe_and_build_zoo_skip(
    creditcard_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = load("creditcard")
    assert r.dataset == "creditcard" and r.score.threshold_rule
    # Without the user's CSV, build-zoo skips creditcard instead of failing.
    monkeypatch.setenv("AESERVE_CREDITCARD_CSV", str(tmp_path / "absent.csv"))
    assert (
        cli_main(["-q", "build-zoo", "--out", str(tmp_path / "zoo"), "--only", "creditcard"]) == 0
    )
    assert not (tmp_path / "zoo" / "creditcard").exists()
    # With it, the recipe builds (2 epochs: the recipe is exercised, not the shipped quality).
    monkeypatch.setenv("AESERVE_CREDITCARD_CSV", str(creditcard_csv))
    assert cli_main(["-q", "train", "creditcard", "--dry-run"]) == 0
    out = tmp_path / "cc"
    cli_main(["-q", "train", "creditcard", "--epochs", "2", "--out", str(out)])
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["input"]["features"] == CREDITCARD_COLUMNS[:-1]
