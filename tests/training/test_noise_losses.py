import numpy as np
import pytest
import torch

from training.losses import kl_standard_normal, reconstruction
from training.noise import bitflip, corrupt, get_noise
from training.scoring import scores


def test_bitflip_rate_and_seeding() -> None:
    x = np.zeros((2000, 7, 5), np.float32)
    y = corrupt(x, "bitflip", 0.1, seed=5)
    assert y.shape == x.shape and y.dtype == np.float32
    assert abs(y.mean() - 0.1) < 0.005
    np.testing.assert_array_equal(y, corrupt(x, "bitflip", 0.1, seed=5))
    assert not np.array_equal(y, corrupt(x, "bitflip", 0.1, seed=6))
    ones = bitflip(np.ones((3, 4), np.float32), 1.0, np.random.default_rng(0))
    assert (ones == 0).all()
    with pytest.raises(ValueError):
        bitflip(x, 1.5, np.random.default_rng(0))
    with pytest.raises(KeyError):
        get_noise("salt")


def test_bce_score_is_the_contract() -> None:
    x = np.array([[[1, 0], [1, 0]]], np.float32)
    x_hat = np.array([[[0.9, 0.2], [1.0, 0.0]]], np.float32)  # last two get clipped
    eps = 1e-7
    expected = -(np.log(0.9) + np.log(0.8) + np.log(1 - eps) + np.log(1 - eps)) / 4
    np.testing.assert_allclose(scores(x, x_hat, "bce"), [expected], rtol=1e-6)
    np.testing.assert_allclose(scores(x, x_hat, "mse"), [(0.01 + 0.04) / 4], rtol=1e-6)
    # The training loss is the per-sample sum of the same quantity.
    t = reconstruction(torch.from_numpy(x_hat), torch.from_numpy(x), "bce")
    np.testing.assert_allclose(t.numpy(), [expected * 4], rtol=1e-5)


def test_kl_is_zero_at_the_prior() -> None:
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    assert torch.allclose(kl_standard_normal(mu, logvar), torch.zeros(3))
    assert (kl_standard_normal(mu + 1, logvar) > 0).all()
