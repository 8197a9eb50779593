"""Issue 4's architectures, noises and regularisers: each trains a few steps and exports under
the contract (parity with torch); the penalties match a direct computation on tiny networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from training.datasets import Dataset, Split, load_dataset
from training.export import PARITY_TOL, export
from training.models import ForwardOut, build_model, make_config
from training.noise import corrupt
from training.onnx_model import OnnxAutoencoder
from training.recipe import parse
from training.regularizers import (
    RegularizerContext,
    contractive,
    get_regularizer,
    jacobian_frobenius_sq,
    kl_sparsity,
    l1_activity,
)
from training.train import loss_terms, train


@pytest.fixture(scope="module")
def digits() -> Dataset:
    """300 of scikit-learn's 8x8 digits as the training split (seconds to train on)."""
    d = load_dataset("digits")
    return Dataset(
        name="digits",
        kind="image",
        shape=d.shape,
        train=Split(d.train.x[:300], d.train.y[:300] if d.train.y is not None else None),
        val=d.val,
        test=d.test,
    )


ARCHS: dict[str, dict[str, Any]] = {
    "dense_ae": {"hidden": [32, 16], "activation": "relu"},
    "dense_vae": {"hidden": [32], "activation": "relu"},
    "conv_ae": {"channels": [4, 8], "dense": [16]},
    "conv_vae": {"channels": [4, 8]},
}


def recipe(kind: str, **extra: Any) -> Any:
    data: dict[str, Any] = {
        "name": "t",
        "seed": 3,
        "epochs": 3,
        "dataset": {"name": "digits"},
        "architecture": {"kind": kind, "latent_dim": 4, **ARCHS[kind]},
        "training": {"lr": 0.005, "batch_size": 64},
    }
    data.update(extra)
    return parse(data)


@pytest.mark.parametrize("kind", list(ARCHS))
def test_architecture_trains_and_exports(kind: str, digits: Dataset, tmp_path: Path) -> None:
    res = train(recipe(kind), digits, quiet=True)
    assert len(res.history) == 3 and res.history[-1] < res.history[0]  # it learns
    exported = export(res.model, tmp_path, digits.train.x[:50])
    assert exported.max_abs_diff <= PARITY_TOL
    m = OnnxAutoencoder(tmp_path)
    assert m.variational == kind.endswith("vae")
    for n in (1, 9):  # dynamic batch; the contract's shapes: x [N, 8, 8] -> z [N, 4] -> x_hat
        x = digits.test.x[:n]
        z = m.encode_all(x)
        assert all(o.shape == (n, 4) for o in z)
        x_hat = m.decode(z[0])
        assert x_hat.shape == (n, 8, 8) and x_hat.dtype == np.float32
        assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0
        with torch.no_grad():
            ref = res.model.decode(res.model.encode(torch.from_numpy(x))).numpy()
        np.testing.assert_allclose(m.reconstruct(x), ref, atol=PARITY_TOL)


def test_conv_model_refuses_shapes_it_cannot_mirror() -> None:
    cfg = make_config("conv_ae", {"channels": [4, 8, 16]})
    with pytest.raises(ValueError, match="divisible by 8"):
        build_model("conv_ae", cfg, (28, 28))
    with pytest.raises(ValueError, match="grayscale"):
        build_model("conv_ae", cfg, (3, 32, 32))
    model = build_model("conv_ae", make_config("conv_ae", {"latent_dim": 5}), (28, 28))
    assert model.decode(model.encode(torch.rand(2, 28, 28))).shape == (2, 28, 28)


@pytest.mark.parametrize(
    ("reg", "arch"),
    [
        ({"kind": "l1", "weight": 0.01}, {}),
        ({"kind": "kl_sparsity", "weight": 0.1, "rho": 0.05}, {"latent_activation": "sigmoid"}),
        ({"kind": "contractive", "weight": 0.01}, {}),
    ],
)
def test_regularised_training_exports(
    reg: dict[str, Any], arch: dict[str, Any], digits: Dataset, tmp_path: Path
) -> None:
    r = parse(
        {
            "name": "t",
            "seed": 3,
            "epochs": 2,
            "dataset": {"name": "digits"},
            "architecture": {"kind": "dense_ae", "latent_dim": 4, "hidden": [16], **arch},
            "training": {"batch_size": 64},
            "regularizer": reg,
        }
    )
    res = train(r, digits, quiet=True)
    assert np.isfinite(res.history).all()
    assert export(res.model, tmp_path, digits.train.x[:20]).max_abs_diff <= PARITY_TOL


def test_regulariser_changes_what_it_should(digits: Dataset) -> None:
    """The L1 penalty shrinks the code; the contractive one shrinks the encoder's Jacobian."""
    base: dict[str, Any] = {
        "name": "t",
        "seed": 0,
        "epochs": 8,
        "dataset": {"name": "digits"},
        "architecture": {"kind": "dense_ae", "latent_dim": 4, "hidden": [32]},
        "training": {"lr": 0.01, "batch_size": 64},
    }
    x = torch.from_numpy(digits.test.x)
    plain = train(parse(base), digits, quiet=True).model
    l1 = train(parse({**base, "regularizer": {"kind": "l1", "weight": 0.5}}), digits, quiet=True)
    cae = train(
        parse({**base, "regularizer": {"kind": "contractive", "weight": 1.0}}), digits, quiet=True
    )
    with torch.no_grad():
        assert float(l1.model.encode(x).abs().mean()) < 0.5 * float(plain.encode(x).abs().mean())
    jac_plain = float(jacobian_frobenius_sq(plain, x).detach().mean())
    jac_cae = float(jacobian_frobenius_sq(cae.model, x).detach().mean())
    assert jac_cae < 0.5 * jac_plain


