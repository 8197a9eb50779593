"""A model's reference set (``reference.npz`` in its folder): the codes of a fixed subset of its
dataset, for the web app's latent map and ``/neighbors`` (:class:`ReferenceIndex`).

Written at build time by ``training/reference.py`` (``make models``, or ``python -m training
reference`` for models built before it existed); read here with numpy only. The file holds:

- ``codes`` float32 ``[N, latent.dim]`` (VAEs: the posterior means), ``ids`` int64 ``[N]`` (row
  numbers in the dataset split named by ``split``), ``labels`` int64 ``[N]`` (indices into
  ``label_names``: classes, one name per sample for the font, normal/anomaly for tabular sets);
- ``plane_mean`` ``[dim]``, ``plane_axes`` ``[2, dim]`` (orthonormal rows) and ``points``
  ``[N, 2]``: a 2-D plane through the code space on which the map is drawn. For 2-D codes the
  plane is the code space itself (mean 0, identity axes); otherwise the first two principal
  axes of the codes (PCA), so ``z = plane_mean + u * plane_axes[0] + v * plane_axes[1]``
  decodes a point ``(u, v)`` of the map;
- ``inputs``: the items themselves, uint8 ``[N, H, W]`` pixels for image models (thumbnails),
  float32 ``[N, features]`` raw values for tabular ones (the tabular playground's records).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REFERENCE_FILE = "reference.npz"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceSet:
    """A reference set as plain Python values, ready to be written as JSON."""

    split: str
    plane: str  # "latent" (2-D codes) or "pca"
    codes: list[list[float]]
    ids: list[int]
    labels: list[int]
    label_names: list[str]
    plane_mean: list[float]
    plane_axes: list[list[float]]
    points: list[list[float]]
    explained: list[float]  # variance share of each plane axis (1.0 in total for 2-D codes)
    inputs: list[Any] | None

    def fields(
        self, *, inputs: bool, limit: int | None = None, codes: bool = True
    ) -> dict[str, Any]:
        """The set as JSON fields; ``inputs`` adds the items themselves, ``limit`` keeps the
        first items only, ``codes=False`` leaves the codes out (a map needs only the points)."""
        k = slice(0, limit)
        out: dict[str, Any] = {
            "split": self.split,
            "n": len(self.ids[k]),
            "plane": {
                "kind": self.plane,
                "mean": self.plane_mean,
                "axes": self.plane_axes,
                "explained": self.explained,
            },
            "ids": self.ids[k],
            "labels": self.labels[k],
            "label_names": self.label_names,
            "points": self.points[k],
            "codes": self.codes[k] if codes else None,
        }
        if inputs:
            out["inputs"] = None if self.inputs is None else self.inputs[k]
        return out


def load_reference(model_dir: Path) -> ReferenceSet | None:
    """The model's reference set, or None when its folder has none (or an unreadable one)."""
    path = model_dir / REFERENCE_FILE
    try:
        stat = path.stat()
    except OSError:
        return None
    return _load(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load(path: Path, mtime_ns: int, size: int) -> ReferenceSet | None:
    """Cached by (path, mtime, size): a rebuilt file is read again."""
    try:
        with np.load(path, allow_pickle=False) as f:
            items = f["inputs"] if "inputs" in f.files else None
            return ReferenceSet(
                split=str(f["split"]),
                plane=str(f["plane"]),
                codes=_round(f["codes"]),
                ids=[int(i) for i in f["ids"]],
                labels=[int(i) for i in f["labels"]],
                label_names=[str(s) for s in f["label_names"]],
                plane_mean=_round(f["plane_mean"]),
                plane_axes=_round(f["plane_axes"]),
                points=_round(f["points"]),
                explained=_round(f["explained"]),
                inputs=None if items is None else _items(items),
            )
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None


def _items(a: np.ndarray[Any, Any]) -> Any:
    return a.tolist() if a.dtype == np.uint8 else _round(a)


def _round(a: np.ndarray[Any, Any]) -> Any:
    # 6 significant digits are plenty for a map; the JSON is a third the size of full floats.
    return np.asarray(a, dtype=np.float64).round(6).tolist()


# Query rows per block of :meth:`ReferenceIndex.nearest`'s sort (their distances are computed
# row by row; the sort takes a block at once).
_BLOCK = 64


@dataclass(frozen=True, eq=False)
class ReferenceIndex:
    """A reference set as arrays, for ``/neighbors``: exact nearest codes by Euclidean distance.

    Loaded with the model (:func:`load_index`); read-only afterwards."""

    split: str
    codes: npt.NDArray[np.float64]  # [M, dim]
    ids: npt.NDArray[np.int64]  # [M]
    labels: npt.NDArray[np.int64]  # [M]
    label_names: list[str]
    inputs: npt.NDArray[Any] | None  # [M, *shape]: uint8 pixels (images) or float32 raw values

    @property
    def size(self) -> int:
        return len(self.ids)

    def nearest(
        self, z: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Rows of the ``k`` nearest references of each code ``z`` [N, dim] and their distances,
        nearest first (ties: the lower row first). [N, k] each.

        Each row's squared distances are computed on their own (no matrix product, whose
        blocking depends on the batch): a row's answer has the same bits whatever else is in
        the batch."""
        n = len(z)
        rows = np.empty((n, k), dtype=np.int64)
        dist = np.empty((n, k), dtype=np.float64)
        q = z.astype(np.float64)
        codes = self.codes
        for a in range(0, n, _BLOCK):
            block = q[a : a + _BLOCK]
            d2 = np.empty((len(block), len(codes)), dtype=np.float64)
            for i, row in enumerate(block):
                diff = codes - row
                np.einsum("md,md->m", diff, diff, out=d2[i])
            order = np.argsort(d2, axis=1, kind="stable")[:, :k]
            rows[a : a + _BLOCK] = order
            dist[a : a + _BLOCK] = np.sqrt(np.take_along_axis(d2, order, axis=1))
        return rows, dist


def load_index(model_dir: Path, latent_dim: int, shape: tuple[int, ...]) -> ReferenceIndex | None:
    """The model's reference set for ``/neighbors``, or None when it has none. A set that does
    not fit the model (code size, item shape) or cannot be read is ignored with a warning."""
    path = model_dir / REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            codes = np.asarray(f["codes"], dtype=np.float64)
            ids = np.asarray(f["ids"], dtype=np.int64)
            labels = np.asarray(f["labels"], dtype=np.int64)
            names = [str(s) for s in f["label_names"]]
            inputs = np.asarray(f["inputs"]) if "inputs" in f.files else None
            split = str(f["split"])
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None
    m = len(ids)
    problems = []
    if codes.shape != (m, latent_dim) or not np.isfinite(codes).all():
        problems.append(f"codes {list(codes.shape)}, the model's codes have {latent_dim} values")
    if labels.shape != (m,) or (m and (labels.min() < 0 or labels.max() >= len(names))):
        problems.append("labels do not index label_names")
    if inputs is not None and (len(inputs) != m or inputs.shape[1:] != shape):
        logger.warning(
            "%s: items of shape %s do not fit the model's %s; neighbours without them",
            path,
            list(inputs.shape),
            list(shape),
        )
        inputs = None
    if m == 0 or problems:
        logger.warning("ignoring %s: %s", path, "; ".join(problems) or "no items")
        return None
    return ReferenceIndex(split, codes, ids, labels, names, inputs)
