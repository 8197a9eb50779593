"""The image zoo's extra evaluation (issue 4), configured by a recipe's ``[evaluate.images]``.

Everything measured beside the model in the same run, on the same splits:

- ``pca``: PCA with as many components as the code has dimensions (the linear autoencoder):
  its test BCE and MSE beside the model's, and the MSE reduction;
- ``knn``: k-nearest-neighbour accuracy of the codes (train codes -> test codes), and of PCA's;
- PSNR for Gaussian/masking denoisers: noisy input, denoised output (and PCA's projection);
- ``interpolation``: decoded strips between the codes of two test images;
- ``one_class``: the one-class anomaly protocol: for each class, a small autoencoder and PCA are
  fitted on that class alone; ROC-AUC of their reconstruction error for that class vs the rest
  of the test set, averaged over the classes (and the same on the validation split, what the
  protocol's options are chosen on); the autoencoder is scored by BCE or by squared error;
- ``novelty``: prior samples beside their nearest training images, with the fractions that are
  neither copies nor noise (:mod:`training.novelty`);
- ``variants``: the recipe's model retrained (on a smaller budget) plain and with regularisers,
  compared on error, mean code activation and the code's sensitivity to input perturbations.

The shipped model is measured through its ONNX files; the one-class and variant models are
evaluation-only torch models (they are not shipped).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.runtime.manifest import Metric
from training import image_plots
from training.baselines import PCA, knn_accuracy, knn_loo_accuracy, psnr, roc_auc, tsne_map
from training.datasets import Dataset, Split
from training.models import Autoencoder
from training.noise import corrupt
from training.onnx_model import OnnxAutoencoder
from training.recipe import Recipe, RegularizerOptions, TrainOptions, build_options
from training.regularizers import jacobian_frobenius_sq
from training.scoring import ScoreKind, scores
from training.train import train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OneClassOptions:
    """A small dense autoencoder per class; cheap on purpose (20 of them per zoo build)."""

    train_per_class: int = 2000
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    latent_dim: int = 16
    hidden: tuple[int, ...] = (128,)
    activation: str = "relu"
    seed: int = 0
    # The autoencoder's anomaly score: "bce", the contract's per-sample BCE (the protocol before
    # stop 13), or "mse", the per-sample squared error PCA is scored by. With "mse" the card also
    # shows the same models scored by BCE.
    score: ScoreKind = "bce"
    # A sentence for the card: how the options were chosen (on the validation split, never the
    # test split) and what changed.
    note: str = ""

    def __post_init__(self) -> None:
        if self.score not in ("bce", "mse"):
            raise ValueError(
                f"[evaluate.images.one_class] score must be bce or mse: {self.score!r}"
            )


@dataclass(frozen=True)
class VariantOptions:
    """The recipe's architecture retrained plain and with each regulariser, on a small budget."""

    train_limit: int = 10000
    epochs: int = 10
    test_limit: int = 2000
    # Std of the Gaussian input perturbation for the sensitivity figure.
    perturbation: float = 0.01
    # name -> {kind, weight, rho, plus optional architecture overrides under "architecture"}.
    regularizers: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageEvalOptions:
    pca: bool = True
    knn: int = 0
    interpolation: bool = True
    one_class: OneClassOptions | None = None
    # Prior samples measured for novelty (training.novelty; VAEs): not copies, not noise.
    novelty: int = 0
    variants: VariantOptions | None = None
    # 2-D codes with ``knn``: t-SNE of this many test images (seeded subset; 0: no t-SNE) beside
    # the autoencoder's and PCA's maps, all three scored by leave-one-out k-NN on that subset.
    tsne: int = 0
    tsne_seed: int = 0

    @classmethod
    def parse(cls, table: dict[str, Any]) -> ImageEvalOptions:
        t = dict(table)
        one = t.pop("one_class", None)
        var = t.pop("variants", None)
        opts: ImageEvalOptions = build_options(cls, t, "[evaluate.images]")
        if one is not None:
            opts = replace(
                opts, one_class=build_options(OneClassOptions, one, "[evaluate.images.one_class]")
            )
        if var is not None:
            v = dict(var)
            regs = v.pop("regularizers", {})
            vo = build_options(VariantOptions, v, "[evaluate.images.variants]")
            opts = replace(opts, variants=replace(vo, regularizers=dict(regs)))
        return opts


