"""Imputation measured (issue 17), configured by a recipe's ``[evaluate.impute]``.

Held-out samples (the test split) lose values at random: each entry independently with
probability p (10%, 30%, 50%; seeded). Four methods fill them, all fitted on the training split
only: the training mean of each input position; scikit-learn's ``KNNImputer`` (5 neighbours
among training samples) and ``IterativeImputer`` (chained Bayesian ridge regressions); and this
model, iterating reconstruction with the known values clamped
(:func:`service.runtime.impute.impute`, the very function the service runs, on the exported ONNX
files). RMSE over the removed entries
only, in the model's input space (tabular: standardised units; images: pixel values in [0, 1]).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from service.runtime.impute import impute
from service.runtime.manifest import Metric
from training import image_plots
from training.datasets import Dataset
from training.image_study import Study
from training.onnx_model import OnnxAutoencoder
from training.plots import _save
from training.recipe import build_options

log = logging.getLogger(__name__)

METHODS = ("mean", "knn", "iterative", "autoencoder")
TITLES = {
    "mean": "training mean",
    "knn": "KNNImputer (k=5)",
    "iterative": "IterativeImputer",
    "autoencoder": "this autoencoder (iterated)",
}


@dataclass(frozen=True)
class ImputeOptions:
    levels: tuple[float, ...] = (0.1, 0.3, 0.5)
    seed: int = 4321
    # Held-out samples used (the first ones of the test split; None: all).
    test_limit: int | None = None
    # Training samples the KNN and iterative imputers are fitted on (None: all).
    train_limit: int | None = None
    # IterativeImputer: rounds, and predictors per feature (None: every other feature).
    iterative_max_iter: int = 10
    iterative_nearest: int | None = None
    # The autoencoder's fixed-point iteration.
    iterations: int = 100
    tolerance: float = 1e-4
    # Issue 17's goal at 30% missing (this model's RMSE / mean imputation's), stated in the card
    # as met or not (a recipe target instead would fail the build when missed).
    goal_vs_mean_p30: float | None = None

    @classmethod
    def parse(cls, table: dict[str, Any]) -> ImputeOptions:
        opts: ImputeOptions = build_options(cls, table, "[evaluate.impute]")
        return opts


def remove_at_random(x: np.ndarray, p: float, seed: int) -> np.ndarray:
    """A mask (True = removed) with each entry removed independently with probability ``p``."""
    mask: np.ndarray = np.random.default_rng(seed).random(x.shape) < p
    return mask


def rmse(x: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((filled[mask] - x[mask]) ** 2)))


def _sklearn_fill(name: str, train: np.ndarray, holes: np.ndarray, o: ImputeOptions) -> np.ndarray:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer

    imp: Any
    if name == "knn":
        imp = KNNImputer(n_neighbors=5)
    else:
        imp = IterativeImputer(
            max_iter=o.iterative_max_iter,
            n_nearest_features=o.iterative_nearest,
            random_state=o.seed,
        )
    imp.fit(train)
    out: np.ndarray = imp.transform(holes)
    # sklearn drops columns that are empty in the fit data; none are here (complete training).
    return out


def impute_study(model: OnnxAutoencoder, data: Dataset, table: dict[str, Any]) -> Study:
    o = ImputeOptions.parse(table)
    test = data.test.x[: o.test_limit] if o.test_limit else data.test.x
    train = data.train.x[: o.train_limit] if o.train_limit else data.train.x
    n, shape = len(test), test.shape[1:]
    flat_train = train.reshape(len(train), -1).astype(np.float64)
    mean = flat_train.mean(0)
    x = test.reshape(n, -1).astype(np.float64)
    results: dict[float, dict[str, float]] = {}
    seconds: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    examples: dict[str, np.ndarray] = {}
    for i, p in enumerate(o.levels):
        mask = remove_at_random(x, p, o.seed + i)
        holes = np.where(mask, np.nan, x)
        fills: dict[str, np.ndarray] = {}
        started = time.perf_counter()
        fills["mean"] = np.where(mask, mean, x)
        seconds["mean"] += time.perf_counter() - started
        for name in ("knn", "iterative"):
            started = time.perf_counter()
            fills[name] = _sklearn_fill(name, flat_train, holes, o)
            seconds[name] += time.perf_counter() - started
        started = time.perf_counter()
        res = impute(
            model.reconstruct,
            holes.reshape(n, *shape).astype(np.float32),
            start=mean.reshape(shape).astype(np.float32),
            iterations=o.iterations,
            tolerance=o.tolerance,
        )
        seconds["autoencoder"] += time.perf_counter() - started
        fills["autoencoder"] = res.values.reshape(n, -1).astype(np.float64)
        results[p] = {m: rmse(x, fills[m], mask) for m in METHODS}
        log.info(
            "impute p=%.2f: %s (AE steps: median %d)", p, results[p], int(np.median(res.iterations))
        )
        if p == 0.5 or (i == len(o.levels) - 1 and not examples):
            examples = {"input": x, "holes": np.where(mask, 0.5, x), **fills}
    return _report(data, o, results, seconds, examples, n, shape)


def _report(
    data: Dataset,
    o: ImputeOptions,
    results: dict[float, dict[str, float]],
    seconds: dict[str, float],
    examples: dict[str, np.ndarray],
    n: int,
    shape: tuple[int, ...],
) -> Study:
    study = Study()
    where = (
        (f"first {n} of " if o.test_limit else "")
        + data.split_name("test")
        + f", entries removed at random (seed {o.seed})"
    )
    units = "standardised units" if data.kind == "tabular" else "pixel values in [0, 1]"
    for p, row in results.items():
        key = f"p{round(100 * p)}"
        for m in METHODS:
            study.metrics[f"impute_rmse_{m}_{key}"] = Metric(
                value=row[m],
                split=where,
                description=f"RMSE ({units}) over the removed entries at {p:.0%} missing: "
                f"{TITLES[m]}",
            )
        study.metrics[f"impute_rmse_vs_mean_{key}"] = Metric(
            value=row["autoencoder"] / row["mean"],
            split=where,
            description=f"this model's imputation RMSE / mean imputation's, {p:.0%} missing",
        )
        best = min(row[m] for m in METHODS if m != "autoencoder")
        study.metrics[f"impute_rmse_vs_best_baseline_{key}"] = Metric(
            value=row["autoencoder"] / best,
            split=where,
            description=f"this model's imputation RMSE / the best of mean, KNN and iterative "
            f"imputation, {p:.0%} missing (< 1: the best of the four)",
        )
    fitted = f"the first {o.train_limit:,}" if o.train_limit else "all"
    nearest = (
        f", {o.iterative_nearest} nearest features per regression" if o.iterative_nearest else ""
    )
    lines = [
        "### Imputation: filling in missing values",
        "",
        f"{n:,} held-out samples ({data.split_name('test')}) with entries removed at random "
        f"(each with probability p). RMSE ({units}) over the removed entries; lower is better. "
        f"Baselines fitted on {fitted} training samples: per-position training mean, "
        f"`KNNImputer(n_neighbors=5)`, `IterativeImputer(max_iter={o.iterative_max_iter}"
        f"{nearest})`. This model: `service.runtime.impute.impute` on the ONNX files, starting "
        "from the "
        f"training mean, at most {o.iterations} reconstructions (tolerance {o.tolerance:g}).",
        "",
        "| missing | " + " | ".join(TITLES[m] for m in METHODS) + " | model / mean |",
        "| --- " * (len(METHODS) + 2) + "|",
    ]
    for p, row in results.items():
        best = min(row.values())
        cells = [f"**{row[m]:.4f}**" if row[m] == best else f"{row[m]:.4f}" for m in METHODS]
        lines.append(
            f"| {p:.0%} | " + " | ".join(cells) + f" | {row['autoencoder'] / row['mean']:.3f} |"
        )
    if o.goal_vs_mean_p30 is not None and 0.3 in results:
        ratio = results[0.3]["autoencoder"] / results[0.3]["mean"]
        met = ratio <= o.goal_vs_mean_p30
        lines += [
            "",
            f"Goal (issue 17): at 30% missing, at most {o.goal_vs_mean_p30:g}x the RMSE of mean "
            f"imputation. Measured: {ratio:.3f}x, " + ("**met**." if met else "**not met**."),
        ]
    lines += [
        "",
        "Time for all levels: "
        + ", ".join(f"{TITLES[m]} {seconds[m]:.1f} s" for m in METHODS)
        + " (fitting included).",
    ]
    study.sections.append("\n".join(lines))
    study.figures["impute.png"] = (
        "Imputation RMSE",
        "RMSE over the removed entries at each missing fraction, the four methods side by side.",
        lambda path: impute_plot(results, path, units),
    )
    if data.kind == "image" and len(shape) == 2 and examples:
        k = 12
        rows = [
            (name if name != "holes" else "removed (grey)", examples[name][:k].reshape(k, *shape))
            for name in ("input", "holes", *METHODS)
        ]
        study.figures["impute_examples.png"] = (
            "Inpainting examples",
            "Held-out images with half their pixels removed (grey), and each method's filling.",
            lambda path: image_plots.image_rows(
                [(TITLES.get(lbl, lbl), img) for lbl, img in rows], path
            ),
        )
    return study


def impute_plot(results: dict[float, dict[str, float]], path: Path, units: str) -> Path:
    levels = list(results)
    xs = np.arange(len(levels))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / len(METHODS)
    for j, m in enumerate(METHODS):
        vals = [results[p][m] for p in levels]
        ax.bar(xs + (j - (len(METHODS) - 1) / 2) * width, vals, width, label=TITLES[m])
    ax.set_xticks(xs, [f"{p:.0%} missing" for p in levels])
    ax.set_ylabel(f"RMSE ({units})")
    ax.legend(fontsize=8)
    return _save(fig, path)
