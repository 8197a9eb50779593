"""``card.md`` and plots for a packaged model (``aeserve package``).

Plots need matplotlib (the ``train`` extra); without it the card says so and lists none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aeserve.data import Samples
from service.runtime.manifest import CARD_FILE, Manifest

MAX_SHOWN = 8  # reconstructions on the card


def _plots(
    work: Path,
    m: Manifest,
    samples: Samples,
    scores: np.ndarray,
    codes: np.ndarray,
    x_hat: np.ndarray,
) -> dict[str, tuple[str, str]]:
    """Draw the plots into ``work``: file -> (title, caption)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, tuple[str, str]] = {}
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(scores, bins=min(50, max(10, len(scores) // 10)), color="#4c72b0")
    ax.axvline(m.score.threshold, color="#c44e52", linestyle="--", label="threshold")
    ax.set_xlabel(f"score ({m.score.kind})")
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(work / "scores.png", dpi=100)
    plt.close(fig)
    out["scores.png"] = (
        "Calibration scores",
        f"Scores of the {len(scores):,} calibration samples and the threshold "
        f"({m.score.threshold_rule}).",
    )
    if codes.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(codes[:, 0], codes[:, 1], s=6, c=scores, cmap="viridis")
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        fig.tight_layout()
        fig.savefig(work / "latent.png", dpi=100)
        plt.close(fig)
        out["latent.png"] = ("Latent map", "Codes of the calibration samples, coloured by score.")
    if samples.kind == "image" and len(samples.shape) == 2:
        n = min(MAX_SHOWN, len(samples.x))
        lo, hi = m.input.range or (0.0, 1.0)
        fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
        for i in range(n):
            for row, img in enumerate((samples.x[i], x_hat[i])):
                axes[row][i].imshow(img, cmap="gray", vmin=lo, vmax=hi)
                axes[row][i].axis("off")
        fig.suptitle("calibration samples (top) and reconstructions")
        fig.tight_layout()
        fig.savefig(work / "reconstructions.png", dpi=100)
        plt.close(fig)
        out["reconstructions.png"] = ("Reconstructions", "The first calibration samples.")
    return out


def write_card(
    work: Path,
    m: Manifest,
    samples: Samples,
    scores: np.ndarray,
    codes: np.ndarray,
    x_hat: np.ndarray,
    parity: float | None,
) -> Path:
    try:
        plots = _plots(work, m, samples, scores, codes, x_hat)
        note = ""
    except ImportError:
        plots, note = {}, "No plots: matplotlib is not installed (pip install 'aeserve[train]')."
    cal = m.score.calibration
    source: dict[str, Any] = m.training.architecture
    origin = (
        f"PyTorch module `{source.get('factory')}`, exported with torch.onnx.export; onnxruntime "
        f"matches torch within {parity:.2g} (max abs difference, tolerance 1e-4)"
        if parity is not None
        else f"ONNX files `{source.get('encoder')}` and `{source.get('decoder')}`"
    )
    lines = [
        f"# {m.name}",
        "",
        m.description,
        "",
        f"- version `{m.version}` · family `{m.family}` · packaged {m.created_at}",
        f"- input: {m.input.kind} {m.input.shape}, range {m.input.range}"
        + (", binary (0/1)" if m.input.binary else ""),
        f"- latent: {m.latent.dim}-D, prior `{m.latent.prior.kind}`"
        + (" (mean and covariance of the calibration codes)" if m.family == "ae" else ""),
        f"- from: {origin}",
        "",
        "Trained outside aeserve: how it was trained (data, seed, epochs) is not recorded here.",
        "",
        "## Checks",
        "",
        "- contract: input `x` and outputs `z` (or `mu`, `logvar`) / `x_hat`, float32, shapes "
        "that match the data; the batch axis is dynamic (batches of 1 and 3 run)",
        "- the folder loads as the server loads it (manifest, sha256, signatures, a test batch)",
        "",
        "## Anomaly score",
        "",
        f"Score: per-sample mean `{m.score.kind}` over the input values, on {cal.n:,} "
        f"calibration samples ({cal.split}): median {cal.values[50]:.4g}, 99th percentile "
        f"{cal.values[99]:.4g}, max {cal.values[-1]:.4g}. Threshold {m.score.threshold:.4g} "
        f"(`{m.score.threshold_rule}`): about {100 * (1 - _q(m.score.threshold_rule)):.3g}% of "
        "normal samples score above it.",
        "",
        "## Plots",
    ]
    if note:
        lines += ["", note]
    for file, (title, caption) in plots.items():
        lines += ["", f"### {title}", "", caption, "", f"![{title}]({file})"]
    lines += ["", "## Rebuild", "", "```sh", m.training.command, "```", ""]
    path = work / CARD_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _q(rule: str) -> float:
    _, _, arg = rule.partition(":")
    return float(arg) if arg else 0.99
