"""Write the sample inputs of examples/ (run once; the files are committed).

- ``glyph-e.png``: the glyph 'e' of the font models (5x7, white ink on black, as ``font.h``);
- ``digit-7.png``: the first image of the MNIST test split (28x28 grayscale, a 7);
- ``mnist-batch.npy``: the first 16 MNIST test images, float32 [16, 28, 28] in [0, 1];
- ``shuttle.csv``: 20 rows of the shuttle set (river's ``shuttle.csv.gz``), 17 normal and 3
  anomalies, with an ``id`` column and the ``anomaly`` label (ignored by the scorers).

Needs ``make data`` (data/mnist, data/river). Usage: ``.venv/bin/python scripts/make-examples.py``
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from training.datasets.font import COLS, FIRST_CHAR, FONT_ROWS, ROWS
from training.datasets.idx import read_idx

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "examples"
DATA = REPO / "data"


def glyph(char: str) -> np.ndarray:
    rows = FONT_ROWS[ord(char) - FIRST_CHAR]
    bits = [[(r >> (COLS - 1 - c)) & 1 for c in range(COLS)] for r in rows]
    a = np.array(bits, dtype=np.uint8)
    assert a.shape == (ROWS, COLS)
    return a


def main() -> None:
    Image.fromarray(glyph("e") * 255, mode="L").save(OUT / "glyph-e.png", optimize=True)
    images = read_idx(DATA / "mnist" / "t10k-images-idx3-ubyte.gz")
    Image.fromarray(images[0], mode="L").save(OUT / "digit-7.png", optimize=True)
    np.save(OUT / "mnist-batch.npy", (images[:16] / 255.0).astype(np.float32))
    with gzip.open(DATA / "river" / "shuttle.csv.gz", "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    normal = [r for r in rows if r["anomaly"] == "0"][:17]
    anomalies = [r for r in rows if r["anomaly"] == "1"][:3]
    # 17 normal rows with the 3 anomalies in between (records 7, 14 and 20).
    picked = [*normal[:6], anomalies[0], *normal[6:12], anomalies[1], *normal[12:], anomalies[2]]
    with open(OUT / "shuttle.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", *[f"f{i}" for i in range(1, 10)], "anomaly"])
        for i, r in enumerate(picked, start=1):
            w.writerow([f"tx-{1000 + i}", *[r[f"f{k}"] for k in range(1, 10)], r["anomaly"]])


if __name__ == "__main__":
    main()