Drawer = Callable[[Path], Path]


@dataclass
class Study:
    """What the study adds to a model: metrics, card sections (markdown) and figures."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    # file name -> (title, caption, function drawing it at the given path)
    figures: dict[str, tuple[str, str, Drawer]] = field(default_factory=dict)

    def draw(self, work: Path) -> dict[str, tuple[str, str]]:
        out = {}
        for name, (title, caption, fn) in self.figures.items():
            fn(work / name)
            out[name] = (title, caption)
        return out


def _flat_codes(model: OnnxAutoencoder, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    return np.concatenate([model.encode(x[i : i + batch]) for i in range(0, len(x), batch)])


def _reconstruct(model: OnnxAutoencoder, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    return np.concatenate([model.reconstruct(x[i : i + batch]) for i in range(0, len(x), batch)])


def image_study(model: OnnxAutoencoder, data: Dataset, recipe: Recipe) -> Study:
    """Run the ``[evaluate.images]`` studies of ``recipe`` (nothing when the table is absent)."""
    table = recipe.evaluate.images
    study = Study()
    if not table:
        return study
    if data.kind != "image" or len(data.shape) != 2:
        raise ValueError("[evaluate.images] needs an image dataset with [H, W] samples")
    opts = ImageEvalOptions.parse(table)
    test, test_name = data.test.x, data.split_name("test")
    x_hat = _reconstruct(model, test)
    mse = scores(test, x_hat, "mse")
    study.metrics["mse_test"] = Metric(
        value=float(mse.mean()), split=test_name, description="mean per-pixel squared error"
    )
    codes_train = _flat_codes(model, data.train.x)
    dim = codes_train.shape[1]
    pca = PCA.fit(data.train.x, dim) if opts.pca or opts.knn else None
    if opts.pca and pca is not None:
        _pca_metrics(study, pca, data, x_hat)
    if opts.knn:
        _knn(study, model, pca, data, codes_train, opts.knn, opts.tsne, opts.tsne_seed)
    if recipe.noise is not None and recipe.noise.kind in ("gaussian", "masking"):
        _denoising(study, model, pca, data, recipe)
    if opts.interpolation:
        _interpolation(study, model, data, recipe)
    if opts.one_class is not None:
        _one_class(study, data, opts.one_class, recipe.name)
    if opts.variants is not None:
        _variants(study, data, recipe, opts.variants)
    if opts.novelty:
        _novelty(study, model, data, recipe, opts.novelty)
    return study


def _pca_metrics(study: Study, pca: PCA, data: Dataset, x_hat: np.ndarray) -> None:
    test, test_name, k = data.test.x, data.split_name("test"), pca.k
    rec = pca.reconstruct(test).astype(np.float32)
    pca_bce = float(scores(test, rec, "bce").mean())
    pca_mse = float(scores(test, rec, "mse").mean())
    ae_mse = float(scores(test, x_hat, "mse").mean())
    ae_bce = float(scores(test, x_hat, "bce").mean())
    where = f"PCA-{k} fitted on {data.split_name('train')}, reconstructions clipped to [0, 1]"
    study.metrics[f"bce_test_pca{k}"] = Metric(
        value=pca_bce, split=test_name, description=f"baseline: per-pixel BCE of {where}"
    )
    study.metrics[f"mse_test_pca{k}"] = Metric(
        value=pca_mse, split=test_name, description=f"baseline: per-pixel MSE of {where}"
    )
    study.metrics["mse_reduction_vs_pca"] = Metric(
        value=1.0 - ae_mse / pca_mse,
        split=test_name,
        description=f"1 - MSE(model) / MSE(PCA-{k}): the share of PCA's error the model removes",
    )
    study.sections.append(
        "\n".join(
            [
                f"### Against PCA with {k} components (the linear autoencoder)",
                "",
                "| model | per-pixel BCE | per-pixel MSE |",
                "| --- | --- | --- |",
                f"| this model ({k}-D code) | **{ae_bce:.4f}** | **{ae_mse:.5f}** |",
                f"| PCA-{k} | {pca_bce:.4f} | {pca_mse:.5f} |",
            ]
        )
    )
    n = 16
    study.figures["reconstructions_pca.png"] = (
        "Reconstructions beside PCA",
        f"Test images, this model's reconstructions, and PCA-{k}'s.",
        lambda p: image_plots.image_rows(
            [("input", test[:n]), ("this model", x_hat[:n]), (f"PCA-{k}", rec[:n])], p
        ),
    )


def _knn(
    study: Study,
    model: OnnxAutoencoder,
    pca: PCA | None,
    data: Dataset,
    codes_train: np.ndarray,
    k: int,
    tsne: int = 0,
    tsne_seed: int = 0,
) -> None:
    if data.train.y is None or data.test.y is None:
        raise ValueError("knn needs class labels")
    test_name = data.split_name("test")
    codes_test = _flat_codes(model, data.test.x)
    acc = knn_accuracy(codes_train, data.train.y, codes_test, data.test.y, k)
    dim = codes_train.shape[1]
    desc = f"{k}-NN accuracy of the test codes, neighbours among the training codes"
    study.metrics[f"knn{k}_accuracy"] = Metric(value=acc, split=test_name, description=desc)
    assert pca is not None
    ptr, pte = pca.encode(data.train.x), pca.encode(data.test.x)
    pacc = knn_accuracy(ptr, data.train.y, pte, data.test.y, k)
    study.metrics[f"knn{k}_accuracy_pca{dim}"] = Metric(
        value=pacc, split=test_name, description=f"baseline: the same with PCA-{dim} codes"
    )
    study.sections.append(
        "\n".join(
            [
                f"### {k}-NN accuracy of the {dim}-D codes",
                "",
                f"| codes | {k}-NN accuracy |",
                "| --- | --- |",
                f"| this model | **{acc:.4f}** |",
                f"| PCA-{dim} | {pacc:.4f} |",
            ]
        )
    )
    if dim == 2 and tsne:
        _tsne(study, data, codes_test, pte, acc, pacc, k, tsne, tsne_seed)
    elif dim == 2:
        labels, names = data.test.y, data.label_names
        study.figures["latent_vs_pca.png"] = (
            "2-D latent map beside PCA's",
            "Test images at their 2-D codes: this model (left) and the first two principal "
            "components (right), coloured by class.",
            lambda p: image_plots.latent_maps(
                [
                    (f"{data.name}: this model ({k}-NN acc. {acc:.3f})", codes_test),
                    (f"PCA-2 ({k}-NN acc. {pacc:.3f})", pte),
                ],
                labels,
                names,
                p,
            ),
        )


def tsne_subset(n_test: int, size: int, seed: int) -> np.ndarray:
    """The test images t-SNE maps: ``size`` of them, seeded, sorted (all when fewer)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_test, size=min(size, n_test), replace=False))


