"""``card.md``: what the model is, its data, architecture, metrics, plots and how to rebuild it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.runtime.manifest import CARD_FILE, Manifest, Metric
from training.datasets import Dataset
from training.evaluate import Evaluation, meets


def _fmt(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() and abs(v) < 1e6 else f"{v:.4g}"


def metric_row(name: str, metric: Metric) -> str:
    """One row of the card's metrics table."""
    target = ""
    if metric.target:
        ok = meets(metric.value, metric.target)
        target = f"{metric.target} {'✓' if ok else '✗ MISSED'}"
    cells = [f"`{name}`", _fmt(metric.value), target, metric.split, metric.description]
    return "| " + " | ".join(cells) + " |"


def _columns(m: Manifest) -> list[str]:
    """The raw columns of a model fitted on a user's table: what clients send as ``records``."""
    if m.tabular is None:
        return []
    lines = [
        "### Columns",
        "",
        "Clients send these raw columns as `records`; the service encodes them (categories "
        "one-hot, missing cells as below; missing means null, absent or one of "
        f"{m.tabular.missing_values}).",
        "",
        "| column | kind | values | missing cells |",
        "| --- | --- | --- | --- |",
    ]
    for c in m.tabular.columns:
        if c.kind == "categorical":
            cats = c.categories or []
            values = ", ".join(f"`{v}`" for v in cats[:12]) + (" …" if len(cats) > 12 else "")
            fill = "all-zero one-hot"
        else:
            values = "number"
            fill = f"filled with {_fmt(c.fill or 0.0)}" + (" + indicator" if c.indicator else "")
        policy = "refused (422)" if c.missing == "refuse" else fill
        lines.append(f"| `{c.name}` | {c.kind} | {values} | {policy} |")
    return [*lines, ""]


def _build_time(extra: dict[str, Any]) -> list[str]:
    """The whole build's time (training plus the card's studies), when the manifest has it."""
    if "build_s" not in extra:
        return []
    return [
        f"- whole build (training, export, studies, baselines): {extra['build_s']:.0f} s wall, "
        f"{extra['build_cpu_s']:.0f} s CPU (wall grows with the machine's load; CPU much less)"
    ]


def write_card(
    out_dir: Path,
    manifest: Manifest,
    data: Dataset,
    evaluation: Evaluation,
    plots: dict[str, tuple[str, str]],
    sections: list[str] | None = None,
) -> Path:
    """``plots``: file name -> (section title, one-line caption), in the order to show them;
    ``sections``: extra markdown (e.g. baseline tables) placed after the metrics."""
    m, t = manifest, manifest.training
    arch = ", ".join(f"{k}={v}" for k, v in t.architecture.items())
    noise = f"{t.denoising.kind} {t.denoising.level:g}" if t.denoising else "no"
    lines = [
        f"# {m.name}",
        "",
        m.description,
        "",
        f"- version `{m.version}` · family `{m.family}` · created {m.created_at}",
        f"- input: {m.input.kind} {m.input.shape}, range {m.input.range}"
        + (", binary (0/1)" if m.input.binary else ""),
        f"- latent: {m.latent.dim}-D, prior `{m.latent.prior.kind}`",
        "",
        "## Data",
        "",
        f"Dataset `{t.dataset}`: {len(data.train)} training, {len(data.val)} validation, "
        f"{len(data.test)} test samples. {data.splits_note}",
        "",
        *_columns(m),
        "## Architecture and training",
        "",
        f"- architecture: {arch}",
        f"- seed {t.seed}, {t.epochs} epochs, {t.duration_s:.1f} s on CPU, "
        f"final training loss {t.final_loss:.4g} per sample",
        *_build_time(t.extra),
        f"- denoising: {noise}; regularizer: {t.regularizer.kind if t.regularizer else 'none'}",
        f"- options: {', '.join(f'{k}={v}' for k, v in t.extra.get('train_options', {}).items())}",
        "",
        "## Metrics",
        "",
        "Measured on the exported ONNX files with onnxruntime.",
        "",
        "| metric | value | target | split | what |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [metric_row(name, metric) for name, metric in m.metrics.items()]
    if evaluation.anomaly is not None:
        lines += evaluation.anomaly.card_lines()
    curve = evaluation.curve
    if curve is not None:
        lines += [
            "",
            "### Denoising bit-flipped inputs",
            "",
            f"Mean wrong pixels per sample after thresholding at 0.5, over {curve.draws} noisy "
            "draws of every sample per flip probability p (the same draws for every column).",
            "",
            "| p | noisy input | "
            + " | ".join(f"`{o}`" for o in curve.others)
            + (" | " if curve.others else "")
            + f"`{m.name}` |"
            + (" Bayes-optimal |" if curve.bayes else ""),
            "| --- " * (3 + len(curve.others) + (1 if curve.bayes else 0)) + "|",
        ]
        for i, p in enumerate(curve.levels):
            cells = [f"{p:.2f}", f"{curve.noisy[i]:.3f}"]
            cells += [f"{v[i]:.3f}" for v in curve.others.values()]
            cells.append(f"**{curve.model[i]:.3f}**")
            if curve.bayes:
                cells.append(f"{curve.bayes[i]:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        if curve.bayes:
            lines += [
                "",
                "Bayes-optimal: the per-pixel posterior majority when the clean input is known to "
                "be one of the set's samples, uniformly; no denoiser can do better on average.",
            ]
    for section in sections or []:
        lines += ["", section]
    cal = m.score.calibration
    lines += [
        "",
        "## Anomaly score",
        "",
        f"Score: per-sample mean `{m.score.kind}` over the input values. Calibrated on "
        f"{cal.n} scores ({cal.split}): median {cal.values[50]:.4g}, max {cal.values[-1]:.4g}. "
        f"Threshold {m.score.threshold:.4g} (`{m.score.threshold_rule}`).",
        "",
        "## Plots",
    ]
    for file, (title, caption) in plots.items():
        lines += ["", f"### {title}", "", caption, "", f"![{title}]({file})"]
    lines += [
        "",
        "## Rebuild",
        "",
        "```sh",
        t.command,
        "```",
        "",
        (f"Recipe: `{t.recipe}`. " if t.recipe else "No recipe file: the command holds it. ")
        + "Same recipe and seed give the same weights on the same machine "
        "(one CPU thread, deterministic algorithms); the manifest's `version` is a hash of the two "
        "ONNX files.",
        "",
    ]
    path = out_dir / CARD_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
