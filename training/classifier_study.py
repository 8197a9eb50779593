"""What a stacked-autoencoder classifier's card reports (issue 17), all from one run:

- the shipped model's test accuracy, measured through ``encoder.onnx`` + ``classifier.onnx``;
- a confusion matrix and a per-class report (precision, recall, F1);
- beside it, trained in the same run on the same splits: the same network from scratch (no
  pretraining, the same fine-tuning budget) and logistic regression on PCA-50 codes;
- all three again with only 1% of the labels (stratified): the pretrained stack starts from the
  weights greedy pretraining learnt on unlabelled training images, PCA is fitted on every
  training image; the from-scratch network sees the 1% only.

The comparison networks are evaluation-only torch models (not shipped).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from service.runtime.manifest import Metric
from training.baselines import PCA
from training.datasets import Dataset
from training.image_study import Study
from training.onnx_model import OnnxAutoencoder
from training.plots import _save
from training.recipe import Recipe
from training.stacked import (
    StackedConvClassifier,
    StackedOptions,
    StackedResult,
    finetune,
    torch_predict,
)
from training.train import seed_everything

log = logging.getLogger(__name__)


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of ``fraction`` of each class (at least one per class), seeded, sorted."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = max(1, round(fraction * len(idx)))
        picked.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(picked))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    cm = np.zeros((classes, classes), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def per_class_report(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    precision = tp / np.maximum(cm.sum(0), 1)
    recall = tp / np.maximum(cm.sum(1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return precision, recall, f1


def logreg_pca(pca: PCA, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Predictions of a multinomial logistic regression on (standardised) PCA codes."""
    codes = pca.encode(x)
    scale = codes.std(0) + 1e-8
    clf = LogisticRegression(max_iter=1000, random_state=seed)
    clf.fit(codes / scale, y)
    pred: np.ndarray = clf.predict(pca.encode(x_test) / scale)
    return pred


def _network(res: StackedResult, seed: int, pretrained: bool) -> StackedConvClassifier:
    model = res.model
    assert isinstance(model, StackedConvClassifier)
    torch.manual_seed(seed)
    fresh = StackedConvClassifier(model.cfg, model.shape)
    if pretrained:
        fresh.load_state_dict(res.pretrained)
    return fresh