def _tsne(
    study: Study,
    data: Dataset,
    codes_test: np.ndarray,
    pca_test: np.ndarray,
    acc: float,
    pacc: float,
    k: int,
    size: int,
    seed: int,
) -> None:
    """t-SNE beside the 2-D autoencoder and PCA-2 (issue 17). t-SNE has no encoder for new
    points, so the three maps are compared on one test subset by leave-one-out k-NN."""
    import time

    assert data.test.y is not None
    sub = tsne_subset(len(data.test), size, seed)
    y = data.test.y[sub].astype(np.int64)
    started = time.perf_counter()
    t_map = tsne_map(data.test.x[sub], 50, seed)
    seconds = time.perf_counter() - started
    loo = {
        "ae": knn_loo_accuracy(codes_test[sub], y, k),
        "pca": knn_loo_accuracy(pca_test[sub], y, k),
        "tsne": knn_loo_accuracy(t_map, y, k),
    }
    test_name = data.split_name("test")
    where = f"{len(sub):,} test images (seeded subset, seed {seed})"
    for key, what in (
        ("ae", "this model's 2-D codes"),
        ("pca", "PCA-2 codes"),
        ("tsne", "a 2-D t-SNE of the subset (on PCA-50 of the pixels)"),
    ):
        study.metrics[f"knn{k}_loo_subset_{key}"] = Metric(
            value=loo[key],
            split=f"{test_name}, {where}",
            description=f"leave-one-out {k}-NN accuracy of {what} within the subset",
        )
    study.sections.append(
        "\n".join(
            [
                "### The latent map beside PCA and t-SNE",
                "",
                f"t-SNE (scikit-learn, perplexity 30, PCA initialisation, on the first 50 "
                f"principal components of the pixels) embeds only the points it is given, so it "
                f"maps a subset: {where}; it took {seconds:.0f} s. On that subset every map is "
                f"scored the same way: leave-one-out {k}-NN accuracy (each image's {k} nearest "
                f"other images in the map vote). The autoencoder and PCA also have the full "
                f"train -> test {k}-NN accuracy (neighbours among the training codes). UMAP is "
                f"not shown: `umap-learn` is not installed here.",
                "",
                f"| map | {k}-NN, train -> test ({len(data.test):,}) "
                f"| {k}-NN leave-one-out, subset |",
                "| --- | --- | --- |",
                f"| this autoencoder (2-D code) | **{acc:.4f}** | {loo['ae']:.4f} |",
                f"| PCA-2 | {pacc:.4f} | {loo['pca']:.4f} |",
                f"| t-SNE (subset only) | n/a (no encoder) | {loo['tsne']:.4f} |",
            ]
        )
    )
    names = data.label_names
    study.figures["latent_vs_pca_tsne.png"] = (
        "2-D latent map beside PCA and t-SNE",
        f"The same {len(sub):,} test images placed by this model's 2-D encoder (left), the "
        f"first two principal components (middle) and t-SNE (right), coloured by class; "
        f"titles give the leave-one-out {k}-NN accuracy on this subset.",
        lambda p: image_plots.latent_maps(
            [
                (f"{data.name}: this autoencoder ({k}-NN {loo['ae']:.3f})", codes_test[sub]),
                (f"PCA-2 ({k}-NN {loo['pca']:.3f})", pca_test[sub]),
                (f"t-SNE ({k}-NN {loo['tsne']:.3f})", t_map),
            ],
            y,
            names,
            p,
            axis_names=("z[0]", "PC 1", "t-SNE 1"),
        ),
    )


