"""Issue 17's shipped models, re-checked with onnxruntime (no torch) on their real test splits:
the stacked-autoencoder classifiers (accuracy recomputed on the full test split, from
``encoder.onnx`` + ``classifier.onnx``), the emoji VAE (held-out ELBO, novelty), and the
imputation figures of the tabular models (recomputed with :func:`service.runtime.impute.impute`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from service.runtime.impute import impute
from service.runtime.manifest import CLASSIFIER_FILE, Manifest
from training import recipe as recipes
from training.datasets import Dataset, load_dataset
from training.evaluate import meets, neg_elbo
from training.impute_study import ImputeOptions, remove_at_random, rmse
from training.novelty import novelty
from training.onnx_model import OnnxAutoencoder, verify_files

MODELS = Path(__file__).resolve().parents[2] / "models"
# model -> (dataset, accuracy target)
CLASSIFIERS = {
    "mnist-classifier": ("mnist", ">= 0.99"),
    "fashion-classifier": ("fashion-mnist", ">= 0.93"),
}


@cache
def dataset(name: str, **options: object) -> Dataset:
    return load_dataset(name, **options)


@cache
def model(name: str) -> tuple[Manifest, OnnxAutoencoder]:
    d = MODELS / name
    manifest = Manifest.read(d)
    verify_files(d, manifest)
    return manifest, OnnxAutoencoder(d)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifier_accuracy_recomputed_on_the_full_test_split(name: str) -> None:
    data_name, target = CLASSIFIERS[name]
    manifest, m = model(name)
    data = dataset(data_name)
    assert manifest.classes == data.label_names
    assert manifest.files.classifier is not None
    assert manifest.files.classifier.path == CLASSIFIER_FILE
    assert manifest.training.command == (
        f"python -m training train training/recipes/{name}.toml --out models/{name}"
    )
    logits = m.logits(data.test.x)
    assert logits.shape == (len(data.test), len(data.label_names or []))
    acc = float((logits.argmax(1) == data.test.y).mean())
    metric = manifest.metrics["accuracy_test"]
    assert acc == pytest.approx(metric.value, abs=1e-9)
    assert metric.target == target
    card = (MODELS / name / "card.md").read_text(encoding="utf-8")
    if meets(acc, target):
        assert "MISSED" not in card
    else:  # a miss is shown, with the figure, never hidden
        assert "✗ MISSED" in card
    for key in (
        "accuracy_test_scratch",
        "accuracy_test_pca50_logreg",
        "accuracy_test_1pct",
        "accuracy_test_scratch_1pct",
        "accuracy_test_pca50_logreg_1pct",
    ):
        assert 0.1 < manifest.metrics[key].value <= 1.0, key
    for png in ("confusion.png", "label_budget.png", "loss.png", "reconstructions.png"):
        assert (MODELS / name / png).is_file() and f"]({png})" in card


def test_emoji_vae_elbo_and_novelty_recomputed() -> None:
    manifest, m = model("emoji-vae")
    data = dataset("emoji", **manifest.training.extra["dataset_options"])
    assert manifest.family == "vae" and manifest.input.shape == [32, 32]
    assert len(data.test) == 54  # the held-out glyphs
    value = float(neg_elbo(m, data.test.x, samples=16, seed=1234).mean())
    assert value == pytest.approx(manifest.metrics["neg_elbo_test"].value, rel=1e-4)
    nov = novelty(m, data.train.x, 64, manifest.training.seed, manifest.latent.dim)
    assert nov.novel == pytest.approx(manifest.metrics["novelty_both"].value)
    assert nov.not_copy == pytest.approx(manifest.metrics["novelty_not_copy"].value)
    assert nov.not_noise == pytest.approx(manifest.metrics["novelty_not_noise"].value)
    # samples are images, not constant fields
    assert float(nov.samples.std()) > 0.02 and 0.0 <= nov.samples.min() <= nov.samples.max() <= 1


@pytest.mark.parametrize("name", ["shuttle", "breast-cancer"])
def test_tabular_imputation_recomputed_at_30_percent(name: str) -> None:
    manifest, m = model(name)
    if "impute_rmse_autoencoder_p30" not in manifest.metrics:
        pytest.fail(f"{name}: no imputation figures in the manifest (rebuild with make models)")
    data = load_dataset(manifest.training.dataset, **manifest.training.extra["dataset_options"])
    o = ImputeOptions.parse(recipes.load(name).evaluate.impute)
    x = data.test.x[: o.test_limit] if o.test_limit else data.test.x
    i = list(o.levels).index(0.3)
    mask = remove_at_random(x.astype(np.float64), 0.3, o.seed + i)
    mean = data.train.x[: o.train_limit].mean(0) if o.train_limit else data.train.x.mean(0)
    res = impute(
        m.reconstruct,
        np.where(mask, np.nan, x),
        start=mean.astype(np.float32),
        iterations=o.iterations,
        tolerance=o.tolerance,
    )
    ae = rmse(x.astype(np.float64), res.values.astype(np.float64), mask)
    base = rmse(x.astype(np.float64), np.where(mask, mean, x).astype(np.float64), mask)
    assert ae == pytest.approx(manifest.metrics["impute_rmse_autoencoder_p30"].value, rel=1e-4)
    assert base == pytest.approx(manifest.metrics["impute_rmse_mean_p30"].value, rel=1e-4)
    card = (MODELS / name / "card.md").read_text(encoding="utf-8")
    if name == "breast-cancer":  # a recipe target there
        assert ae <= 0.8 * base
        assert manifest.metrics["impute_rmse_vs_mean_p30"].target == "<= 0.8"
    else:  # shuttle misses issue 17's goal; its card says so with the figure
        assert ae > 0.8 * base
        assert f"Measured: {ae / base:.3f}x, **not met**." in card