def ctx_for(model: nn.Module, x: torch.Tensor, rho: float | None = None) -> RegularizerContext:
    return RegularizerContext(model=model, x_in=x, out=model(x), rho=rho)  # type: ignore[arg-type]


class OneLayer(nn.Module):
    """h = sigmoid(W x + b): the encoder of Rifai et al.'s contractive autoencoder."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(d_in, d_out)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> ForwardOut:
        z = self.encode(x)
        return ForwardOut(x_hat=x, z=z)


def test_contractive_penalty_matches_the_closed_form() -> None:
    """For h = sigmoid(Wx + b): ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2."""
    net = OneLayer(6, 3)
    x = torch.rand(5, 2, 3)  # [N, H, W] images, flattened inside
    h = net.encode(x).detach()
    w2 = (net.lin.weight.detach() ** 2).sum(1)
    direct = ((h * (1 - h)) ** 2 * w2).sum(1)
    np.testing.assert_allclose(jacobian_frobenius_sq(net, x).detach(), direct, rtol=1e-5)  # type: ignore[arg-type]
    penalty = contractive(ctx_for(net, x))
    assert penalty.requires_grad  # it trains the encoder
    np.testing.assert_allclose(float(penalty.detach()), float(direct.mean()), rtol=1e-5)


def test_contractive_penalty_matches_autograd_jacobian_on_a_deeper_net() -> None:
    torch.manual_seed(1)
    enc = nn.Sequential(nn.Flatten(1), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))

    class Net(nn.Module):
        def encode(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = enc(x)
            return out

    x = torch.randn(3, 2, 2)
    direct = [
        float(torch.autograd.functional.jacobian(lambda v: enc(v[None])[0], xi).pow(2).sum())
        for xi in x
    ]
    got = jacobian_frobenius_sq(Net(), x).detach().numpy()  # type: ignore[arg-type]
    np.testing.assert_allclose(got, direct, rtol=1e-5)


def test_l1_and_kl_sparsity_match_direct_computation() -> None:
    net = OneLayer(6, 3)
    x = torch.rand(8, 6)
    z = net.encode(x).detach().numpy().astype(np.float64)
    np.testing.assert_allclose(
        float(l1_activity(ctx_for(net, x)).detach()), np.abs(z).sum(1).mean(), rtol=1e-5
    )
    rho = 0.1
    rho_hat = z.mean(0)
    direct = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    np.testing.assert_allclose(float(kl_sparsity(ctx_for(net, x, rho)).detach()), direct, rtol=1e-5)
    assert get_regularizer("kl_sparsity") is kl_sparsity


def test_kl_sparsity_needs_a_unit_interval_code_and_rho() -> None:
    lin = nn.Linear(3, 2)

    class Raw(nn.Module):
        def encode(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = lin(x) - 5.0  # negative codes
            return out

        def forward(self, x: torch.Tensor) -> ForwardOut:
            return ForwardOut(x_hat=x, z=self.encode(x))

    with pytest.raises(ValueError, match="sigmoid"):
        kl_sparsity(ctx_for(Raw(), torch.rand(4, 3), 0.05))
    with pytest.raises(ValueError, match="rho"):
        kl_sparsity(ctx_for(OneLayer(3, 2), torch.rand(4, 3), None))


def test_loss_adds_the_weighted_penalty(digits: Dataset) -> None:
    reg = {"kind": "l1", "weight": 0.25}
    r_plain, r_reg = recipe("dense_ae"), recipe("dense_ae", regularizer=reg)
    model = build_model("dense_ae", make_config("dense_ae", r_plain.arch_options), (8, 8))
    x = torch.from_numpy(digits.train.x[:16])
    plain = loss_terms(model, x, x, r_plain, "bce")
    total = loss_terms(model, x, x, r_reg, "bce")
    with torch.no_grad():
        penalty = model.encode(x).abs().sum(1).mean()
    np.testing.assert_allclose(float((total - plain).detach()), 0.25 * float(penalty), rtol=1e-4)


def test_gaussian_noise_is_clipped_and_seeded() -> None:
    x = np.random.default_rng(0).random((50, 8, 8)).astype(np.float32)
    a = corrupt(x, "gaussian", 0.5, seed=1)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert a.min() == 0.0 and a.max() == 1.0  # clipped, and noise this large hits both ends
    np.testing.assert_array_equal(a, corrupt(x, "gaussian", 0.5, seed=1))
    eps = np.random.default_rng(1).standard_normal(x.shape, dtype=np.float32)
    np.testing.assert_allclose(a, np.clip(x + 0.5 * eps, 0, 1), atol=1e-7)
    np.testing.assert_array_equal(corrupt(x, "gaussian", 0.0, seed=1), x)
    with pytest.raises(ValueError, match=">= 0"):
        corrupt(x, "gaussian", -0.1, seed=1)


def test_masking_noise_zeroes_the_given_fraction() -> None:
    x = np.full((200, 10, 10), 0.7, np.float32)
    m = corrupt(x, "masking", 0.3, seed=2)
    np.testing.assert_array_equal(np.unique(m), np.array([0.0, 0.7], np.float32))
    assert abs(float((m == 0).mean()) - 0.3) < 0.01
    np.testing.assert_array_equal(corrupt(x, "masking", 0.0, seed=2), x)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(x, "masking", 1.5, seed=2)


def test_denoising_training_with_gaussian_noise(digits: Dataset, tmp_path: Path) -> None:
    r = recipe("conv_ae", noise={"kind": "gaussian", "level": 0.3})
    res = train(r, digits, quiet=True)
    assert export(res.model, tmp_path, digits.train.x[:20]).max_abs_diff <= PARITY_TOL
