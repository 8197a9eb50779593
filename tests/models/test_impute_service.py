"""``POST /impute``'s numbers on the shipped models: the runtime's imputation (what the data plane
runs, raw wire values in and out) reproduces the 30%-missing figures the cards report, on the
same held-out samples and removal masks as ``training/impute_study.py``.

Tabular models start from the training mean as the study does (0 once standardised): the same
RMSE to 0.1% (the service standardises float32 raw values; the study starts standardised).
Images start from the decoded prior mean (the manifest holds no pixel means) where the study
starts from the pixel means: within 2% of the card, and still the best of the four."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.runtime.repository import load_model
from service.runtime.sessions import OnnxOptions
from training.datasets import load_dataset
from training.impute_study import ImputeOptions, remove_at_random, rmse
from training.recipe import load as load_recipe

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("name", ["shuttle", "breast-cancer", "mnist"])
def test_service_imputation_reproduces_the_card(name: str) -> None:
    runtime = load_model(MODELS / name, OnnxOptions(), 4096)
    manifest = runtime.manifest
    options = ImputeOptions.parse(load_recipe(name).evaluate.impute)
    data = load_dataset(manifest.training.dataset, **manifest.training.extra["dataset_options"])
    test = data.test.x[: options.test_limit] if options.test_limit else data.test.x
    n = len(test)
    x = test.reshape(n, -1).astype(np.float64)  # the study's space (tabular: standardised)
    level = options.levels.index(0.3)
    mask = remove_at_random(x, 0.3, options.seed + level).reshape(n, *runtime.shape)
    wire = test.reshape(n, *runtime.shape).astype(np.float32)
    scaler = manifest.input.scaler
    if scaler is not None:  # clients send raw values
        wire = (wire * np.float32(scaler.std) + np.float32(scaler.mean)).astype(np.float32)
    holes = np.where(mask, np.nan, wire).astype(np.float32)
    res = runtime.imputation(holes, mask, options.iterations, options.tolerance)
    assert np.array_equal(res.filled, mask)
    assert np.array_equal(res.values[~mask], wire[~mask])  # known values as sent
    got = res.values.reshape(n, -1).astype(np.float64)
    if scaler is not None:
        got = (got - np.asarray(scaler.mean)) / np.asarray(scaler.std)
    error = rmse(x, got, mask.reshape(n, -1))
    card = manifest.metrics["impute_rmse_autoencoder_p30"].value
    if runtime.kind == "tabular":
        assert error == pytest.approx(card, rel=1e-3)
    else:
        assert error == pytest.approx(card, rel=0.02)
        for other in ("mean", "knn", "iterative"):
            assert error < manifest.metrics[f"impute_rmse_{other}_p30"].value, other