def _denoising(
    study: Study, model: OnnxAutoencoder, pca: PCA | None, data: Dataset, recipe: Recipe
) -> None:
    assert recipe.noise is not None
    kind, level, seed = recipe.noise.kind, recipe.noise.level, recipe.evaluate.noise_seed
    test = data.test.x
    noisy = corrupt(test, kind, level, seed)
    den = _reconstruct(model, noisy)
    p_noisy, p_den = psnr(test, noisy), psnr(test, den)
    split = f"{data.split_name('test')}, one {kind} draw at level {level:g} (seed {seed})"
    study.metrics["psnr_noisy_db"] = Metric(
        value=float(p_noisy.mean()), split=split, description="mean PSNR of the noisy input (dB)"
    )
    study.metrics["psnr_denoised_db"] = Metric(
        value=float(p_den.mean()), split=split, description="mean PSNR of the denoised output (dB)"
    )
    study.metrics["psnr_gain_db"] = Metric(
        value=float(p_den.mean() - p_noisy.mean()),
        split=split,
        description="mean PSNR of denoised minus that of noisy inputs (dB), vs the clean image",
    )
    rows = [
        "### Denoising",
        "",
        f"Test images corrupted with {kind} noise at level {level:g} (clipped to [0, 1]); mean "
        "per-image PSNR against the clean image.",
        "",
        "| treatment | mean PSNR (dB) |",
        "| --- | --- |",
        f"| noisy input | {p_noisy.mean():.2f} |",
    ]
    if pca is not None:
        p_pca = psnr(test, pca.reconstruct(noisy))
        rows.append(f"| PCA-{pca.k} projection of the noisy input | {p_pca.mean():.2f} |")
        study.metrics[f"psnr_pca{pca.k}_db"] = Metric(
            value=float(p_pca.mean()),
            split=split,
            description=f"baseline: mean PSNR of PCA-{pca.k} projections of the noisy input",
        )
    rows.append(f"| this model | **{p_den.mean():.2f}** |")
    study.sections.append("\n".join(rows))
    n = 16
    study.figures["denoising_rows.png"] = (
        "Noisy, denoised, clean",
        f"Test images with {kind} noise (level {level:g}), this model's output, and the clean "
        "image.",
        lambda p: image_plots.image_rows(
            [("noisy", noisy[:n]), ("denoised", den[:n]), ("clean", test[:n])], p
        ),
    )


