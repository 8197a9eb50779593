"""Plots of the image zoo's cards (issue 4): interpolation strips, noisy/denoised rows, the 2-D
latent map beside PCA's, one-class AUCs. Same conventions as :mod:`training.plots`."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from training.plots import _save, _show, montage


def interpolation(strips: np.ndarray, path: Path, title: str) -> Path:
    """``strips`` [rows, steps, H, W]: each row decodes codes on the segment between two test
    images' codes (first and last columns are the reconstructions of the two ends)."""
    rows, steps, h, w = strips.shape
    fig, ax = plt.subplots(figsize=(0.55 * steps + 1, 0.6 * rows + 0.8))
    _show(ax, montage(strips.reshape(rows * steps, h, w), steps), title)
    return _save(fig, path)


def image_rows(rows: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """One labelled montage row per (label, images [n, H, W]) pair."""
    ncols = min(len(rows[0][1]), 16)
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.6 * ncols + 1, 1.2 * len(rows)))
    for ax, (label, imgs) in zip(np.atleast_1d(axes), rows, strict=True):
        _show(ax, montage(np.clip(imgs[:ncols], 0, 1), ncols), label)
    return _save(fig, path)


def latent_maps(
    maps: list[tuple[str, np.ndarray]],
    labels: np.ndarray,
    names: list[str] | None,
    path: Path,
    axis_names: tuple[str, ...] = (),
) -> Path:
    """2-D codes side by side (e.g. the autoencoder's and PCA's), coloured by class;
    ``axis_names``: the first axis' name per map (default ``z[0]``, then ``z[1]``)."""
    fig, axes = plt.subplots(1, len(maps), figsize=(6 * len(maps), 5.4))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10")
    for i, (ax, (title, codes)) in enumerate(zip(np.atleast_1d(axes), maps, strict=True)):
        for c in classes:
            sel = labels == c
            name = names[int(c)] if names is not None and int(c) < len(names) else str(c)
            ax.scatter(codes[sel, 0], codes[sel, 1], s=2, color=cmap(int(c) % 10), label=name)
        ax.set_title(title, fontsize=10)
        first = axis_names[i] if i < len(axis_names) else "z[0]"
        ax.set_xlabel(first)
        ax.set_ylabel(first[:-1] + "2" if first.endswith(" 1") else "z[1]")
        ax.grid(alpha=0.3)
    handles, texts = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="center right", markerscale=5, fontsize=8)
    fig.subplots_adjust(right=0.86)
    return _save(fig, path)


def one_class_bars(
    auc_ae: list[float], auc_pca: list[float], names: list[str], path: Path, title: str
) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.4))
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, auc_ae, 0.4, label=f"autoencoder (mean {np.mean(auc_ae):.3f})")
    ax.bar(pos + 0.2, auc_pca, 0.4, label=f"PCA (mean {np.mean(auc_pca):.3f})")
    ax.set_xticks(pos)
    ax.set_xticklabels(names, fontsize=8, rotation=20)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("ROC-AUC (class vs rest)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
