"""One recipe -> one model directory: train, export, evaluate, calibrate, manifest, card.

The directory is built next to its final place and swapped in at the end, so a reader of the
model repository never sees half a model.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from service.runtime.manifest import (
    Denoising,
    Files,
    InputSpec,
    Manifest,
    Regularizer,
    Scaler,
    ScoreSpec,
    TrainingInfo,
)
from training import plots
from training.card import write_card
from training.datasets import Dataset, load_dataset
from training.evaluate import Evaluation, evaluate
from training.export import export
from training.image_study import image_study
from training.models import describe, make_config
from training.noise import bitflip
from training.onnx_model import OnnxAutoencoder, verify_files
from training.recipe import Recipe
from training.reference import write_reference
from training.stacked import StackedResult, train_stacked
from training.train import TrainResult, train

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    out_dir: Path
    manifest: Manifest
    evaluation: Evaluation
    parity: float  # max |torch - onnxruntime| over the export checks


def model_version(encoder_sha: str, decoder_sha: str, *more: str) -> str:
    """Short hash of the files' hashes (``more``: the classifier's): changes whenever the
    weights do."""
    return hashlib.sha256(":".join([encoder_sha, decoder_sha, *more]).encode()).hexdigest()[:12]


def _input_spec(data: Dataset) -> InputSpec:
    scaler = None
    if data.scaler_mean is not None and data.scaler_std is not None:
        scaler = Scaler(mean=data.scaler_mean, std=data.scaler_std)
    return InputSpec(
        kind=data.kind,
        shape=list(data.shape),
        range=data.value_range,
        binary=data.binary,
        features=data.features,
        scaler=scaler,
    )


def _compare_models(recipe: Recipe, out_dir: Path) -> dict[str, OnnxAutoencoder]:
    """Sibling zoo models named in ``evaluate.compare_with`` that exist and pass their checksums."""
    found = {}
    for name in recipe.evaluate.compare_with:
        other = out_dir.parent / name
        if (other / "model.json").exists():
            verify_files(other, Manifest.read(other))
            found[name] = OnnxAutoencoder(other)
        else:
            log.warning("%s: cannot compare with %s: %s has no model", recipe.name, name, other)
    return found


def _plots(
    work: Path, onnx: OnnxAutoencoder, data: Dataset, ev: Evaluation, res: TrainResult, r: Recipe
) -> dict[str, tuple[str, str]]:
    """Draw the card's plots into ``work``; returns file -> (title, caption)."""
    out: dict[str, tuple[str, str]] = {}
    image = data.kind == "image" and len(data.shape) == 2
    test_names = data.sample_names(data.test)
    plots.loss_curve(res.history, work / "loss.png", f"{r.name}: training loss")
    out["loss.png"] = ("Training loss", "Loss per training sample and epoch (log scale).")
    test = data.test.x
    if image:
        plots.reconstructions(
            test,
            onnx.reconstruct(test),
            work / "reconstructions.png",
            data.binary,
            test_names if len(test) <= 32 else None,
        )
        out["reconstructions.png"] = ("Reconstructions", "Test inputs and their reconstructions.")
    if ev.latent.dim == 2:
        small = image and len(data.train) <= 64
        plots.latent_map(
            ev.codes,
            work / "latent.png",
            data.train.x if small else None,
            data.train.y,
            data.sample_names(data.train) if small else None,
        )
        out["latent.png"] = ("Latent map", "Every training sample drawn at its 2-D code.")
        if image:
            cols = 15
            lo, hi = np.asarray(ev.latent.low), np.asarray(ev.latent.high)
            pad = 0.1 * (hi - lo)
            g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], cols)
            g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], cols)
            zz = np.stack(np.meshgrid(g0, g1), -1).reshape(-1, 2).astype(np.float32)
            dec = onnx.decode(zz)
            if data.binary:
                dec = (dec > 0.5).astype(np.float32)
            plots.latent_grid(
                dec.reshape(cols, cols, *data.shape),
                g0,
                g1,
                work / "grid.png",
                "decoded over the latent plane" + (" (threshold 0.5)" * data.binary),
            )
            out["grid.png"] = (
                "Decoding the latent plane",
                f"Outputs decoded on a {cols}x{cols} grid spanning the training codes (plus 10%): "
                "between the known samples the decoder draws new ones that are not in the set.",
            )
    if image:
        rng = np.random.default_rng(r.seed)
        n = r.evaluate.samples
        prior = ev.latent.prior
        if prior.kind == "standard_normal":
            z = rng.standard_normal((n, ev.latent.dim))
            what = "N(0, I)"
        else:
            z = rng.multivariate_normal(np.asarray(prior.mean), np.asarray(prior.cov), n)
            what = "the empirical Gaussian of the training codes"
        dec = onnx.decode(z.astype(np.float32))
        plots.samples(dec, work / "samples.png", f"{n} samples from the prior ({what})")
        out["samples.png"] = (
            "Samples from the prior",
            f"Decoder outputs (not thresholded) for z drawn from {what}.",
        )
    plots.sample_errors(
        ev.test_scores, work / "errors.png", test_names, ev.wrong_per_sample, data.score_kind
    )
    out["errors.png"] = (
        "Reconstruction errors",
        "Per-sample reconstruction score on the test split"
        + (" and wrong pixels after thresholding." if data.binary else "."),
    )
    if ev.anomaly is not None:
        from training import anomaly_plots

        out.update(anomaly_plots.draw(ev.anomaly, work, r.name))
    if ev.curve is not None:
        plots.denoising(ev.curve, work / "denoising.png", r.name)
        out["denoising.png"] = ("Denoising", "Mean wrong pixels after reconstructing noisy inputs.")
        rng = np.random.default_rng(r.evaluate.noise_seed)
        rows: list[tuple[str, np.ndarray]] = []
        for p in (0.1, 0.2):
            noisy = bitflip(test, p, rng)
            rows += [
                (f"flipped p={p:g}", noisy),
                (f"{r.name} output", (onnx.reconstruct(noisy) > 0.5).astype(np.float32)),
            ]
        plots.denoising_examples(test, rows, work / "denoising_examples.png")
        out["denoising_examples.png"] = (
            "Denoising examples",
            "Bit-flipped inputs and this model's thresholded output.",
        )
    return out