def _interpolation(study: Study, model: OnnxAutoencoder, data: Dataset, recipe: Recipe) -> None:
    """Pairs of test images of different classes (the first found, seeded)."""
    test, y = data.test.x, data.test.y
    rng = np.random.default_rng(recipe.seed)
    idx = rng.permutation(len(test))
    pairs: list[tuple[int, int]] = []
    for i in range(0, len(idx) - 1, 2):
        a, b = int(idx[i]), int(idx[i + 1])
        if y is None or y[a] != y[b]:
            pairs.append((a, b))
        if len(pairs) == 6:
            break
    steps = 10
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    za = model.encode(test[[a for a, _ in pairs]])
    zb = model.encode(test[[b for _, b in pairs]])
    z = (1 - t) * za[:, None, :] + t * zb[:, None, :]  # [pairs, steps, dim]
    strips = model.decode(z.reshape(-1, z.shape[-1]).astype(np.float32))
    strips = strips.reshape(len(pairs), steps, *data.shape)
    study.figures["interpolation.png"] = (
        "Latent interpolation",
        "Each row decodes 10 evenly spaced codes on the straight line between the codes of two "
        "test images (VAE: the posterior means).",
        lambda p: image_plots.interpolation(strips, p, "interpolating between two test images"),
    )


# --- the one-class protocol -------------------------------------------------------------------


def _tiny_recipe(
    name: str,
    seed: int,
    epochs: int,
    arch: dict[str, Any],
    train: TrainOptions,
    regularizer: RegularizerOptions | None = None,
) -> Recipe:
    kind = arch.pop("kind")
    return Recipe(
        name=name,
        dataset="(in memory)",
        architecture=kind,
        arch_options=arch,
        seed=seed,
        epochs=epochs,
        train=train,
        regularizer=regularizer,
    )


def _subset(data: Dataset, x: np.ndarray, y: np.ndarray | None) -> Dataset:
    return replace(data, train=Split(x, y))


def _torch_reconstruct(model: torch.nn.Module, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch])
            outs.append(model(xb).x_hat.numpy())
    return np.concatenate(outs)


@dataclass(frozen=True)
class OneClassResult:
    """ROC-AUCs per class (that class normal, the rest anomalies), in the order of ``classes``."""

    classes: list[int]
    ae: list[float]  # the autoencoder, scored by ``OneClassOptions.score``
    pca: list[float]  # PCA, scored by squared error
    ae_bce: list[float]  # the same autoencoders scored by the contract's BCE
    # The same models on the validation split (held-out training images; empty when the data
    # set has no labelled validation split of its own): what options are chosen on.
    val_ae: list[float]
    val_pca: list[float]
    duration_s: float


def _own_labelled_val(data: Dataset) -> bool:
    v = data.val
    return v.y is not None and v.x is not data.train.x and v.x is not data.test.x


def one_class_protocol(data: Dataset, opts: OneClassOptions) -> OneClassResult:
    """Per class c: fit on training images of class c only; ROC-AUC of the reconstruction error
    for "not c" over the whole test split (and over the validation split, when it has labels)."""
    if data.train.y is None or data.test.y is None:
        raise ValueError("the one-class protocol needs class labels")
    started = time.perf_counter()
    classes = [int(c) for c in np.unique(data.train.y)]
    ae, pca_auc, ae_bce, val_ae, val_pca = [], [], [], [], []
    test = data.test.x
    with_val = _own_labelled_val(data)
    for c in classes:
        x_c = data.train.x[data.train.y == c][: opts.train_per_class]
        anomaly = data.test.y != c
        recipe = _tiny_recipe(
            f"one-class-{c}",
            opts.seed + c,
            opts.epochs,
            {
                "kind": "dense_ae",
                "latent_dim": opts.latent_dim,
                "hidden": list(opts.hidden),
                "activation": opts.activation,
            },
            TrainOptions(lr=opts.lr, batch_size=opts.batch_size, weight_decay=opts.weight_decay),
        )
        res = train(recipe, _subset(data, x_c, None), quiet=True)
        rec = _torch_reconstruct(res.model, test)
        ae.append(roc_auc(anomaly, scores(test, rec, opts.score)))
        ae_bce.append(roc_auc(anomaly, scores(test, rec, "bce")))
        pca = PCA.fit(x_c, opts.latent_dim)
        pca_auc.append(roc_auc(anomaly, scores(test, pca.reconstruct(test), "mse")))
        if with_val and data.val.y is not None:
            val, val_anomaly = data.val.x, data.val.y != c
            val_rec = _torch_reconstruct(res.model, val)
            val_ae.append(roc_auc(val_anomaly, scores(val, val_rec, opts.score)))
            val_pca.append(roc_auc(val_anomaly, scores(val, pca.reconstruct(val), "mse")))
        log.info("one-class %s: AE %.3f, PCA %.3f", c, ae[-1], pca_auc[-1])
    duration = time.perf_counter() - started
    log.info("one-class protocol: %d classes in %.0f s", len(classes), duration)
    return OneClassResult(
        classes=classes,
        ae=ae,
        pca=pca_auc,
        ae_bce=ae_bce,
        val_ae=val_ae,
        val_pca=val_pca,
        duration_s=duration,
    )