def classifier_study(
    onnx: OnnxAutoencoder, data: Dataset, recipe: Recipe, res: StackedResult, quiet: bool = True
) -> Study:
    """Metrics, card sections and figures of a stacked-AE classifier (see the module doc)."""
    assert data.train.y is not None and data.test.y is not None and data.label_names
    opts = StackedOptions.parse(recipe.classifier)
    t = recipe.train
    names = data.label_names
    k = len(names)
    xtr, ytr, xte, yte = data.train.x, data.train.y, data.test.x, data.test.y
    test_name = data.split_name("test")
    study = Study()
    timings: dict[str, float] = {}

    pred = onnx.logits(xte).argmax(1)
    acc = float((pred == yte).mean())
    study.metrics["accuracy_test"] = Metric(
        value=acc,
        split=test_name,
        description="accuracy of encoder.onnx + classifier.onnx (pretrained, fine-tuned, "
        "all training labels)",
    )

    def run(label: str, fn: object) -> np.ndarray:
        started = time.perf_counter()
        out: np.ndarray = fn()  # type: ignore[operator]
        timings[label] = time.perf_counter() - started
        log.info("%s: %s in %.0fs", recipe.name, label, timings[label])
        return out

    common: dict[str, Any] = {
        "batch": t.batch_size or 128,
        "lr_decay": t.lr_decay,
        "lr_milestones": t.lr_milestones,
        "opts": opts,
        "quiet": quiet,
    }

    def scratch_full() -> np.ndarray:
        gen = seed_everything(recipe.seed + 1, t.threads)
        net = _network(res, recipe.seed + 1, pretrained=False)
        finetune(
            net,
            xtr,
            ytr,
            steps_or_epochs=("epochs", recipe.epochs),
            lr=t.lr,
            gen=gen,
            desc="from scratch",
            **common,
        )
        return torch_predict(net, xte)

    small = stratified_subset(ytr, opts.small_fraction, recipe.seed)

    def small_run(pretrained: bool) -> np.ndarray:
        gen = seed_everything(recipe.seed + 2, t.threads)
        net = _network(res, recipe.seed + 2, pretrained=pretrained)
        finetune(
            net,
            xtr[small],
            ytr[small],
            steps_or_epochs=("steps", opts.small_steps),
            lr=t.lr,
            gen=gen,
            desc="1% labels",
            **common,
        )
        return torch_predict(net, xte)

    pca = PCA.fit(xtr, opts.pca_components)
    preds = {
        ("scratch", "full"): run("scratch, all labels", scratch_full),
        ("pca", "full"): run(
            "PCA logreg, all labels", lambda: logreg_pca(pca, xtr, ytr, xte, recipe.seed)
        ),
        ("stacked", "small"): run("stacked, 1%", lambda: small_run(True)),
        ("scratch", "small"): run("scratch, 1%", lambda: small_run(False)),
        ("pca", "small"): run(
            "PCA logreg, 1%", lambda: logreg_pca(pca, xtr[small], ytr[small], xte, recipe.seed)
        ),
    }
    accs = {key: float((p == yte).mean()) for key, p in preds.items()}
    accs[("stacked", "full")] = acc
    pc = opts.pca_components
    what = {
        "stacked": "the stacked autoencoder (greedy pretraining, then fine-tuning)",
        "scratch": "the same network trained from scratch (no pretraining, same fine-tuning)",
        "pca": f"logistic regression on PCA-{pc} codes (PCA fitted on every training image)",
    }
    share = {
        "full": f"all {len(xtr)} training labels",
        "small": f"{len(small)} labels ({opts.small_fraction:.0%}, stratified, seed {recipe.seed})",
    }
    key_name = {"stacked": "", "scratch": "_scratch", "pca": f"_pca{pc}_logreg"}
    for (model_key, labels), value in accs.items():
        if (model_key, labels) == ("stacked", "full"):
            continue
        suffix = key_name[model_key] + ("_1pct" if labels == "small" else "")
        study.metrics[f"accuracy_test{suffix}"] = Metric(
            value=value,
            split=test_name,
            description=f"baseline/comparison: {what[model_key]}, {share[labels]}",
        )

    rows = [
        "### Pretraining against training from scratch and PCA + logistic regression",
        "",
        f"Test accuracy ({test_name}); every row trained in this run. With 1% of the labels the "
        f"networks fine-tune for {opts.small_steps} minibatch steps. Without labels, greedy "
        f"pretraining saw {min(opts.pretrain_limit or len(xtr), len(xtr)):,} training images and "
        f"PCA all {len(xtr):,}.",
        "",
        f"| model | all {len(xtr)} labels | 1% ({len(small)} labels) |",
        "| --- | --- | --- |",
    ]
    for model_key, title in (
        ("stacked", "stacked AE: greedy pretraining + fine-tuning (this model)"),
        ("scratch", "same network from scratch"),
        ("pca", f"logistic regression on PCA-{pc}"),
    ):
        full, part = accs[(model_key, "full")], accs[(model_key, "small")]
        bold = model_key == "stacked"
        cells = [f"**{full:.4f}**" if bold else f"{full:.4f}", f"{part:.4f}"]
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    phases = ", ".join(f"{k_.removesuffix('_s')} {v:.0f} s" for k_, v in res.phases.items())
    rows += [
        "",
        f"Build time of this model: {phases}. Comparison runs: "
        + ", ".join(f"{k_} {v:.0f} s" for k_, v in timings.items())
        + ".",
    ]
    study.sections.append("\n".join(rows))

    cm = confusion(yte, pred, k)
    prec, rec, f1 = per_class_report(cm)
    report = [
        "### Per-class report (this model)",
        "",
        "| class | precision | recall | F1 | test samples |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, name in enumerate(names):
        report.append(
            f"| {name} | {prec[i]:.4f} | {rec[i]:.4f} | {f1[i]:.4f} | {int(cm[i].sum())} |"
        )
    report.append(f"| **all** | | | macro F1 {f1.mean():.4f} | {len(yte)} |")
    study.sections.append("\n".join(report))
    study.metrics["macro_f1_test"] = Metric(
        value=float(f1.mean()), split=test_name, description="macro-averaged F1 of this model"
    )

    study.figures["confusion.png"] = (
        "Confusion matrix",
        f"Test images by true class (rows) and this model's prediction (columns); accuracy "
        f"{acc:.4f}.",
        lambda p: confusion_plot(cm, names, p, f"{recipe.name}: confusion matrix (test)"),
    )
    study.figures["label_budget.png"] = (
        "Accuracy with all and with 1% of the labels",
        "The three models of the table above, side by side.",
        lambda p: budget_plot(accs, p, pc),
    )
    return study


def confusion_plot(cm: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    k = len(names)
    fig, ax = plt.subplots(figsize=(0.6 * k + 2.5, 0.6 * k + 2))
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def budget_plot(accs: dict[tuple[str, str], float], path: Path, pc: int) -> Path:
    labels = ["stacked AE", "from scratch", f"PCA-{pc} + logreg"]
    keys = ["stacked", "scratch", "pca"]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for off, (budget, title) in zip(
        (-0.2, 0.2), (("full", "all labels"), ("small", "1% labels")), strict=True
    ):
        vals = [accs[(k, budget)] for k in keys]
        bars = ax.bar(x + off, vals, 0.4, label=title)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    lo = min(accs.values())
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.set_xticks(x, labels)
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower right")
    return _save(fig, path)
