"""ModelRuntime without HTTP: shapes, scaling, scoring, percentiles, sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.runtime.errors import InvalidInput, UnsupportedOperation
from service.runtime.model import ModelRuntime
from service.runtime.repository import ModelRepository

from .conftest import SCALER_MEAN, SCALER_STD, bce, glyphs


@pytest.fixture(scope="module")
def repo(zoo_dir: Path) -> ModelRepository:
    return ModelRepository.load(zoo_dir, max_batch=64)


def rt(repo: ModelRepository, name: str) -> ModelRuntime:
    return repo.get(name)


def test_bce_score_matches_its_formula(repo: ModelRepository) -> None:
    glyph = rt(repo, "glyph")
    x = glyphs(5)
    rec = glyph.reconstruct(x)
    np.testing.assert_allclose(rec.scores, bce(x, rec.outputs), rtol=1e-5)
    assert np.array_equal(glyph.binarize(rec.outputs), x.astype(np.uint8))


def test_tabular_scaler_and_mse_in_standardised_space(repo: ModelRepository) -> None:
    table = rt(repo, "table")
    raw = np.array([[12.0, -1.0, 2.5, 50.0], [10.0, -2.0, 0.5, 100.0]], dtype=np.float32)
    rec = table.reconstruct(raw)
    std = (raw - np.array(SCALER_MEAN)) / np.array(SCALER_STD)
    # The code keeps the first two standardised features; the others decode to 0 (the mean).
    expected_raw = raw.copy()
    expected_raw[:, 2:] = np.array(SCALER_MEAN)[2:]
    np.testing.assert_allclose(rec.outputs, expected_raw, rtol=1e-6)
    np.testing.assert_allclose(rec.scores, (std[:, 2:] ** 2).sum(axis=1) / 4, rtol=1e-5)
    assert rec.scores[1] == 0


def test_percentiles_interpolate_the_calibration(repo: ModelRepository) -> None:
    glyph = rt(repo, "glyph")  # levels [0, .5, .9, 1], values [0, .1, .2, .4]
    ranks = glyph.percentiles(np.array([-1.0, 0.05, 0.15, 0.3, 9.0]))
    np.testing.assert_allclose(ranks, [0.0, 25.0, 70.0, 95.0, 100.0])


def test_flattened_rows_equal_nested(repo: ModelRepository) -> None:
    glyph = rt(repo, "glyph")
    x = glyphs(3)
    a = glyph.reconstruct(x).outputs
    b = glyph.reconstruct(x.reshape(3, 35)).outputs
    assert a.shape == b.shape == (3, 7, 5)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("x", "needle"),
    [
        (np.zeros((2, 7, 6), np.float32), "expects [N, 7, 5] or [N, 35]"),
        (np.zeros((7, 5), np.float32), "wrap a single sample"),
        (np.zeros((0, 35), np.float32), "empty"),
        (np.zeros((65, 35), np.float32), "at most 64"),
        (np.full((1, 35), np.nan, np.float32), "non-finite"),
        (np.full((1, 35), 1.5, np.float32), "must lie in [0, 1]"),
    ],
)
def test_bad_inputs(repo: ModelRepository, x: np.ndarray, needle: str) -> None:
    with pytest.raises(InvalidInput) as info:
        rt(repo, "glyph").reconstruct(x)
    assert needle in info.value.detail


def test_sampling_is_seeded_and_follows_the_prior(repo: ModelRepository) -> None:
    glyph = rt(repo, "glyph")  # empirical prior: mean 0.5, std 0.2 per dimension
    a, b = glyph.sample(64, seed=3), glyph.sample(64, seed=3)
    assert np.array_equal(a.latents, b.latents) and np.array_equal(a.outputs, b.outputs)
    assert not np.array_equal(a.latents, glyph.sample(64, seed=4).latents)
    assert glyph.sample(2).seed != glyph.sample(2).seed
    z = glyph.sample(64, seed=0, scale=1.0).latents
    assert abs(float(z.mean()) - 0.5) < 0.02
    assert abs(float(z.std()) - 0.2) < 0.02
    half = glyph.sample(64, seed=0, scale=0.5).latents
    np.testing.assert_allclose(half - 0.5, (z - 0.5) / 2, atol=1e-6)
    vae = rt(repo, "glyph-vae")  # standard normal prior
    zv = vae.sample(64, seed=1).latents
    assert zv.shape == (64, 4) and abs(float(zv.mean())) < 0.2 and abs(float(zv.std()) - 1) < 0.15


def test_output_forms_are_refused_where_meaningless(repo: ModelRepository) -> None:
    with pytest.raises(UnsupportedOperation, match="binary"):
        rt(repo, "pixels28").binarize(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(UnsupportedOperation, match="PNG"):
        rt(repo, "table").to_pixels(np.zeros((1, 4), np.float32))
    with pytest.raises(UnsupportedOperation, match="denoiser"):
        rt(repo, "glyph").denoise(glyphs(1))