def one_class_study(data: Dataset, opts: OneClassOptions, name: str) -> Study:
    """The one-class protocol's metrics, card section and figure, on their own."""
    study = Study()
    _one_class(study, data, opts, name)
    return study


def _one_class(study: Study, data: Dataset, opts: OneClassOptions, name: str) -> None:
    r = one_class_protocol(data, opts)
    names = [
        data.label_names[c] if data.label_names and c < len(data.label_names) else str(c)
        for c in r.classes
    ]
    split = (
        f"{data.split_name('test')} (each class vs the rest); fitted on <= "
        f"{opts.train_per_class} training images of the class"
    )
    arch = f"dense {'-'.join(str(h) for h in opts.hidden)}-{opts.latent_dim}"
    wd = f", weight decay {opts.weight_decay:g}" if opts.weight_decay else ""
    trained = f"{arch}, {opts.epochs} epochs{wd}"
    score = "per-sample BCE" if opts.score == "bce" else "per-sample squared error"
    study.metrics["one_class_auc_ae_mean"] = Metric(
        value=float(np.mean(r.ae)),
        split=split,
        description=f"one-class protocol, mean ROC-AUC over classes: small AE ({trained}), "
        f"score = {score}",
    )
    study.metrics["one_class_auc_pca_mean"] = Metric(
        value=float(np.mean(r.pca)),
        split=split,
        description=f"one-class protocol, mean ROC-AUC over classes: PCA-{opts.latent_dim}, "
        "score = per-sample squared reconstruction error",
    )
    if opts.score != "bce":
        study.metrics["one_class_auc_ae_bce_mean"] = Metric(
            value=float(np.mean(r.ae_bce)),
            split=split,
            description="one-class protocol, mean ROC-AUC over classes: the same AEs scored by "
            "the contract's per-sample BCE",
        )
    val_split = f"{data.split_name('val')} (each class vs the rest); the same models"
    if r.val_ae:
        study.metrics["one_class_auc_ae_mean_val"] = Metric(
            value=float(np.mean(r.val_ae)),
            split=val_split,
            description=f"one-class protocol on the validation split: small AE, score = {score}",
        )
        study.metrics["one_class_auc_pca_mean_val"] = Metric(
            value=float(np.mean(r.val_pca)),
            split=val_split,
            description=f"one-class protocol on the validation split: PCA-{opts.latent_dim}",
        )
    with_bce = opts.score != "bce"
    rows = [
        "### Anomaly detection: the one-class protocol",
        "",
        f"For each class: a small dense autoencoder ({trained}, score: {score}) and PCA with "
        f"{opts.latent_dim} components (squared error) are fitted on at most "
        f"{opts.train_per_class:,} training images of that class only; the whole test split is "
        "scored and the ROC-AUC measures how well the score tells the class (normal) from the "
        "other classes (anomalies). Measured in the same run as the model.",
        "",
        "| class | autoencoder AUC | PCA AUC |"
        + (" autoencoder AUC, BCE score |" if with_bce else ""),
        "| --- | --- | --- |" + (" --- |" if with_bce else ""),
    ]
    for i, n in enumerate(names):
        extra = f" {r.ae_bce[i]:.4f} |" if with_bce else ""
        rows.append(f"| {n} | {r.ae[i]:.4f} | {r.pca[i]:.4f} |{extra}")
    extra = f" {np.mean(r.ae_bce):.4f} |" if with_bce else ""
    rows.append(f"| **mean** | **{np.mean(r.ae):.4f}** | **{np.mean(r.pca):.4f}** |{extra}")
    rows.append("")
    if r.val_ae:
        rows += [
            f"On the validation split ({data.split_name('val')}, what the options were chosen "
            f"on) the same models reach a mean AUC of {np.mean(r.val_ae):.4f} (autoencoder) and "
            f"{np.mean(r.val_pca):.4f} (PCA).",
            "",
        ]
    if with_bce:
        rows += [
            "The last column scores the same autoencoders by the contract's BCE: on grey-level "
            "images BCE does not vanish for a perfect reconstruction (its floor is the entropy of "
            "the image's own grey pixels), so it also ranks images by how much grey they hold, "
            "not only by how well they are reconstructed.",
            "",
        ]
    if opts.note:
        rows += [opts.note, ""]
    rows.append(
        f"The shipped `{name}` model itself is calibrated on held-out normal images (the "
        "validation split): see the anomaly score section."
    )
    study.sections.append("\n".join(rows))
    study.figures["one_class.png"] = (
        "One-class anomaly detection",
        "ROC-AUC per class (that class normal, the rest anomalies): autoencoder vs PCA.",
        lambda p: image_plots.one_class_bars(
            r.ae, r.pca, names, p, f"{data.name}: one-class protocol"
        ),
    )


