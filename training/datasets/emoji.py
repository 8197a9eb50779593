"""``emoji``: emoji glyphs of a Debian font rendered with Pillow into 32x32 grayscale images.

Source: the outline glyphs of ``fonts-symbola`` (Debian; ``make sysdeps`` installs it), in the
faces, animals, food and objects blocks: every code point the font draws (its ``.notdef`` box and
blank glyphs are left out). Each glyph is rendered large, cropped to its ink, fitted into 28x28
and centred on a 32x32 canvas: ink 1, background 0 (like MNIST).

Splits (all seeded): every 8th glyph (in code-point order) is held out; the **test** split is
those glyphs as rendered (a fixed set never seen in training, for the held-out ELBO). **train**
holds each other glyph as rendered plus ``augment`` copies with light augmentation (scale 0.8-1,
shifts of up to 2 pixels, a thicker stroke for a third of them); **val** three more augmented
copies of each training glyph (calibration). Labels ``y`` index ``label_names`` (one per glyph:
code point and Unicode name).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Final

import numpy as np

from training.datasets.base import Dataset, Split, register
from training.datasets.idx import DataMissingError

SYMBOLA: Final = Path("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf")
# (first, last) code points: emoticons, animals, food and drink, objects, supplemental faces.
BLOCKS: Final = (
    (0x1F600, 0x1F64F),
    (0x1F400, 0x1F43F),
    (0x1F345, 0x1F37F),
    (0x1F4A0, 0x1F4FF),
    (0x1F910, 0x1F9FF),
)
SIZE: Final = 32  # canvas, pixels
FIT: Final = 28  # the glyph's longer side at scale 1
RENDER: Final = 96  # font size of the large rendering (pixels)
HOLD_OUT_EVERY: Final = 8


def font_path(data_dir: Path | str | None) -> Path:
    """The font: ``data_dir`` (a .ttf/.otf file or a directory holding one), else Symbola."""
    if data_dir is not None:
        p = Path(data_dir)
        found = [p] if p.is_file() else sorted([*p.glob("*.ttf"), *p.glob("*.otf")])
        if found:
            return found[0]
        raise DataMissingError(f"emoji: no .ttf/.otf font in {p}")
    if not SYMBOLA.is_file():
        raise DataMissingError(
            f"emoji: {SYMBOLA} not found; install the Debian package `fonts-symbola` "
            "(`make sysdeps` as root), or pass --data-dir with a font file of your own"
        )
    return SYMBOLA


class GlyphRenderer:
    """Crops of glyphs rendered large (kept, so augmentation only resamples them)."""

    def __init__(self, path: Path) -> None:
        from PIL import ImageFont

        self.font = ImageFont.truetype(str(path), RENDER)
        self._notdef = self._large(0x10FFFD, 0)  # a private-use code point no font draws

    def _large(self, cp: int, stroke: int) -> np.ndarray:
        from PIL import Image, ImageDraw

        side = 2 * RENDER
        im = Image.new("L", (side, side), 0)
        ImageDraw.Draw(im).text(
            (side // 2, side // 2),
            chr(cp),
            fill=255,
            font=self.font,
            anchor="mm",
            stroke_width=stroke,
            stroke_fill=255,
        )
        return np.asarray(im)

    def draws(self, cp: int) -> bool:
        """Whether the font has an inked glyph of its own for ``cp``."""
        a = self._large(cp, 0)
        return bool(a.any()) and not np.array_equal(a, self._notdef)

    def render(
        self, cp: int, scale: float = 1.0, dx: int = 0, dy: int = 0, stroke: int = 0
    ) -> np.ndarray:
        """[SIZE, SIZE] float32 in [0, 1]: the glyph's ink box fitted into ``FIT * scale``
        pixels, centred, then shifted by (dx, dy)."""
        from PIL import Image

        a = self._large(cp, stroke)
        rows, cols = np.flatnonzero(a.any(1)), np.flatnonzero(a.any(0))
        crop = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        h, w = crop.shape
        k = FIT * scale / max(h, w)
        nh, nw = max(1, round(h * k)), max(1, round(w * k))
        small = np.asarray(Image.fromarray(crop).resize((nw, nh), Image.Resampling.LANCZOS))
        out = np.zeros((SIZE, SIZE), np.float32)
        top = (SIZE - nh) // 2 + dy
        left = (SIZE - nw) // 2 + dx
        out[top : top + nh, left : left + nw] = small / 255.0
        return np.clip(out, 0.0, 1.0)


def code_points(renderer: GlyphRenderer) -> list[int]:
    return [cp for a, b in BLOCKS for cp in range(a, b + 1) if renderer.draws(cp)]


def glyph_name(cp: int) -> str:
    return f"U+{cp:04X} {unicodedata.name(chr(cp), '?').lower()}"


def _augmented(r: GlyphRenderer, cp: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        scale = float(rng.uniform(0.8, 1.0))
        dx, dy = (int(v) for v in rng.integers(-2, 3, size=2))
        stroke = 3 if rng.random() < 1 / 3 else 0
        out.append(r.render(cp, scale, dx, dy, stroke))
    return out


@register("emoji")
def load_emoji(
    data_dir: Path | str | None = None,
    *,
    augment: int = 15,
    val_copies: int = 3,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """The emoji set (see the module doc); ``limit`` keeps the first glyphs only (tests)."""
    renderer = GlyphRenderer(font_path(data_dir))
    cps = code_points(renderer)
    if limit is not None:
        cps = cps[:limit]
    names = [glyph_name(cp) for cp in cps]
    held = [i for i in range(len(cps)) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY // 2]
    kept = [i for i in range(len(cps)) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY // 2]
    rng = np.random.default_rng(seed)
    xtr, ytr, xva, yva = [], [], [], []
    for i in kept:
        imgs = [renderer.render(cps[i]), *_augmented(renderer, cps[i], augment, rng)]
        xtr += imgs
        ytr += [i] * len(imgs)
    for i in kept:
        xva += _augmented(renderer, cps[i], val_copies, rng)
        yva += [i] * val_copies
    xte = [renderer.render(cps[i]) for i in held]
    return Dataset(
        name="emoji",
        kind="image",
        shape=(SIZE, SIZE),
        train=Split(np.stack(xtr).astype(np.float32), np.asarray(ytr, np.int64)),
        val=Split(np.stack(xva).astype(np.float32), np.asarray(yva, np.int64)),
        test=Split(np.stack(xte).astype(np.float32), np.asarray(held, np.int64)),
        label_names=names,
        splits_note=(
            f"{len(cps)} glyphs of {renderer.font.getname()[0]} rendered at {SIZE}x{SIZE}; "
            f"{len(held)} (every {HOLD_OUT_EVERY}th) held out as the test split, as rendered; "
            f"the other {len(kept)} in train (as rendered + {augment} augmented copies each: "
            f"scale 0.8-1, shifts up to 2 px, thicker stroke for a third) and validation "
            f"({val_copies} other augmented copies each), seed {seed}."
        ),
        split_names={
            "train": f"train ({len(xtr):,} images of {len(kept)} glyphs)",
            "val": f"validation ({len(xva):,} augmented images of the training glyphs)",
            "test": f"test ({len(held)} held-out glyphs, as rendered)",
        },
    )
