"""Issue 17's data and studies on tiny inputs: the emoji set (rendered from fonts-symbola), the
novelty check, the imputation study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.datasets import load_dataset
from training.datasets.emoji import HOLD_OUT_EVERY, SYMBOLA, GlyphRenderer, font_path
from training.datasets.idx import DataMissingError
from training.impute_study import METHODS, impute_study, remove_at_random
from training.novelty import nearest, novelty
from training.onnx_model import OnnxAutoencoder
from training.pipeline import BuildResult

needs_symbola = pytest.mark.skipif(
    not SYMBOLA.is_file(), reason="fonts-symbola is not installed (make sysdeps)"
)


@needs_symbola
def test_emoji_set_renders_held_out_glyphs_apart_from_training_ones() -> None:
    data = load_dataset("emoji", limit=17, augment=2, val_copies=1)
    assert data.shape == (32, 32)
    held = [i for i in range(17) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY // 2]
    assert data.test.y is not None and data.test.y.tolist() == held
    assert data.train.y is not None and not set(held) & set(data.train.y.tolist())
    assert len(data.train) == 3 * (17 - len(held)) and len(data.val) == 17 - len(held)
    for split in (data.train, data.val, data.test):
        assert split.x.min() >= 0.0 and split.x.max() <= 1.0 and split.x.dtype == np.float32
        assert (split.x.reshape(len(split), -1).max(1) > 0.5).all()  # every image has ink
    assert data.label_names is not None and data.label_names[0].startswith("U+1F600 grinning")
    again = load_dataset("emoji", limit=17, augment=2, val_copies=1)
    assert np.array_equal(again.train.x, data.train.x)  # seeded augmentation


@needs_symbola
def test_glyphs_the_font_lacks_are_left_out() -> None:
    r = GlyphRenderer(SYMBOLA)
    assert r.draws(0x1F600) and not r.draws(0x10FFFD) and not r.draws(0x20)
    img = r.render(0x1F600)
    rows, cols = np.flatnonzero(img.any(1)), np.flatnonzero(img.any(0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (27, 28, 29)  # fitted to 28 px


def test_emoji_font_lookup_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError, match=r"no \.ttf"):
        font_path(tmp_path)
    (tmp_path / "mine.ttf").write_bytes(b"")
    assert font_path(tmp_path) == tmp_path / "mine.ttf"


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((50, 4, 4))
    q = rng.random((9, 4, 4))
    idx, dist = nearest(q, ref, batch=4)
    brute = ((q[:, None] - ref[None]) ** 2).reshape(9, 50, -1).mean(-1)
    assert idx.tolist() == brute.argmin(1).tolist()
    np.testing.assert_allclose(dist, brute.min(1), atol=1e-12)


class _Memoriser:
    """A 'model' whose samples are training images plus noise of a chosen size."""

    def __init__(self, train: np.ndarray, noise: float) -> None:
        self.train, self.noise = train, noise

    def decode(self, z: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(1)
        picks = self.train[np.arange(len(z)) % len(self.train)]
        out: np.ndarray = np.clip(picks + self.noise * rng.standard_normal(picks.shape), 0, 1)
        return out.astype(np.float32)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return x + np.float32(0.05)  # reconstruction error 0.0025 per pixel


def test_novelty_tells_copies_from_new_samples_from_noise() -> None:
    rng = np.random.default_rng(0)
    train = (rng.random((40, 8, 8)) < 0.3).astype(np.float32)
    copies = novelty(_Memoriser(train, 0.0), train, 20, 0, 2)  # type: ignore[arg-type]
    assert copies.not_copy == 0.0 and copies.novel == 0.0
    new = novelty(_Memoriser(train, 0.15), train, 20, 0, 2)  # type: ignore[arg-type]
    assert new.novel == 1.0 and new.copy_level == pytest.approx(0.0025)
    junk = novelty(_Memoriser(train, 3.0), train, 20, 0, 2)  # type: ignore[arg-type]
    assert junk.not_noise < 0.5


def test_impute_study_on_a_tiny_model(tiny_ae: BuildResult) -> None:
    data = load_dataset("font")
    model = OnnxAutoencoder(tiny_ae.out_dir)
    study = impute_study(model, data, {"levels": [0.3], "iterations": 20})
    for m in METHODS:
        assert study.metrics[f"impute_rmse_{m}_p30"].value >= 0.0
    assert "impute_rmse_vs_mean_p30" in study.metrics
    assert "| 30% |" in study.sections[0]
    assert set(study.figures) == {"impute.png", "impute_examples.png"}


def test_values_are_removed_at_the_asked_rate() -> None:
    mask = remove_at_random(np.zeros((400, 50)), 0.3, seed=1)
    assert 0.28 < mask.mean() < 0.32
    assert np.array_equal(mask, remove_at_random(np.zeros((400, 50)), 0.3, seed=1))