def build(
    recipe: Recipe,
    out_dir: Path,
    command: str,
    *,
    quiet: bool = False,
    recipe_ref: str = "",
    data: Dataset | None = None,
) -> BuildResult:
    """Train ``recipe`` and write the complete model directory ``out_dir``.

    ``data``: the recipe's dataset when the caller has loaded it already (``aeserve fit-csv``
    sizes the architecture from it)."""
    # The whole build's wall and CPU time (training, export, the card's studies and baselines),
    # recorded in the manifest beside the training time: `make models` is the sum of the walls.
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if data is None:
        data = load_dataset(recipe.dataset, **recipe.dataset_options)
    # Recipes with a [classifier] table are stacked-AE classifiers (training.stacked).
    res = (
        train_stacked(recipe, data, quiet=quiet)
        if recipe.classifier
        else train(recipe, data, quiet=quiet)
    )
    work = out_dir.parent / f".{out_dir.name}.building"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        exported = export(res.model, work, data.train.x, seed=recipe.seed)
        onnx = OnnxAutoencoder(work)
        study = image_study(onnx, data, recipe)  # [evaluate.images]; nothing when absent
        if isinstance(res, StackedResult):
            from training.classifier_study import classifier_study

            extra = classifier_study(onnx, data, recipe, res, quiet)
            study.metrics.update(extra.metrics)
            study.sections += extra.sections
            study.figures.update(extra.figures)
        if recipe.evaluate.impute:  # [evaluate.impute]
            from training.impute_study import impute_study

            extra = impute_study(onnx, data, recipe.evaluate.impute)
            study.metrics.update(extra.metrics)
            study.sections += extra.sections
            study.figures.update(extra.figures)
        others = _compare_models(recipe, out_dir)
        ev = evaluate(onnx, data, recipe, others, extra_metrics=study.metrics)
        build_s, build_cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        files = Files.hash(work)
        config = make_config(recipe.architecture, recipe.arch_options)
        manifest = Manifest(
            name=recipe.name,
            version=model_version(
                files.encoder.sha256,
                files.decoder.sha256,
                *([files.classifier.sha256] if files.classifier else []),
            ),
            created_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
            description=recipe.description,
            family=config.family,
            input=_input_spec(data),
            latent=ev.latent,
            files=files,
            score=ScoreSpec(
                kind=data.score_kind,
                calibration=ev.calibration,
                threshold=ev.threshold,
                threshold_rule=recipe.score.threshold_rule,
            ),
            metrics=ev.metrics,
            classes=list(data.label_names or []) if files.classifier else None,
            training=TrainingInfo(
                dataset=recipe.dataset,
                seed=recipe.seed,
                epochs=recipe.epochs,
                duration_s=round(res.duration_s, 2),
                architecture=describe(recipe.architecture, config),
                command=command,
                recipe=recipe_ref or None,
                denoising=(
                    Denoising.model_validate(asdict(recipe.noise)) if recipe.noise else None
                ),
                regularizer=(
                    Regularizer.model_validate(asdict(recipe.regularizer))
                    if recipe.regularizer
                    else None
                ),
                final_loss=res.final_loss,
                extra={
                    "dataset_options": dict(recipe.dataset_options),
                    "train_options": {
                        k: list(v) if isinstance(v, tuple) else v
                        for k, v in asdict(recipe.train).items()
                    },
                    "parity_max_abs_diff": exported.max_abs_diff,
                    "build_s": round(build_s, 1),
                    "build_cpu_s": round(build_cpu_s, 1),
                    **_stacked_extra(recipe, res),
                    "torch": torch.__version__,
                    "python": sys.version.split()[0],
                },
            ),
            tabular=data.tabular,
        )
        manifest.write(work)
        figures = _plots(work, onnx, data, ev, res, recipe)
        figures.update(study.draw(work))
        sections = study.sections
        if recipe.evaluate.selection:
            sections = [
                *sections,
                "## How this recipe was chosen\n\n" + recipe.evaluate.selection.strip(),
            ]
        write_card(work, manifest, data, ev, figures, sections)
        write_reference(work, onnx, data)  # the web app's latent map (reference.npz)
        del onnx
        _swap_in(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult(
        out_dir=out_dir, manifest=manifest, evaluation=ev, parity=exported.max_abs_diff
    )


def _stacked_extra(recipe: Recipe, res: TrainResult) -> dict[str, object]:
    """A stacked classifier's [classifier] options, phase times and pretraining losses."""
    if not isinstance(res, StackedResult):
        return {}
    return {
        "classifier_options": {
            k: list(v) if isinstance(v, tuple) else v for k, v in recipe.classifier.items()
        },
        "phases_s": res.phases,
        "pretrain_losses": [round(v, 6) for v in res.pretrain_losses],
    }


def _swap_in(work: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``work`` with two renames (the old model stays whole until then)."""
    old = out_dir.parent / f".{out_dir.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    work.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
