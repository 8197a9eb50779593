"""Calibration samples for ``aeserve package``: a .npy array, a CSV, or a folder of images.

numpy and Pillow only (the runtime install). The samples should be *normal* data the model did
not train on: their scores calibrate the percentiles and set the threshold.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, cast

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from aeserve.errors import UserError
from aeserve.progress import progress

F32 = npt.NDArray[np.float32]
Kind = Literal["image", "tabular"]
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class Samples:
    """Samples ``x`` float32 [N, *shape] and what they are."""

    x: F32
    kind: Kind
    features: list[str] | None  # tabular: column names
    source: str  # for the manifest and the card, e.g. "normal.npy (500 samples)"

    @property
    def shape(self) -> list[int]:
        return [int(d) for d in self.x.shape[1:]]


def load_samples(
    path: Path, kind: Kind | None = None, drop: list[str] | None = None, *, quiet: bool = False
) -> Samples:
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if path.is_dir():
        x, source = _images(path, quiet), f"{path.name}/"
        inferred: Kind = "image"
        features = None
    elif path.suffix == ".npy":
        x, source = _npy(path), path.name
        inferred = "tabular" if x.ndim == 2 else "image"
        features = None
    elif path.name.endswith((".csv", ".csv.gz")):
        x, features = _csv(path, drop or [])
        source, inferred = path.name, "tabular"
    else:
        raise UserError(f"{path}: calibration data must be a .npy file, a .csv file or a folder")
    kind = kind or inferred
    if kind == "tabular":
        if x.ndim != 2:
            raise UserError(f"{path}: tabular samples must be [N, features], got {list(x.shape)}")
        features = features or [f"f{i + 1}" for i in range(x.shape[1])]
    elif features is not None:
        raise UserError(f"{path}: a CSV holds tabular samples; use .npy or a folder for images")
    if len(x) < 2:
        raise UserError(
            f"{path}: {len(x)} sample(s); calibration needs at least 2 (100+ is better)"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        where = np.argwhere(bad)[0].tolist()
        raise UserError(f"{path}: sample {where[0]} holds a NaN or infinite value at {where[1:]}")
    return Samples(x=x, kind=kind, features=features, source=f"{source} ({len(x):,} samples)")


def _npy(path: Path) -> F32:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable .npy array of numbers ({exc})") from None
    if (
        not isinstance(arr, np.ndarray)
        or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise UserError(f"{path}: holds {getattr(arr, 'dtype', type(arr))}, not real numbers")
    if arr.ndim < 2:
        raise UserError(f"{path}: shape {list(arr.shape)}; samples must be [N, *shape]")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _csv(path: Path, drop: list[str]) -> tuple[F32, list[str]]:
    with _binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
        try:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise UserError(f"{path}: the file is empty")
            for name in drop:
                if name not in header:
                    raise UserError(f"{path}: no column {name!r} to drop")
            keep = [i for i, h in enumerate(header) if h not in drop]
            if not keep:
                raise UserError(f"{path}: no columns left")
            rows = []
            for lineno, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise UserError(
                        f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}"
                    )
                try:
                    values = [float(row[i]) for i in keep]
                except ValueError:
                    raise UserError(
                        f"{path}:{lineno}: every kept cell must be a number (categorical columns: "
                        "use `aeserve fit-csv`, or --drop them)"
                    ) from None
                if not all(math.isfinite(v) for v in values):
                    raise UserError(f"{path}:{lineno}: a cell is not a finite number")
                rows.append(values)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UserError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise UserError(f"{path}: no data rows")
    return np.asarray(rows, dtype=np.float32), [header[i] for i in keep]


def _images(folder: Path, quiet: bool) -> F32:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images: list[npt.NDArray[np.uint8]] = []
    for file in progress(files, len(files), "reading images", quiet=quiet):
        try:
            with Image.open(file) as img:
                pixels = np.asarray(img.convert("L"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{file}: not a readable image ({exc})") from None
        if images and pixels.shape != images[0].shape:
            raise UserError(
                f"{file}: {pixels.shape[1]}x{pixels.shape[0]} pixels, {files[0].name} is "
                f"{images[0].shape[1]}x{images[0].shape[0]}; all images must have one size"
            )
        images.append(pixels)
    x: F32 = np.stack(images).astype(np.float32) / np.float32(255.0)
    return x
