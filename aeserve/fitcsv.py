"""``aeserve fit-csv``: a tabular anomaly model from a user's CSV in one command.

The CSV is read by the ``user-csv`` dataset (:mod:`training.datasets.usercsv`: column kinds,
one-hot categories, missing cells, the split); a recipe is made in memory with an architecture
sized from the features (the shipped ``shuttle`` recipe's shape: two tanh layers and a small
linear code); :func:`training.pipeline.build` trains, exports, evaluates, calibrates and writes
the folder as for every zoo model, with the columns in the manifest's ``tabular`` section.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from aeserve.errors import UserError
from aeserve.modeldir import safe_name, target

# About this many optimiser steps whatever the size of the file (shuttle: 40 epochs of 107
# batches); the epoch count is bounded for tiny and huge files.
STEPS = 4000
BATCH = 256
EPOCHS_MIN, EPOCHS_MAX = 10, 300


def architecture(n_features: int, latent_dim: int | None) -> dict[str, Any]:
    """Two tanh layers (the next power of two at or above 2F, at least 16; then half) and a code
    of about F/3 dimensions (2..16): shuttle's 9 features give its recipe's 32-16-3."""
    h1 = min(256, max(16, 2 ** math.ceil(math.log2(2 * n_features))))
    latent = latent_dim or min(16, max(2, round(n_features / 3)))
    return {
        "kind": "dense_ae",
        "latent_dim": latent,
        "hidden": [h1, h1 // 2],
        "activation": "tanh",
        "output": "identity",
    }


def default_epochs(n_train: int) -> int:
    batches = max(1, math.ceil(n_train / BATCH))
    return min(EPOCHS_MAX, max(EPOCHS_MIN, math.ceil(STEPS / batches)))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


def fit_csv(args: argparse.Namespace, models: Path, command: str) -> Path:
    csv_path: Path = args.csv
    if not csv_path.is_file():
        raise UserError(f"no such file: {csv_path}")
    for flag, value in (("--epochs", args.epochs), ("--latent-dim", args.latent_dim)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.max_categories < 1:
        raise UserError(f"--max-categories must be at least 1, got {args.max_categories}")
    if args.id_column is not None and args.id_column == args.label:
        raise UserError("--id-column and --label name the same column")
    rule = args.threshold_rule or "quantile:0.99"
    _check_rule(rule, labelled=args.label is not None)
    name = args.name or safe_name(_stem(csv_path))
    out = target(models, name, args.force)
    try:
        import torch  # noqa: F401  (only to say what is missing before reading the file)
    except ImportError:
        raise UserError("fit-csv trains with PyTorch: pip install 'aeserve[train]'") from None
    from training.datasets import load_dataset
    from training.pipeline import build
    from training.recipe import parse

    drop = [*args.drop, *([args.id_column] if args.id_column else [])]
    options: dict[str, Any] = {
        "path": str(csv_path),
        "label": args.label,
        "anomaly_values": list(args.anomaly_values),
        "drop": drop,
        "categorical": list(args.categorical),
        "missing": args.missing,
        "max_categories": args.max_categories,
        "dataset_name": name,
        "seed": args.seed,
        "train_on": args.train_on,
    }
    _say(args, f"reading {csv_path}")
    try:
        data = load_dataset("user-csv", **options)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    arch = architecture(data.shape[0], args.latent_dim)
    epochs = args.epochs or default_epochs(len(data.train))
    columns = data.tabular.columns if data.tabular else []
    n_cat = sum(c.kind == "categorical" for c in columns)
    _say(
        args,
        f"{len(columns)} columns ({n_cat} categorical) -> {data.shape[0]} features; training "
        f"{arch['hidden']} -> {arch['latent_dim']} on {len(data.train):,} rows for {epochs} epochs",
    )
    recipe = parse(
        {
            "name": name,
            "description": args.description
            or f"Dense autoencoder fitted on {csv_path.name} by `aeserve fit-csv`; anomaly "
            "score = MSE over the standardised features.",
            "seed": args.seed,
            "epochs": epochs,
            "dataset": {"name": "user-csv", **{k: v for k, v in options.items() if v is not None}},
            "architecture": arch,
            "training": {
                "lr": 0.003,
                "batch_size": BATCH,
                "lr_decay": 0.3,
                "lr_milestones": [0.6, 0.85],
            },
            "score": {"threshold_rule": rule},
        }
    )
    result = build(recipe, out, command, quiet=args.quiet, data=data)
    m = result.manifest
    auc = m.metrics.get("roc_auc_test")
    _say(
        args,
        f"trained in {m.training.duration_s:.1f} s; threshold {m.score.threshold:.4g} ({rule})"
        + (f"; test ROC-AUC {auc.value:.4f}" if auc else "; unlabelled: calibration only"),
    )
    return out


def _check_rule(rule: str, labelled: bool) -> None:
    name, _, arg = rule.partition(":")
    if name == "best_f1" and not arg:
        if not labelled:
            raise UserError("--threshold-rule best_f1 needs labels (--label COL)")
        return
    try:
        q = float(arg) if arg else 0.99
    except ValueError:
        q = -1.0
    if name != "quantile" or not 0 <= q <= 1:
        raise UserError(f"--threshold-rule {rule!r}: use quantile:Q (Q in [0, 1]) or best_f1")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr)
