"""Choose the ``breast-cancer`` recipe without its test split (issue 17): repeated random splits.

python -m training.select_breast_cancer '[{}, {"arch": {"latent_dim": 12, "hidden": [32]}}]'

Only the rows outside the recipe's test split are used (the seed-0 split's training and
validation rows: 286 benign, 170 malignant). Each repetition (seeds 100, 101, ...) draws 215
benign rows to train on (as many as the recipe's training split) and scores the other 71 benign
rows plus 42 malignant ones (the test split's sizes), standardised with the training rows' mean
and std. Each configuration (changes to the recipe: ``arch``, ``train``, ``epochs``, ``noise``) is
trained on every repetition with the recipe's seed and ranked by its mean ROC-AUC margin over
scikit-learn's IsolationForest (200 trees, random_state 0) fitted on the same rows, as the card's
baseline is; and by the recipe's other target, imputation at 30% missing (values removed at random
from the scored rows as in training.impute_study, the autoencoder's RMSE over mean imputation's,
<= 0.8). Prints one line per configuration: both per repetition, means, the margin's minimum.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from service.runtime.impute import impute
from training.datasets import Dataset, load_dataset
from training.datasets.base import Split
from training.datasets.tabular import split_indices
from training.impute_study import ImputeOptions, remove_at_random, rmse
from training.models import Autoencoder  # before training.train (they import each other)
from training.recipe import NoiseOptions, Recipe, load
from training.train import train


def folds(base: Recipe, reps: int) -> list[tuple[Dataset, float]]:
    """``reps`` (dataset, IsolationForest ROC-AUC) pairs from the non-test rows."""
    d0 = load_dataset(base.dataset, **base.dataset_options)
    raw = load_breast_cancer()
    x, y = raw.data, (raw.target == 0).astype(np.int64)  # malignant = 1
    tr, va, _ = split_indices(y, 0.2, 0.2, 0)  # the recipe's split; its test rows stay out
    rest = np.sort(np.concatenate([tr, va]))
    out = []
    for rep in range(reps):
        rng = np.random.default_rng(100 + rep)
        benign = rng.permutation(rest[y[rest] == 0])
        malignant = rng.permutation(rest[y[rest] == 1])
        fit, held = benign[:215], np.concatenate([benign[215:], malignant[:42]])
        mu, sd = x[fit].mean(0), x[fit].std(0)

        def split(i: np.ndarray, mu: np.ndarray = mu, sd: np.ndarray = sd) -> Split:
            return Split(x=((x[i] - mu) / sd).astype(np.float32), y=y[i].astype(np.int8))

        d = dataclasses.replace(d0, train=split(fit), val=split(held), test=split(held))
        forest = IsolationForest(n_estimators=200, random_state=0).fit(d.train.x)
        assert d.val.y is not None
        out.append((d, float(roc_auc_score(d.val.y, -forest.score_samples(d.val.x)))))
    return out


def configure(base: Recipe, cfg: dict[str, Any]) -> Recipe:
    return dataclasses.replace(
        base,
        epochs=cfg.get("epochs", base.epochs),
        arch_options={**base.arch_options, **cfg.get("arch", {})},
        train=dataclasses.replace(base.train, **cfg.get("train", {})),
        noise=NoiseOptions(**cfg["noise"]) if "noise" in cfg else base.noise,
    )


def margins(recipe: Recipe, data: list[tuple[Dataset, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per split: ROC-AUC margin over IsolationForest, and the imputation RMSE over mean
    imputation's at 30% missing (the recipe's other target), both on the split's scored rows."""
    o = ImputeOptions.parse(recipe.evaluate.impute)
    auc, imp = [], []
    for d, forest_auc in data:
        model: Autoencoder = train(recipe, d, quiet=True).model

        def reconstruct(x: np.ndarray, model: Autoencoder = model) -> np.ndarray:
            with torch.no_grad():
                out: np.ndarray = model(torch.from_numpy(x.astype(np.float32))).x_hat.numpy()
            return out

        x, y = d.val.x, d.val.y
        assert y is not None
        auc.append(roc_auc_score(y, ((reconstruct(x) - x) ** 2).mean(1)) - forest_auc)
        x64 = x.astype(np.float64)
        mask = remove_at_random(x64, 0.3, o.seed + list(o.levels).index(0.3))
        mean = d.train.x.mean(0)
        res = impute(
            reconstruct,
            np.where(mask, np.nan, x),
            start=mean.astype(np.float32),
            iterations=o.iterations,
            tolerance=o.tolerance,
        )
        filled = rmse(x64, res.values.astype(np.float64), mask)
        imp.append(filled / rmse(x64, np.where(mask, mean, x).astype(np.float64), mask))
    return np.array(auc), np.array(imp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", help="a JSON list of changes to the recipe ({} = as it is)")
    parser.add_argument("--reps", type=int, default=10, help="random splits (seeds 100, ...)")
    parser.add_argument("--recipe", default="breast-cancer")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = load(args.recipe)
    data = folds(base, args.reps)
    forest = np.array([f for _, f in data])
    print(f"IsolationForest per split {np.round(forest, 4)} mean {forest.mean():.4f}", flush=True)
    for cfg in json.loads(args.configs):
        m, imp = margins(configure(base, cfg), data)
        print(
            f"{json.dumps(cfg)} margin vs IsolationForest per split {np.round(m, 4)} "
            f"mean {m.mean():.4f} min {m.min():.4f}; imputation RMSE / mean's at 30% "
            f"{np.round(imp, 3)} mean {imp.mean():.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
