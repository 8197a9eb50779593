"""The card's plots (matplotlib, Agg backend: no display needed). Each function writes one PNG."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, deterministic rendering
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from training.evaluate import DenoisingCurve

DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def montage(images: np.ndarray, ncols: int, pad: int = 1, fill: float = 0.5) -> np.ndarray:
    """Tile ``images`` [n, H, W] into one 2-D array, ``ncols`` per row, separated by ``pad``."""
    n, h, w = images.shape
    nrows = math.ceil(n / ncols)
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), fill, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = img
    return out


def _show(ax: Axes, img: np.ndarray, title: str = "") -> None:
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def loss_curve(history: list[float], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(np.arange(1, len(history) + 1), history, lw=1)
    if history and min(history) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss per sample")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def reconstructions(
    x: np.ndarray, x_hat: np.ndarray, path: Path, binary: bool, labels: list[str] | None = None
) -> Path:
    """Inputs above, reconstructions below; for 0/1 data the thresholded output with wrong pixels
    in red."""
    n = min(len(x), 32)
    x, x_hat = x[:n], x_hat[:n]
    ncols = min(n, 16)
    shown = (x_hat > 0.5).astype(np.float32) if binary else x_hat
    fig, axes = plt.subplots(2, 1, figsize=(min(12, 0.75 * ncols + 1), 2.6 * math.ceil(n / ncols)))
    _show(axes[0], montage(x, ncols), "input")
    rec = montage(shown, ncols)
    _show(axes[1], rec, "reconstruction" + (" (threshold 0.5; wrong pixels red)" if binary else ""))
    if binary:
        wrong = montage((shown != x).astype(np.float32), ncols, fill=0.0)
        overlay = np.zeros((*wrong.shape, 4))
        overlay[wrong > 0] = (0.9, 0.1, 0.1, 0.9)
        axes[1].imshow(overlay, interpolation="nearest")
    if labels is not None:
        axes[0].set_title("input: " + " ".join(labels[:n]), fontsize=8)
    return _save(fig, path)


def latent_map(
    codes: np.ndarray,
    path: Path,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    names: list[str] | None = None,
) -> Path:
    """2-D codes; small sets get each sample's image drawn at its code."""
    fig, ax = plt.subplots(figsize=(6.5, 6))
    if images is not None and len(images) <= 64:
        ax.scatter(codes[:, 0], codes[:, 1], s=4, c="tab:blue")
        for i, (c, img) in enumerate(zip(codes, images, strict=True)):
            box = OffsetImage(img, zoom=3.2, cmap="gray_r", interpolation="nearest")
            ax.add_artist(AnnotationBbox(box, (c[0], c[1]), frameon=True, pad=0.1))
            if names is not None:
                ax.annotate(
                    names[i],
                    (c[0], c[1]),
                    xytext=(9, 9),
                    textcoords="offset points",
                    fontsize=8,
                    color="tab:red",
                )
    elif labels is None:  # unlabelled sets (aeserve fit-csv without --label)
        ax.scatter(codes[:, 0], codes[:, 1], s=3, c="tab:blue", alpha=0.6)
    else:
        sc = ax.scatter(codes[:, 0], codes[:, 1], s=3, c=labels, cmap="tab10", alpha=0.6)
        fig.colorbar(sc, ax=ax)
    span = np.ptp(codes, axis=0) * 0.08 + 1e-3
    ax.set_xlim(codes[:, 0].min() - span[0], codes[:, 0].max() + span[0])
    ax.set_ylim(codes[:, 1].min() - span[1], codes[:, 1].max() + span[1])
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("training samples at their codes", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def latent_grid(
    decoded: np.ndarray, grid0: np.ndarray, grid1: np.ndarray, path: Path, title: str
) -> Path:
    """``decoded`` [len(grid1), len(grid0), H, W]: row i decodes z = (grid0[j], grid1[i]),
    drawn with z[1] increasing upwards."""
    rows, cols, h, w = decoded.shape
    flipped = decoded[::-1].reshape(rows * cols, h, w)
    img = montage(flipped, cols, pad=1, fill=0.35)
    fig, ax = plt.subplots(figsize=(0.55 * cols + 1, 0.7 * rows + 1))
    _show(ax, img, title)
    step_x, step_y = w + 1, h + 1
    ax.set_xticks([1 + j * step_x + w / 2 for j in range(0, cols, 3)])
    ax.set_xticklabels([f"{grid0[j]:.2g}" for j in range(0, cols, 3)], fontsize=7)
    ax.set_yticks([1 + i * step_y + h / 2 for i in range(0, rows, 3)])
    ax.set_yticklabels([f"{grid1[::-1][i]:.2g}" for i in range(0, rows, 3)], fontsize=7)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    return _save(fig, path)


def samples(images: np.ndarray, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 0.8 * math.ceil(len(images) / 16) + 0.8))
    _show(ax, montage(images, min(16, len(images))), title)
    return _save(fig, path)


def denoising(curve: DenoisingCurve, path: Path, name: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(curve.levels, curve.noisy, "o--", color="gray", label="noisy input (no model)")
    for other, values in curve.others.items():
        ax.plot(curve.levels, values, "s-", label=f"{other} (plain)")
    ax.plot(curve.levels, curve.model, "o-", lw=2, label=name)
    if curve.bayes is not None:
        ax.plot(
            curve.levels, curve.bayes, ":", color="black", label="Bayes-optimal (knows the set)"
        )
    ax.set_xlabel("flip probability p")
    ax.set_ylabel("mean wrong pixels per sample")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_title(
        f"denoising bit-flipped inputs ({curve.draws} draws per sample and p)", fontsize=10
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def denoising_examples(clean: np.ndarray, rows: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """The clean samples, then one row per (label, images) pair."""
    ncols = min(len(clean), 16)
    fig, axes = plt.subplots(len(rows) + 1, 1, figsize=(0.6 * ncols + 1, 1.3 * (len(rows) + 1)))
    _show(axes[0], montage(clean[:ncols], ncols), "clean")
    for ax, (label, imgs) in zip(axes[1:], rows, strict=True):
        _show(ax, montage(imgs[:ncols], ncols), label)
    return _save(fig, path)


def sample_errors(
    score: np.ndarray, path: Path, names: list[str] | None, wrong: np.ndarray | None, kind: str
) -> Path:
    """Per-sample reconstruction score (and wrong pixels); a histogram for large sets."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if names is not None and len(score) <= 64:
        pos = np.arange(len(score))
        ax.bar(pos, score, color="tab:blue", label=f"{kind} score")
        ax.set_xticks(pos)
        ax.set_xticklabels(names, fontsize=8)
        ax.set_ylabel(f"{kind} per value")
        if wrong is not None:
            ax2 = ax.twinx()
            ax2.plot(pos, wrong, "o", color="tab:red", label="wrong pixels")
            ax2.set_ylabel("wrong pixels", color="tab:red")
            ax2.set_ylim(bottom=-0.2, top=max(1.0, float(wrong.max())) + 0.5)
    else:
        ax.hist(score, bins=50)
        ax.set_xlabel(f"{kind} per value")
        ax.set_ylabel("samples")
    ax.set_title("reconstruction error per sample", fontsize=10)
    return _save(fig, path)
