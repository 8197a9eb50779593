"""Reference sets: the codes of a fixed subset of a model's dataset, written as
``reference.npz`` into the model folder (the layout is documented in
``service/runtime/reference.py``).

The pipeline writes one for every model it builds; ``python -m training reference`` writes them
for models built before, with the shipped encoder (onnxruntime, no torch, no retraining). The
subset is fixed: the first ``REFERENCE_SIZE`` rows of a seeded permutation of the test split
(all 32 glyphs for the font), so a rebuild picks the same items.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from service.runtime.manifest import Manifest
from service.runtime.reference import REFERENCE_FILE
from training.datasets import Dataset, load_dataset
from training.onnx_model import OnnxAutoencoder

log = logging.getLogger(__name__)

REFERENCE_SIZE = 1000
REFERENCE_SEED = 0


def reference_arrays(
    onnx: OnnxAutoencoder, data: Dataset, n: int = REFERENCE_SIZE, seed: int = REFERENCE_SEED
) -> dict[str, np.ndarray]:
    """The arrays of ``reference.npz`` for ``data``'s test split encoded by ``onnx``."""
    split = data.test
    ids = subset(len(split), n, seed)
    x = split.x[ids]
    codes = np.concatenate([onnx.encode(x[i : i + 256]) for i in range(0, len(x), 256)])
    labels, names = _labels(data, ids)
    raw = None
    if data.kind == "image":
        raw = x
    elif data.scaler_mean is not None and data.scaler_std is not None:  # raw values
        raw = x * np.asarray(data.scaler_std) + np.asarray(data.scaler_mean)
    return arrays(
        codes, ids, labels, names, "test", kind=data.kind, inputs=raw, value_range=data.value_range
    )


def subset(n_items: int, n: int = REFERENCE_SIZE, seed: int = REFERENCE_SEED) -> np.ndarray:
    """The reference set's rows: the first ``n`` of a seeded permutation, in order (all rows
    when there are no more than ``n``)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n_items)[:n]) if n_items > n else np.arange(n_items)


def arrays(
    codes: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    split: str,
    *,
    kind: str,
    inputs: np.ndarray | None,
    value_range: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of ``reference.npz`` from items already encoded: ``inputs`` are the items in
    the model's units (images: scaled to 0-255 thumbnails from ``value_range``; tabular: the
    raw values a client sends)."""
    codes = codes.astype(np.float32)
    mean, axes, explained = _plane(codes)
    out: dict[str, np.ndarray] = {
        "split": np.array(split),
        "codes": codes,
        "ids": ids.astype(np.int64),
        "labels": labels.astype(np.int64),
        "label_names": np.array(names),
        "plane": np.array("latent" if codes.shape[1] == 2 else "pca"),
        "plane_mean": mean,
        "plane_axes": axes,
        "points": ((codes - mean) @ axes.T).astype(np.float32),
        "explained": explained,
    }
    if inputs is not None and kind == "image":
        lo, hi = value_range or (0.0, 1.0)
        scaled = (inputs - lo) / (hi - lo) * 255.0
        out["inputs"] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    elif inputs is not None:
        out["inputs"] = inputs.astype(np.float32)
    return out


def _labels(data: Dataset, ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Label index per item and the names they index."""
    if data.label_kind == "sample" and data.label_names:  # the font: one name per glyph
        return ids.astype(np.int64), list(data.label_names)
    y = data.test.y
    if y is None:
        return np.zeros(len(ids), np.int64), ["item"]
    labels = y[ids].astype(np.int64)
    if data.kind == "tabular":
        return labels, ["normal", "anomaly"]
    names = data.label_names or [str(c) for c in range(int(y.max()) + 1)]
    return labels, list(names)


def _plane(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin, two orthonormal axes [2, dim] and their variance shares: the code space itself
    for 2-D codes, else the codes' first two principal axes (signs fixed: largest loading > 0)."""
    dim = codes.shape[1]
    var = codes.astype(np.float64).var(axis=0)
    if dim == 2:
        return (
            np.zeros(2, np.float32),
            np.eye(2, dtype=np.float32),
            (var / var.sum()).astype(np.float32),
        )
    mean = codes.mean(axis=0, dtype=np.float64)
    _, s, vt = np.linalg.svd(codes - mean, full_matrices=False)
    axes = vt[:2]
    flip = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * flip[:, None]
    explained = s[:2] ** 2 / (s**2).sum()
    return mean.astype(np.float32), axes.astype(np.float32), explained.astype(np.float32)


def write_reference(model_dir: Path, onnx: OnnxAutoencoder, data: Dataset) -> Path:
    path = model_dir / REFERENCE_FILE
    np.savez_compressed(path, **reference_arrays(onnx, data))  # type: ignore[arg-type]
    return path


def write_for_model(model_dir: Path, data_dir: Path | None = None) -> Path:
    """Encode the reference set of an already built model with its own ONNX encoder."""
    manifest = Manifest.read(model_dir)
    options = dict(manifest.training.extra.get("dataset_options", {}))
    if data_dir is not None:
        options["data_dir"] = data_dir
    data = load_dataset(manifest.training.dataset, **options)
    path = write_reference(model_dir, OnnxAutoencoder(model_dir), data)
    log.info("%s: %s (%d bytes)", manifest.name, path, path.stat().st_size)
    return path
