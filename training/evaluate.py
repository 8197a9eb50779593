"""Evaluation and calibration of an exported model, run on its ONNX files (numpy only).

Which metrics a model gets follows from its data and training: every model gets its test score;
0/1 data gets wrong-pixel counts after thresholding at 0.5 and a denoising curve (bit-flipped
inputs at several levels, beside the noisy input itself and, for small sets, the Bayes-optimal
denoiser); VAEs get the negative ELBO. Issue 4/5 metrics (kNN accuracy, ROC-AUC against
baselines) slot in as further ``_metrics_*`` functions called from :func:`evaluate`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from service.runtime.manifest import Calibration, LatentSpec, Metric, Prior
from training.datasets import Dataset
from training.noise import corrupt
from training.onnx_model import OnnxAutoencoder
from training.recipe import Recipe
from training.scoring import ScoreKind, scores

if TYPE_CHECKING:
    from training.anomaly import AnomalyEvaluation

LEVELS = [round(i / 100, 2) for i in range(101)]
# Sets at most this large get the exact Bayes-optimal denoiser as a reference (it enumerates them).
BAYES_MAX_SET = 256


@dataclass
class DenoisingCurve:
    """Mean wrong pixels per sample after each treatment, per flip probability."""

    levels: list[float]
    draws: int
    model: list[float]
    noisy: list[float]
    bayes: list[float] | None = None
    others: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Evaluation:
    metrics: dict[str, Metric]
    calibration: Calibration
    threshold: float
    latent: LatentSpec
    codes: np.ndarray  # training codes [n, dim] (VAE: means), for plots
    test_scores: np.ndarray
    curve: DenoisingCurve | None = None
    wrong_per_sample: np.ndarray | None = None
    missed: list[str] = field(default_factory=list)  # targets not met
    # Tabular sets (issue 5): baselines, operating point and curves (training.anomaly).
    anomaly: AnomalyEvaluation | None = None


# --- calibration and thresholds -------------------------------------------------------------

ThresholdRule = Callable[[np.ndarray, str], float]


def _quantile_rule(values: np.ndarray, arg: str) -> float:
    q = float(arg)
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    return float(np.quantile(values, q))


# rule name -> function(calibration scores, argument). Issue 5 adds label-aware rules (best_f1).
THRESHOLD_RULES: dict[str, ThresholdRule] = {"quantile": _quantile_rule}


def threshold_for(rule: str, values: np.ndarray) -> float:
    name, _, arg = rule.partition(":")
    if name not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r} (known: {', '.join(THRESHOLD_RULES)})")
    return THRESHOLD_RULES[name](values, arg)


def calibrate(values: np.ndarray, split: str) -> Calibration:
    """Quantiles of normal scores at levels 0.00, 0.01, ..., 1.00."""
    q = np.quantile(np.asarray(values, np.float64), LEVELS)
    q = np.maximum.accumulate(q)  # guard against float round-off breaking monotonicity
    return Calibration(levels=LEVELS, values=[float(v) for v in q], n=len(values), split=split)


# --- latent statistics ----------------------------------------------------------------------


def latent_spec(codes: np.ndarray, variational: bool) -> LatentSpec:
    """Bounds of the training codes; the prior: N(0, I) for VAEs, else their empirical Gaussian."""
    codes = np.asarray(codes, np.float64)
    dim = codes.shape[1]
    if variational:
        prior = Prior(kind="standard_normal")
    else:
        cov = np.atleast_2d(np.cov(codes, rowvar=False)).reshape(dim, dim)
        prior = Prior(kind="empirical", mean=codes.mean(0).tolist(), cov=cov.tolist())
    return LatentSpec(dim=dim, prior=prior, low=codes.min(0).tolist(), high=codes.max(0).tolist())


# --- metrics ----------------------------------------------------------------------------------


def wrong_pixels(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """Per-sample count of values that differ from 0/1 ``x`` after thresholding at 0.5."""
    out: np.ndarray = ((x_hat > 0.5) != (x > 0.5)).reshape(len(x), -1).sum(1)
    return out


def bayes_denoise(noisy: np.ndarray, clean_set: np.ndarray, p: float) -> np.ndarray:
    """The per-pixel MAP estimate when inputs are uniform over ``clean_set`` with flip prob. ``p``.

    This minimises the expected number of wrong pixels: no denoiser can beat it on average.
    """
    g = clean_set.reshape(len(clean_set), -1).astype(np.float64)
    v = noisy.reshape(len(noisy), -1).astype(np.float64)
    d = np.abs(v[:, None, :] - g[None]).sum(-1)  # Hamming distances [n, |set|]
    if p <= 0:
        nearest: np.ndarray = clean_set[np.argmin(d, axis=1)].astype(np.float32)
        return nearest
    logl = d * np.log(p) + (g.shape[1] - d) * np.log1p(-p)
    post = np.exp(logl - logl.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    marginal: np.ndarray = (post @ g).reshape(noisy.shape).astype(np.float32)
    return marginal


def denoising_curve(
    model: OnnxAutoencoder,
    x: np.ndarray,
    levels: tuple[float, ...],
    draws: int,
    seed: int,
    others: dict[str, OnnxAutoencoder] | None = None,
) -> DenoisingCurve:
    """Mean wrong pixels after denoising ``draws`` bit-flipped copies of each sample per level."""
    clean = np.repeat(x, draws, axis=0)
    curve = DenoisingCurve(levels=list(levels), draws=draws, model=[], noisy=[])
    bayes: list[float] = []
    extra: dict[str, list[float]] = {name: [] for name in others or {}}
    for i, p in enumerate(levels):
        noisy = corrupt(clean, "bitflip", p, seed + i)
        curve.model.append(float(wrong_pixels(clean, model.reconstruct(noisy)).mean()))
        curve.noisy.append(float(wrong_pixels(clean, noisy).mean()))
        if len(x) <= BAYES_MAX_SET:
            bayes.append(float(wrong_pixels(clean, bayes_denoise(noisy, x, p)).mean()))
        for name, other in (others or {}).items():
            extra[name].append(float(wrong_pixels(clean, other.reconstruct(noisy)).mean()))
    curve.bayes = bayes or None
    curve.others = extra
    return curve


def neg_elbo(model: OnnxAutoencoder, x: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Monte-Carlo negative ELBO per sample, in nats (binary data, Bernoulli decoder):
    E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)), the expectation over ``samples`` draws of z."""
    mu, logvar = model.encode_all(x)
    kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=1, dtype=np.float64)
    rng = np.random.default_rng(seed)
    rec = np.zeros(len(x))
    for _ in range(samples):
        z = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape).astype(np.float32)
        rec += scores(x, model.decode(z), "bce") * x[0].size  # mean -> sum over pixels
    result: np.ndarray = rec / samples + kl
    return result


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}


