import numpy as np
import pytest

from training.datasets.font import glyphs
from training.evaluate import bayes_denoise, calibrate, latent_spec, meets, threshold_for


def test_calibration_quantiles() -> None:
    values = np.arange(101, dtype=float)  # quantile q of 0..100 is 100 q
    cal = calibrate(values, "val")
    assert len(cal.levels) == 101 and cal.n == 101 and cal.split == "val"
    np.testing.assert_allclose(cal.values, np.arange(101), atol=1e-9)
    assert threshold_for("quantile:0.99", values) == pytest.approx(99.0)
    with pytest.raises(ValueError, match="unknown threshold rule"):
        threshold_for("best_f1", values)


def test_latent_spec_priors() -> None:
    codes = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    ae = latent_spec(codes, variational=False)
    assert ae.prior.kind == "empirical" and ae.prior.mean == [2.0, 4.0]
    np.testing.assert_allclose(ae.prior.cov or [], np.cov(codes, rowvar=False))
    assert ae.low == [0.0, 1.0] and ae.high == [4.0, 8.0]
    vae = latent_spec(codes, variational=True)
    assert vae.prior.kind == "standard_normal" and vae.prior.mean is None


def test_bayes_denoiser_restores_lightly_flipped_glyphs() -> None:
    g = glyphs()
    one_flip = g.copy()
    one_flip[:, 3, 2] = 1 - one_flip[:, 3, 2]
    out = bayes_denoise(one_flip, g, 0.05)
    # A single flip is almost always closer to its own glyph than to any other.
    assert ((out > 0.5) == (g > 0.5)).all(axis=(1, 2)).mean() > 0.9


def test_targets() -> None:
    assert meets(0.0, "<= 0") and meets(0.19, "<= 0.2") and not meets(0.21, "<= 0.2")
    assert meets(0.8, ">= 0.70")
    with pytest.raises(ValueError):
        meets(1.0, "about 1")
