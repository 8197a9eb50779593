"""The tabular card's plots: ROC and PR curves of the three methods, score histograms."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from training.anomaly import METHODS, AnomalyEvaluation
from training.plots import _save

NAMES = {
    "autoencoder": "autoencoder",
    "isolation_forest": "IsolationForest",
    "pca": "PCA reconstruction",
}
COLORS = {"autoencoder": "tab:blue", "isolation_forest": "tab:orange", "pca": "tab:green"}


def roc_pr(ev: AnomalyEvaluation, roc_path: Path, pr_path: Path, title: str) -> None:
    """Two PNGs: ROC curves and precision-recall curves of every method on the test split."""
    y = ev.test_labels
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for m in METHODS:
        fpr, tpr, _ = roc_curve(y, ev.test_scores[m])
        ax.plot(fpr, tpr, lw=1.4, color=COLORS[m], label=f"{NAMES[m]} ({ev.roc_auc[m]:.4f})")
    op = ev.operating_point
    ax.plot([op.fpr], [op.recall], "o", color="tab:red", label="autoencoder at threshold")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (recall)")
    ax.set_title(f"{title}: ROC (AUC in the legend)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, roc_path)

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for m in METHODS:
        precision, recall, _ = precision_recall_curve(y, ev.test_scores[m])
        ax.plot(
            recall,
            precision,
            lw=1.4,
            color=COLORS[m],
            label=f"{NAMES[m]} (AP {ev.average_precision[m]:.4f})",
        )
    ax.plot([op.recall], [op.precision], "o", color="tab:red", label="autoencoder at threshold")
    ax.axhline(float(np.mean(y)), ls=":", color="grey", lw=1, label="anomaly rate")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: precision-recall", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    _save(fig, pr_path)


def histograms(ev: AnomalyEvaluation, path: Path, title: str) -> None:
    """Scores of normal vs anomalous test rows, one panel per method (log-spaced bins)."""
    y = ev.test_labels.astype(bool)
    fig, axes = plt.subplots(1, len(METHODS), figsize=(13, 3.4))
    for ax, m in zip(axes, METHODS, strict=True):
        s = ev.test_scores[m]
        positive = m != "isolation_forest"  # MSEs are > 0: log bins; forest scores are not
        lo, hi = float(s.min()), float(s.max())
        if positive and lo > 0:
            bins = np.geomspace(lo, hi * 1.0001, 50)
            ax.set_xscale("log")
        else:
            bins = np.linspace(lo, hi + 1e-12, 50)
        ax.hist(s[~y], bins=bins, alpha=0.6, color="tab:blue", label=f"normal ({(~y).sum()})")
        ax.hist(s[y], bins=bins, alpha=0.6, color="tab:red", label=f"anomaly ({y.sum()})")
        if m == "autoencoder":
            ax.axvline(ev.threshold, color="black", ls="--", lw=1, label="threshold")
            ax.set_xlabel("MSE (standardised space)")
        else:
            ax.set_xlabel("score (higher = more anomalous)")
        ax.set_title(NAMES[m], fontsize=10)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("test rows")
    fig.suptitle(f"{title}: score histograms, normal vs anomalous test rows", fontsize=10)
    _save(fig, path)


def draw(ev: AnomalyEvaluation, work: Path, title: str) -> dict[str, tuple[str, str]]:
    """Every tabular plot into ``work``; returns file -> (title, caption) for the card."""
    roc_pr(ev, work / "roc.png", work / "pr.png", title)
    histograms(ev, work / "score_histograms.png", title)
    return {
        "roc.png": (
            "ROC curves",
            "Autoencoder, IsolationForest and PCA reconstruction error on the same test split; "
            "the dot is the autoencoder at its threshold.",
        ),
        "pr.png": ("Precision-recall curves", "Same split and methods as the ROC curves."),
        "score_histograms.png": (
            "Score histograms",
            "Scores of normal and anomalous test rows (log counts); the dashed line is the "
            "autoencoder's threshold.",
        ),
    }