def meets(value: float, target: str) -> bool:
    """Whether ``value`` meets a target written like '<= 0.2'."""
    m = re.fullmatch(r"\s*(<=|>=|==|<|>)\s*(-?[0-9.eE+-]+)\s*", target)
    if not m:
        raise ValueError(f"cannot read target {target!r}; write e.g. '<= 0.2'")
    return _OPS[m.group(1)](value, float(m.group(2)))


def _level_key(p: float) -> str:
    return f"p{p:.2f}"


def evaluate(
    model: OnnxAutoencoder,
    data: Dataset,
    recipe: Recipe,
    others: dict[str, OnnxAutoencoder] | None = None,
    extra_metrics: dict[str, Metric] | None = None,
) -> Evaluation:
    """All metrics, the calibration and the latent statistics of an exported model.

    ``extra_metrics`` (e.g. the image studies' baselines) join the table before the recipe's
    targets are checked, so targets may name them.
    """
    kind: ScoreKind = data.score_kind
    ev = recipe.evaluate
    test = data.test.x
    test_scores = scores(test, model.reconstruct(test), kind)
    test_name = data.split_name("test")
    metrics: dict[str, Metric] = {
        f"{kind}_test": Metric(
            value=float(test_scores.mean()),
            split=test_name,
            description=f"mean per-sample reconstruction score ({kind}, per value)",
        )
    }
    cal_split = recipe.score.calibration_split
    cal_x = getattr(data, cal_split).x
    cal_scores = (
        test_scores if cal_split == "test" else scores(cal_x, model.reconstruct(cal_x), kind)
    )
    anomaly = None
    if data.kind == "tabular" and data.val.y is not None and data.test.y is not None:
        # Labelled tabular sets: calibrate on normal validation rows, label-aware threshold
        # rules, ROC/PR against IsolationForest and PCA (training/anomaly.py).
        from training.anomaly import evaluate_tabular

        anomaly = evaluate_tabular(
            model, data, recipe.score.threshold_rule, recipe.seed, test_scores
        )
        calibration, threshold = anomaly.calibration, anomaly.threshold
        metrics.update(anomaly.metrics)
    else:
        calibration = calibrate(cal_scores, data.split_name(cal_split))
        threshold = threshold_for(recipe.score.threshold_rule, cal_scores)

    curve = None
    wrong = None
    if data.binary:
        wrong = wrong_pixels(test, model.reconstruct(test))
        metrics["wrong_pixels_total"] = Metric(
            value=float(wrong.sum()),
            split=test_name,
            description="wrong pixels over all samples after thresholding outputs at 0.5",
        )
        metrics["wrong_pixels_max"] = Metric(
            value=float(wrong.max()),
            split=test_name,
            description="most wrong pixels in any one sample (threshold 0.5)",
        )
        curve = denoising_curve(model, test, ev.noise_levels, ev.noise_draws, ev.noise_seed, others)
        for p, v in zip(curve.levels, curve.model, strict=True):
            noisy_split = (
                f"{test_name}, {ev.noise_draws} bit-flipped draws each (seed {ev.noise_seed})"
            )
            metrics[f"wrong_pixels_denoised_{_level_key(p)}"] = Metric(
                value=v,
                split=noisy_split,
                description=f"mean wrong pixels per sample after reconstructing inputs with "
                f"each pixel flipped with probability {p:g} (threshold 0.5)",
            )
    if model.variational:
        nelbo = neg_elbo(model, test, samples=16, seed=ev.noise_seed)
        metrics["neg_elbo_test"] = Metric(
            value=float(nelbo.mean()),
            split=test_name,
            description="negative ELBO per sample in nats (16-sample Monte Carlo estimate)",
        )

    metrics.update(extra_metrics or {})
    missed: list[str] = []
    for name, target in ev.targets.items():
        if name not in metrics:
            raise KeyError(f"recipe sets a target for {name!r}, which is not measured")
        m = metrics[name]
        metrics[name] = Metric(
            value=m.value, split=m.split, description=m.description, target=target
        )
        if not meets(m.value, target):
            missed.append(f"{name} = {m.value:.4g} (target {target})")

    codes = model.encode(data.train.x)
    return Evaluation(
        metrics=metrics,
        calibration=calibration,
        threshold=threshold,
        latent=latent_spec(codes, model.variational),
        codes=codes,
        test_scores=test_scores,
        curve=curve,
        wrong_per_sample=wrong,
        missed=missed,
        anomaly=anomaly,
    )
