"""The image studies ([evaluate.images]) and their baselines, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.runtime.manifest import Manifest
from training.baselines import PCA, knn_accuracy, psnr, roc_auc
from training.datasets import Dataset, Split, load_dataset
from training.image_study import ImageEvalOptions, OneClassOptions, one_class_protocol
from training.pipeline import BuildResult, build
from training.recipe import parse

ONE_CLASS: dict[str, Any] = {
    "train_per_class": 60,
    "epochs": 2,
    "latent_dim": 2,
    "score": "mse",
    "weight_decay": 1e-4,
    "note": "Chosen on the validation split.",
}


def _tiny_digits(one_class: dict[str, Any]) -> dict[str, Any]:
    """A tiny denoising model on digits with every study switched on (seconds)."""
    return {
        "name": "tiny-digits",
        "seed": 0,
        "epochs": 30,
        "dataset": {"name": "digits"},
        "architecture": {"kind": "dense_ae", "latent_dim": 2, "hidden": [32]},
        "training": {"lr": 0.01, "batch_size": 128},
        "noise": {"kind": "gaussian", "level": 0.3},
        "evaluate": {
            "targets": {"psnr_gain_db": ">= -100", "knn5_accuracy": ">= 0.0"},
            "images": {
                "pca": True,
                "knn": 5,
                "one_class": one_class,
                "variants": {
                    "train_limit": 200,
                    "epochs": 2,
                    "test_limit": 50,
                    "regularizers": {"l1": {"kind": "l1", "weight": 0.1}},
                },
            },
        },
    }


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    out = tmp_path_factory.mktemp("study") / "tiny-digits"
    return build(
        parse(_tiny_digits(ONE_CLASS)), out, "python -m training train tiny-digits", quiet=True
    )


def test_study_metrics_reach_manifest_and_card(digits_build: BuildResult) -> None:
    man = Manifest.read(digits_build.out_dir)
    for key in (
        "bce_test",
        "mse_test",
        "bce_test_pca2",
        "mse_test_pca2",
        "mse_reduction_vs_pca",
        "knn5_accuracy",
        "knn5_accuracy_pca2",
        "psnr_noisy_db",
        "psnr_denoised_db",
        "psnr_gain_db",
        "one_class_auc_ae_mean",
        "one_class_auc_pca_mean",
        "one_class_auc_ae_bce_mean",
        "one_class_auc_ae_mean_val",
        "one_class_auc_pca_mean_val",
        "variant_plain_bce_test",
        "variant_l1_mean_abs_code",
        "variant_l1_sensitivity",
    ):
        assert key in man.metrics, key
    m = man.metrics
    assert m["psnr_gain_db"].target == ">= -100"  # targets may name study metrics
    np.testing.assert_allclose(
        m["psnr_gain_db"].value, m["psnr_denoised_db"].value - m["psnr_noisy_db"].value
    )
    np.testing.assert_allclose(
        m["mse_reduction_vs_pca"].value, 1 - m["mse_test"].value / m["mse_test_pca2"].value
    )
    assert 0.5 < m["one_class_auc_pca_mean"].value <= 1.0
    card = (digits_build.out_dir / "card.md").read_text()
    assert "score = per-sample squared error" in m["one_class_auc_ae_mean"].description
    assert "weight decay 0.0001" in m["one_class_auc_ae_mean"].description
    for text in (
        "Against PCA",
        "5-NN accuracy",
        "one-class protocol",
        "autoencoder AUC, BCE score",
        "On the validation split",
        "Chosen on the validation split.",
        "Regularisers",
        "PSNR",
    ):
        assert text in card, text
    for png in ("interpolation.png", "latent_vs_pca.png", "one_class.png", "denoising_rows.png"):
        assert (digits_build.out_dir / png).is_file() and f"]({png})" in card


def test_unknown_study_options_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        ImageEvalOptions.parse({"pcaa": True})
    with pytest.raises(ValueError, match=r"one_class\]: unknown key"):
        ImageEvalOptions.parse({"one_class": {"epoch": 3}})
    with pytest.raises(ValueError, match="score must be bce or mse"):
        ImageEvalOptions.parse({"one_class": {"score": "l1"}})


def test_pca_matches_scikit_learn() -> None:
    from sklearn.decomposition import PCA as SkPCA

    x = load_dataset("digits").train.x
    ours = PCA.fit(x, 5)
    sk = SkPCA(5).fit(x.reshape(len(x), -1))
    flat = x.reshape(len(x), -1)
    ref = sk.inverse_transform(sk.transform(flat)).reshape(x.shape)
    np.testing.assert_allclose(ours.reconstruct(x, clip=False), ref, atol=1e-5)
    np.testing.assert_allclose(ours.explained_variance, sk.explained_variance_, rtol=1e-6)
    # the projection minimises squared error: more components never do worse
    err = [((PCA.fit(x, k).reconstruct(x, clip=False) - x) ** 2).mean() for k in (2, 8, 32)]
    assert err[0] > err[1] > err[2]


def test_psnr_knn_and_auc_on_known_answers() -> None:
    clean = np.zeros((2, 4, 4))
    other = clean.copy()
    other[0] += 0.1  # MSE 0.01 -> 20 dB
    other[1] += 0.01  # MSE 1e-4 -> 40 dB
    np.testing.assert_allclose(psnr(clean, other), [20.0, 40.0])
    codes = np.array([[0.0], [0.1], [5.0], [5.1]])
    y = np.array([0, 0, 1, 1])
    assert knn_accuracy(codes, y, np.array([[0.05], [4.9]]), np.array([0, 1]), 1) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])) == 0.0


def test_one_class_protocol_separates_distinct_classes() -> None:
    """Two classes of very different images: fitting on one, the other is easy to flag."""
    rng = np.random.default_rng(0)
    a = np.zeros((80, 8, 8), np.float32)
    a[:, :, :4] = 0.9
    b = np.zeros((80, 8, 8), np.float32)
    b[:, :4, :] = 0.9
    x = np.clip(np.concatenate([a, b]) + 0.05 * rng.standard_normal((160, 8, 8)), 0, 1)
    x = x.astype(np.float32)
    y = np.repeat([0, 1], 80)
    split = Split(x, y)
    data = Dataset(name="bars", kind="image", shape=(8, 8), train=split, val=split, test=split)
    r = one_class_protocol(
        data, OneClassOptions(train_per_class=80, epochs=30, latent_dim=2, hidden=(16,))
    )
    assert r.classes == [0, 1]
    assert min(r.pca) > 0.99 and min(r.ae) > 0.9
    assert r.ae == r.ae_bce  # score "bce" (the default) is the contract's score
    assert r.val_ae == r.val_pca == []  # no validation split of its own: nothing measured on it
    assert r.duration_s > 0


def _grey_and_bars(n: int, seed: int) -> Split:
    """Class 0: flat mid-grey images (BCE about log 2 per pixel even when reconstructed
    perfectly); class 1: black images with one white bar (0/1 pixels)."""
    rng = np.random.default_rng(seed)
    grey = np.clip(0.5 + 0.03 * rng.standard_normal((n, 8, 8)), 0, 1)
    bars = np.zeros((n, 8, 8))
    for i in range(n):
        bars[i, rng.integers(0, 8), :] = 1.0
    x = np.concatenate([grey, bars]).astype(np.float32)
    return Split(x, np.repeat([0, 1], n))


def test_one_class_squared_error_score_sees_what_bce_misses() -> None:
    """score = "mse": the grey class's models flag the bars (squared error ~0.25 per bar pixel)
    where BCE cannot tell them from the grey images (log 2 per pixel either way); the validation
    split, held out and labelled, is measured with the same models."""
    data = Dataset(
        name="grey-bars",
        kind="image",
        shape=(8, 8),
        train=_grey_and_bars(60, 0),
        val=_grey_and_bars(30, 1),
        test=_grey_and_bars(40, 2),
    )
    opts = OneClassOptions(
        train_per_class=60, epochs=40, batch_size=32, lr=1e-2, latent_dim=2, hidden=(16,)
    )
    mse = one_class_protocol(data, replace(opts, score="mse", weight_decay=1e-4))
    assert mse.classes == [0, 1]
    assert min(mse.ae) > 0.95, mse.ae
    assert mse.ae_bce[0] < mse.ae[0] - 0.2, (mse.ae_bce, mse.ae)
    assert len(mse.val_ae) == len(mse.val_pca) == 2 and min(mse.val_ae) > 0.95
    # the old score is still there: the same models as the BCE column of the "mse" run
    bce = one_class_protocol(data, replace(opts, weight_decay=1e-4))
    assert bce.ae == bce.ae_bce == mse.ae_bce


def test_study_is_off_unless_asked(tmp_path: Path) -> None:
    r = parse(
        {
            "name": "plain",
            "seed": 0,
            "epochs": 2,
            "dataset": {"name": "digits"},
            "architecture": {"kind": "dense_ae", "latent_dim": 3, "hidden": [8]},
        }
    )
    res = build(r, tmp_path / "plain", "cmd", quiet=True)
    assert "mse_test" not in res.manifest.metrics
    assert not (tmp_path / "plain" / "interpolation.png").exists()


def test_knn_leave_one_out_excludes_each_point_itself() -> None:
    from training.baselines import knn_loo_accuracy

    # two tight clusters; the odd point sits in the other class' cluster
    codes = np.array([[0.0, 0], [0, 0.1], [0.1, 0], [5, 5], [5, 5.1], [5.1, 5], [0.5, 0.5]])
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    # k=1: points 0-5 find a same-class neighbour; the odd one finds class 0 (self excluded)
    assert knn_loo_accuracy(codes, y, 1) == pytest.approx(6 / 7)
    # duplicated codes: the duplicate votes, never the point itself
    assert knn_loo_accuracy(np.zeros((4, 2)), np.array([0, 0, 1, 1]), 1) in (0.0, 0.5, 1.0)
    assert knn_loo_accuracy(codes[:6], y[:6], 2) == 1.0


def test_tsne_beside_the_latent_map_on_one_subset(digits_build: BuildResult) -> None:
    """The t-SNE section: the three maps scored by leave-one-out 5-NN on one seeded test subset;
    the autoencoder's figure is recomputed from the ONNX encoder."""
    from training.baselines import knn_loo_accuracy
    from training.image_study import Study, _knn, tsne_subset
    from training.onnx_model import OnnxAutoencoder

    data = load_dataset("digits")
    onnx = OnnxAutoencoder(digits_build.out_dir)
    codes_train = onnx.encode(data.train.x)
    pca = PCA.fit(data.train.x, 2)
    study = Study()
    _knn(study, onnx, pca, data, codes_train, 5, tsne=150, tsne_seed=1)
    m = study.metrics
    sub = tsne_subset(len(data.test), 150, 1)
    assert len(sub) == 150 and np.array_equal(sub, tsne_subset(len(data.test), 150, 1))
    assert data.test.y is not None
    y = data.test.y[sub].astype(np.int64)
    ae = knn_loo_accuracy(onnx.encode(data.test.x[sub]), y, 5)
    assert m["knn5_loo_subset_ae"].value == pytest.approx(ae)
    assert m["knn5_loo_subset_pca"].value == pytest.approx(
        knn_loo_accuracy(pca.encode(data.test.x[sub]), y, 5)
    )
    # t-SNE keeps the digits apart far better than chance (10 classes)
    assert m["knn5_loo_subset_tsne"].value > 0.5
    assert "150 test images (seeded subset, seed 1)" in m["knn5_loo_subset_tsne"].split
    assert "latent_vs_pca_tsne.png" in study.figures and "latent_vs_pca.png" not in study.figures
    assert "beside PCA and t-SNE" in study.sections[-1]