# --- regulariser variants ---------------------------------------------------------------------


@dataclass(frozen=True)
class VariantResult:
    name: str
    regularizer: str
    bce: float
    mse: float
    mean_abs_code: float
    sensitivity: float  # mean ||z(x + d) - z(x)|| / ||d||, d ~ N(0, s^2 I)
    relative_sensitivity: float  # the same divided by the mean code norm
    jacobian_fro: float  # mean ||dz/dx||_F
    duration_s: float


def measure_variant(
    model: Autoencoder, x: np.ndarray, perturbation: float, seed: int
) -> tuple[float, float, float, float, float, float]:
    """(bce, mse, mean |code|, sensitivity, relative sensitivity, mean Jacobian Frobenius norm)
    of a torch autoencoder on images ``x``."""
    xt = torch.from_numpy(x)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = model(xt)
        z = out.mu if out.mu is not None else out.z
        d = perturbation * torch.randn(xt.shape, generator=gen)
        z2 = model.encode(xt + d)
        sens = (z2 - z).norm(dim=1) / d.flatten(1).norm(dim=1)
        rel = sens / z.norm(dim=1).mean()
    x_hat = out.x_hat.numpy()
    jac = torch.sqrt(jacobian_frobenius_sq(model, xt[:500])).detach()
    return (
        float(scores(x, x_hat, "bce").mean()),
        float(scores(x, x_hat, "mse").mean()),
        float(z.abs().mean()),
        float(sens.mean()),
        float(rel.mean()),
        float(jac.mean()),
    )


