"""Tabular anomaly evaluation: calibration on normal rows, threshold rules, baselines.

Called by :func:`training.evaluate.evaluate` for tabular datasets (numpy, scikit-learn and
onnxruntime; no torch). In one run, on one held-out test split, side by side:

- the autoencoder's score (the manifest's ``mse``, standardised space),
- scikit-learn's IsolationForest and PCA reconstruction error, both fitted on exactly the rows
  the autoencoder trained on (normal rows only, or all rows) with the recipe's seed; PCA keeps
  as many components as the autoencoder's latent dimension;

ROC-AUC and average precision (PR-AUC) of the three, and precision, recall and false-positive
rate of the autoencoder at the chosen threshold.

Calibration uses the *normal* validation rows only: the quantiles of their scores, so a
percentile says "this row scores higher than p% of normal traffic". Threshold rules:

- ``quantile:q`` (default ``quantile:0.99``): the q-quantile of the normal validation scores,
  i.e. a false-positive rate of about 1 - q on normal rows;
- ``best_f1``: the threshold that maximises F1 on the labelled validation split (needs labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

from service.runtime.manifest import Calibration, Metric
from training.datasets import Dataset
from training.evaluate import calibrate
from training.onnx_model import OnnxAutoencoder
from training.scoring import scores as mse_scores

# Allowed shortfall of the autoencoder's ROC-AUC below the better baseline (issue 5).
BASELINE_TOLERANCE = 0.01
METHODS = ("autoencoder", "isolation_forest", "pca")


# --- threshold rules ------------------------------------------------------------------------

# rule name -> fn(normal validation scores, all validation scores, their labels, argument).
TabularRule = Callable[[np.ndarray, np.ndarray, np.ndarray | None, str], float]


def quantile_threshold(normal: np.ndarray, q: float) -> float:
    """The q-quantile of normal scores (numpy's default linear interpolation)."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    return float(np.quantile(np.asarray(normal, np.float64), q))


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising F1 of ``score > t`` against ``labels`` (1 = anomaly).

    Candidates flag the top-k distinct score values; t is the midpoint between the lowest
    flagged value and the next lower one, so the rule does not sit on a training point.
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    if not y.any():
        raise ValueError("best_f1 needs at least one anomaly among the labelled rows")
    values, inverse = np.unique(s, return_inverse=True)  # ascending distinct values
    pos = np.bincount(inverse, weights=y, minlength=len(values))[::-1]  # descending
    cnt = np.bincount(inverse, minlength=len(values))[::-1]
    tp = np.cumsum(pos)
    flagged = np.cumsum(cnt)
    f1 = 2 * tp / (flagged + y.sum())  # 2TP / (2TP + FP + FN) = 2TP / (flagged + positives)
    k = int(np.argmax(f1))  # flag the k+1 highest distinct values
    desc = values[::-1]
    if k + 1 < len(desc):
        return float((desc[k] + desc[k + 1]) / 2)
    return float(np.nextafter(desc[k], -np.inf))  # flag everything


def _quantile_rule(normal: np.ndarray, _s: np.ndarray, _y: np.ndarray | None, arg: str) -> float:
    return quantile_threshold(normal, float(arg) if arg else 0.99)


def _best_f1_rule(_n: np.ndarray, s: np.ndarray, y: np.ndarray | None, arg: str) -> float:
    if arg:
        raise ValueError(f"best_f1 takes no argument, got {arg!r}")
    if y is None:
        raise ValueError("threshold rule best_f1 needs labels on the calibration split")
    return best_f1_threshold(s, y)


TABULAR_RULES: dict[str, TabularRule] = {"quantile": _quantile_rule, "best_f1": _best_f1_rule}


def choose_threshold(
    rule: str, normal: np.ndarray, scores: np.ndarray, labels: np.ndarray | None
) -> float:
    """Apply a rule written like ``quantile:0.99`` or ``best_f1``."""
    name, _, arg = rule.partition(":")
    if name not in TABULAR_RULES:
        known = ", ".join(TABULAR_RULES)
        raise ValueError(f"unknown threshold rule {rule!r} for tabular models (known: {known})")
    return TABULAR_RULES[name](normal, scores, labels, arg)


def check_rule(rule: str) -> None:
    """Fail early (before training) on a rule the tabular evaluation cannot apply."""
    name, _, arg = rule.partition(":")
    if name not in TABULAR_RULES:
        raise ValueError(f"unknown threshold rule {rule!r} (known: {', '.join(TABULAR_RULES)})")
    if name == "quantile" and arg:
        quantile_threshold(np.zeros(1), float(arg))


# --- baselines and metrics ------------------------------------------------------------------


def baseline_scores(
    train_x: np.ndarray, test_x: np.ndarray, components: int, seed: int
) -> dict[str, np.ndarray]:
    """IsolationForest and PCA anomaly scores of ``test_x`` (higher = more anomalous)."""
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(train_x)
    k = max(1, min(components, train_x.shape[1] - 1, len(train_x) - 1))
    pca = PCA(n_components=k, random_state=seed).fit(train_x)
    rec = pca.inverse_transform(pca.transform(test_x))
    return {
        "isolation_forest": -forest.score_samples(test_x).astype(np.float64),
        "pca": mse_scores(test_x, rec, "mse"),
    }


@dataclass(frozen=True)
class OperatingPoint:
    """Confusion figures of ``score > threshold`` against labels."""

    threshold: float
    precision: float
    recall: float
    fpr: float
    f1: float
    flagged: int

    @classmethod
    def at(cls, scores: np.ndarray, labels: np.ndarray, threshold: float) -> OperatingPoint:
        pred = np.asarray(scores) > threshold
        y = np.asarray(labels).astype(bool)
        tp = int((pred & y).sum())
        fp = int((pred & ~y).sum())
        fn = int((~pred & y).sum())
        tn = int((~pred & ~y).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        return cls(threshold, precision, recall, fp / (fp + tn) if fp + tn else 0.0, f1, tp + fp)


@dataclass
class AnomalyEvaluation:
    """What the tabular evaluation measured; the card and plots read it."""

    calibration: Calibration
    threshold: float
    threshold_rule: str
    metrics: dict[str, Metric]
    test_labels: np.ndarray
    test_scores: dict[str, np.ndarray]  # method -> scores of the test rows
    roc_auc: dict[str, float]
    average_precision: dict[str, float]
    operating_point: OperatingPoint
    notes: list[str] = field(default_factory=list)

    def card_lines(self) -> list[str]:
        """Markdown for the card: the side-by-side table, the operating point, any shortfall."""
        op = self.operating_point
        best = max(self.roc_auc["isolation_forest"], self.roc_auc["pca"])
        lines = [
            "",
            "### Anomaly detection against baselines",
            "",
            "One held-out test split, one run; IsolationForest and PCA are fitted on the same "
            "training rows as the autoencoder (PCA with as many components as the latent "
            "dimension).",
            "",
            "| method | ROC-AUC | average precision (PR-AUC) |",
            "| --- | --- | --- |",
        ]
        for m in METHODS:
            name = {"autoencoder": "**autoencoder**", "isolation_forest": "IsolationForest"}.get(
                m, "PCA reconstruction error"
            )
            lines.append(f"| {name} | {self.roc_auc[m]:.4f} | {self.average_precision[m]:.4f} |")
        margin = self.roc_auc["autoencoder"] - best
        lines += [
            "",
            f"Autoencoder ROC-AUC minus the better baseline: {margin:+.4f} "
            f"(allowed: ≥ -{BASELINE_TOLERANCE}).",
            "",
            f"At the threshold {op.threshold:.4g} (`{self.threshold_rule}`) on the test split: "
            f"precision {op.precision:.3f}, recall {op.recall:.3f}, false-positive rate "
            f"{op.fpr:.4f}, F1 {op.f1:.3f} ({op.flagged} of {len(self.test_labels)} rows flagged).",
        ]
        for note in self.notes:
            lines += ["", f"**Note:** {note}"]
        return lines


def evaluate_tabular(
    model: OnnxAutoencoder,
    data: Dataset,
    rule: str,
    seed: int,
    test_scores: np.ndarray,
) -> AnomalyEvaluation:
    """Calibrate on normal validation rows, pick the threshold, compare with the baselines."""
    val, test = data.val, data.test
    if val.y is None or test.y is None:
        raise ValueError(f"{data.name}: the tabular evaluation needs labelled val and test splits")
    val_scores = mse_scores(val.x, model.reconstruct(val.x), "mse")
    normal = val_scores[val.y == 0]
    calibration = calibrate(normal, f"validation, normal rows only ({len(normal):,})")
    threshold = choose_threshold(rule, normal, val_scores, val.y)

    y = test.y.astype(np.int64)
    dim = model.encode(test.x[:1]).shape[1]
    by_method = {"autoencoder": np.asarray(test_scores, np.float64)}
    by_method.update(baseline_scores(data.train.x, test.x, dim, seed))
    roc = {m: float(roc_auc_score(y, s)) for m, s in by_method.items()}
    ap = {m: float(average_precision_score(y, s)) for m, s in by_method.items()}
    op = OperatingPoint.at(by_method["autoencoder"], y, threshold)

    split = data.split_name("test")
    label = {"autoencoder": "", "isolation_forest": "_iforest", "pca": "_pca"}
    what = {
        "autoencoder": "the autoencoder's score",
        "isolation_forest": "scikit-learn IsolationForest (200 trees) fitted on the training rows",
        "pca": f"PCA reconstruction error ({dim} components) fitted on the training rows",
    }
    metrics: dict[str, Metric] = {}
    for m in METHODS:
        metrics[f"roc_auc{label[m]}_test"] = Metric(
            value=roc[m], split=split, description=f"ROC-AUC of {what[m]}"
        )
        metrics[f"average_precision{label[m]}_test"] = Metric(
            value=ap[m], split=split, description=f"average precision (PR-AUC) of {what[m]}"
        )
    best = max(roc["isolation_forest"], roc["pca"])
    metrics["roc_auc_margin_vs_iforest"] = Metric(
        value=roc["autoencoder"] - roc["isolation_forest"],
        split=split,
        description="autoencoder ROC-AUC minus IsolationForest's, same split and run",
    )
    metrics["roc_auc_margin_vs_best_baseline"] = Metric(
        value=roc["autoencoder"] - best,
        split=split,
        description="autoencoder ROC-AUC minus the better of IsolationForest and PCA",
    )
    at = f"at the threshold ({rule})"
    metrics["precision_at_threshold_test"] = Metric(
        value=op.precision, split=split, description=f"precision of score > threshold {at}"
    )
    metrics["recall_at_threshold_test"] = Metric(
        value=op.recall, split=split, description=f"recall (anomalies flagged) {at}"
    )
    metrics["fpr_at_threshold_test"] = Metric(
        value=op.fpr, split=split, description=f"false-positive rate on normal rows {at}"
    )
    metrics["f1_at_threshold_test"] = Metric(value=op.f1, split=split, description=f"F1 {at}")

    notes = []
    if roc["autoencoder"] < best - BASELINE_TOLERANCE:
        notes.append(
            f"the autoencoder's ROC-AUC ({roc['autoencoder']:.4f}) is below the better baseline "
            f"({best:.4f}) by {best - roc['autoencoder']:.4f}, more than the allowed "
            f"{BASELINE_TOLERANCE}."
        )
    return AnomalyEvaluation(
        calibration=calibration,
        threshold=threshold,
        threshold_rule=rule,
        metrics=metrics,
        test_labels=y,
        test_scores=by_method,
        roc_auc=roc,
        average_precision=ap,
        operating_point=op,
        notes=notes,
    )