def _without_one_class(card: str) -> list[str]:
    """The card's lines but its one-class metric rows and section."""
    lines = [line for line in card.split("\n") if not line.startswith("| `one_class_")]
    start = lines.index("### Anomaly detection: the one-class protocol")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("#"))
    return lines[:start] + lines[end:]


def test_one_class_rerun_in_place_rewrites_only_its_part(
    digits_build: BuildResult, tmp_path: Path
) -> None:
    """``python -m training one-class``: other options rewrite the one-class metrics, card rows,
    section and figure, nothing else; the build's own options give back its files exactly."""
    from training.restudy import refresh_one_class

    built = digits_build.out_dir
    model = shutil.copytree(built, tmp_path / "tiny-digits")
    card0 = (built / "card.md").read_text()
    json0 = (built / "model.json").read_text()
    old = {k: v for k, v in Manifest.read(built).metrics.items() if "one_class" not in k}

    bce = {k: v for k, v in ONE_CLASS.items() if k not in ("score", "note")}
    refresh_one_class(model, parse(_tiny_digits(bce)))
    man = Manifest.read(model)
    assert [k for k in man.metrics if "one_class" not in k] == list(old)
    assert all(man.metrics[k] == v for k, v in old.items())
    assert "one_class_auc_ae_bce_mean" not in man.metrics
    assert "score = per-sample BCE" in man.metrics["one_class_auc_ae_mean"].description
    card = (model / "card.md").read_text()
    assert "autoencoder AUC, BCE score" not in card and "Chosen on the validation" not in card
    assert card.count("### Anomaly detection: the one-class protocol") == 1
    assert _without_one_class(card) == _without_one_class(card0)

    refresh_one_class(model, parse(_tiny_digits(ONE_CLASS)))
    assert (model / "card.md").read_text() == card0
    assert (model / "model.json").read_text() == json0
    assert (model / "one_class.png").is_file()