def _variants(study: Study, data: Dataset, recipe: Recipe, opts: VariantOptions) -> None:
    x_train = data.train.x[: opts.train_limit]
    x_test = data.test.x[: opts.test_limit]
    results: list[VariantResult] = []
    specs: list[tuple[str, dict[str, Any]]] = [("plain", {}), *opts.regularizers.items()]
    for name, spec in specs:
        spec = dict(spec)
        arch = {"kind": recipe.architecture, **recipe.arch_options, **spec.pop("architecture", {})}
        reg = RegularizerOptions(**spec) if spec else None
        r = _tiny_recipe(f"{recipe.name}-{name}", recipe.seed, opts.epochs, arch, recipe.train, reg)
        res = train(r, _subset(data, x_train, None), quiet=True)
        m = measure_variant(res.model, x_test, opts.perturbation, recipe.seed)
        what = (
            "none"
            if reg is None
            else f"{reg.kind} (weight {reg.weight:g}"
            + (f", rho {reg.rho:g})" if reg.rho is not None else ")")
        )
        results.append(VariantResult(name, what, *m, duration_s=res.duration_s))
        log.info("variant %s: %s", name, results[-1])
    split = f"first {len(x_test):,} of {data.split_name('test')}"
    for v in results:
        for key, value, desc in (
            ("bce_test", v.bce, "per-pixel BCE"),
            ("mean_abs_code", v.mean_abs_code, "mean |code| activation"),
            ("sensitivity", v.sensitivity, "mean ||z(x+d) - z(x)|| / ||d||, d ~ N(0, s^2)"),
            ("jacobian_fro", v.jacobian_fro, "mean Frobenius norm of the encoder Jacobian"),
        ):
            study.metrics[f"variant_{v.name}_{key}"] = Metric(
                value=value,
                split=split,
                description=f"regulariser study ({v.regularizer}; not shipped): {desc}",
            )
    rows = [
        "### Regularisers: what they change",
        "",
        f"The same architecture retrained for {opts.epochs} epochs on the first "
        f"{len(x_train):,} training images, plain and with each regulariser (evaluation only, "
        f"not shipped), measured on the first {len(x_test):,} test images. Sensitivity: mean "
        f"||z(x + d) - z(x)|| / ||d|| for Gaussian d with std {opts.perturbation:g} per pixel; "
        "relative: divided by the mean code norm (a penalty that only shrinks the code shrinks "
        "the absolute figure too); Jacobian: mean ||dz/dx||_F.",
        "",
        "| variant | regulariser | BCE | MSE | mean abs code | sensitivity | relative "
        "sensitivity | Jacobian norm | train time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v in results:
        rows.append(
            f"| {v.name} | {v.regularizer} | {v.bce:.4f} | {v.mse:.5f} | {v.mean_abs_code:.4f} "
            f"| {v.sensitivity:.4f} | {v.relative_sensitivity:.4f} | {v.jacobian_fro:.3f} | "
            f"{v.duration_s:.0f} |"
        )
    study.sections.append("\n".join(rows))


def _novelty(study: Study, model: OnnxAutoencoder, data: Dataset, recipe: Recipe, n: int) -> None:
    from training.novelty import novelty

    dim = model.encode(data.train.x[:1]).shape[1]
    nov = novelty(model, data.train.x, n, recipe.seed, dim)
    train_name = data.split_name("train")
    what = f"{n} samples from N(0, I) (seed {recipe.seed}), nearest image in {train_name}"
    study.metrics["novelty_not_copy"] = Metric(
        value=nov.not_copy,
        split=what,
        description="share of samples farther from their nearest training image than the "
        f"median reconstruction error ({nov.copy_level:.4f} per-pixel MSE)",
    )
    study.metrics["novelty_not_noise"] = Metric(
        value=nov.not_noise,
        split=what,
        description="share of samples nearer to a training image than pixel-shuffled training "
        f"images are (median {nov.noise_level:.4f} per-pixel MSE)",
    )
    study.metrics["novelty_both"] = Metric(
        value=nov.novel, split=what, description="share of samples that are neither"
    )
    names = data.sample_names(data.train)
    shown = min(n, 16)
    lines = [
        "### Are the samples new?",
        "",
        f"{n} samples from the prior; for each, its nearest training image (per-pixel MSE, over "
        f"all {len(data.train):,} training images, augmented copies included). A sample closer "
        f"than the median reconstruction error of training images ({nov.copy_level:.4f}) would be "
        "a copy; one as far as pixel-shuffled training images are from the set (median "
        f"{nov.noise_level:.4f}) would be noise.",
        "",
        "| | share of samples |",
        "| --- | --- |",
        f"| not a copy (distance > {nov.copy_level:.4f}) | {nov.not_copy:.3f} |",
        f"| not noise (distance < {nov.noise_level:.4f}) | {nov.not_noise:.3f} |",
        f"| **neither copy nor noise** | **{nov.novel:.3f}** |",
        "",
        f"The first {shown} samples (the figure below), each with its nearest training image:",
        "",
        "| sample | nearest training image | distance | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for i in range(shown):
        d = float(nov.distance[i])
        verdict = "copy" if d <= nov.copy_level else "noise" if d >= nov.noise_level else "new"
        name = names[int(nov.nearest[i])] if names else str(int(nov.nearest[i]))
        lines.append(f"| {i + 1} | {name} | {d:.4f} | {verdict} |")
    study.sections.append("\n".join(lines))
    near = data.train.x[nov.nearest]
    rows = []
    for start in range(0, min(n, 32), 16):
        rows += [
            (f"samples {start + 1}-{start + 16}", nov.samples[start : start + 16]),
            ("nearest training images", near[start : start + 16]),
        ]
    study.figures["novelty.png"] = (
        "Samples and their nearest training images",
        "Prior samples (odd rows) above the training image nearest to each (even rows).",
        lambda p: image_plots.image_rows(rows, p),
    )
