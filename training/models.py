"""Architectures: a dataclass config per architecture and a registry of builders.

Every model has the split export needs (as in pytorch/examples' VAE): ``encode`` (x -> z, or
``(mu, logvar)`` for VAEs), ``decode`` (z -> x_hat) and ``forward``. Models take and return
samples in the dataset's shape ``[N, *shape]``; flattening happens inside, so the exported graphs
keep the contract's shapes. Issue 4 adds convolutional AE/VAE configs here with :func:`register`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import nn

Family = Literal["ae", "vae"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}
# What the decoder's last layer maps to: "sigmoid" keeps images in [0, 1]; "identity" for the
# standardised (unbounded) tabular space.
OUTPUTS: dict[str, type[nn.Module]] = {"sigmoid": nn.Sigmoid, "identity": nn.Identity}


@dataclass(frozen=True)
class ForwardOut:
    """``x_hat`` [N, *shape]; ``z`` the code used to decode (VAE: a sample, or mu in eval mode)."""

    x_hat: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


@dataclass(frozen=True)
class DenseAEConfig:
    """A fully connected autoencoder: input -> hidden... -> latent -> reversed hidden... -> output.

    ``decoder_hidden`` defaults to ``hidden`` reversed (a mirrored net).
    """

    latent_dim: int = 2
    hidden: tuple[int, ...] = (32, 16)
    activation: str = "tanh"
    decoder_hidden: tuple[int, ...] | None = None
    # Activation on the code itself ("identity" for a linear bottleneck).
    latent_activation: str = "identity"
    output: str = "sigmoid"

    @property
    def family(self) -> Family:
        return "ae"


@dataclass(frozen=True)
class DenseVAEConfig(DenseAEConfig):
    """A fully connected VAE: the encoder outputs ``mu`` and ``logvar`` of a diagonal Gaussian."""

    # Weight of the KL term (1 = the ELBO; other values give a beta-VAE).
    beta: float = 1.0

    @property
    def family(self) -> Family:
        return "vae"


def _mlp(sizes: list[int], activation: str, last: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        layers.append(ACTIVATIONS[activation]() if i < len(sizes) - 2 else last)
    return nn.Sequential(*layers)


def _activation(name: str) -> nn.Module:
    if name == "identity":
        return nn.Identity()
    return ACTIVATIONS[name]()


class Autoencoder(nn.Module):
    """What the trainer and the exporter rely on; every architecture subclasses this."""

    shape: tuple[int, ...]

    @property
    def family(self) -> Family:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, *shape] -> code [N, latent_dim] (VAE: the mean)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, latent_dim] -> x_hat [N, *shape]."""
        raise NotImplementedError

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder hidden activations (for sparsity regularisers, issue 4)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> ForwardOut:
        raise NotImplementedError

    def export_encoder(self) -> nn.Module:
        """The module exported as ``encoder.onnx``."""
        raise NotImplementedError

    def export_encoder_outputs(self) -> list[str]:
        """Output names of ``encoder.onnx``, in order."""
        raise NotImplementedError

    def export_decoder(self) -> nn.Module:
        """The module exported as ``decoder.onnx``: z -> x_hat."""
        raise NotImplementedError


class CodecAE(Autoencoder):
    """An autoencoder made of two modules, ``encoder`` (x -> code) and ``decoder`` (z -> x_hat).

    Subclasses build both in ``__init__``; the encoder's last layer has ``_code_width()`` units
    and ends in ``_code_out()``, which :class:`VariationalAE` widens to ``mu`` and ``logvar``.
    """

    cfg: Any
    encoder: nn.Sequential
    decoder: nn.Sequential

    def __init__(self, cfg: Any, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg = cfg
        self.shape = tuple(shape)

    @property
    def family(self) -> Family:
        family: Family = self.cfg.family
        return family

    def _code_width(self) -> int:
        return int(self.cfg.latent_dim)

    def _code_out(self) -> nn.Module:
        return _activation(self.cfg.latent_activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.encoder(x)
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x_hat: torch.Tensor = self.decoder(z)
        return x_hat

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every encoder activation output, the code last: each non-linear layer of the dense
        part (a nested ``nn.Sequential``), and conv feature maps after their activation,
        flattened to [N, C*H*W]."""
        out: list[torch.Tensor] = []
        h = x
        for layer in self.encoder:
            if isinstance(layer, nn.Sequential):  # the dense part
                for sub in layer:
                    h = sub(h)
                    if not isinstance(sub, nn.Linear):
                        out.append(h)
            else:
                h = layer(h)
                if isinstance(layer, tuple(ACTIVATIONS.values())):
                    out.append(h.flatten(1))
        return out

    def forward(self, x: torch.Tensor) -> ForwardOut:
        z = self.encode(x)
        return ForwardOut(x_hat=self.decode(z), z=z)

    def export_encoder(self) -> nn.Module:
        return self.encoder

    def export_decoder(self) -> nn.Module:
        return self.decoder

    def export_encoder_outputs(self) -> list[str]:
        return ["z"]


class _SplitHead(nn.Module):
    """[N, 2*d] -> (mu [N, d], logvar [N, d])."""

    def __init__(self, body: nn.Module, dim: int) -> None:
        super().__init__()
        self.body = body
        self.dim = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return h[:, : self.dim], h[:, self.dim :]


class VariationalAE(CodecAE):
    """The VAE half of an architecture, mixed in before it (``class DenseVAE(VariationalAE,
    DenseAE)``): one linear code layer gives ``mu`` and ``logvar``; reparameterised sampling in
    training, the mean in eval mode; ``encoder.onnx`` outputs both."""

    def __init__(self, cfg: Any, shape: tuple[int, ...]) -> None:
        super().__init__(cfg, shape)  # the architecture builds encoder and decoder
        self.head = _SplitHead(self.encoder, cfg.latent_dim)

    def _code_width(self) -> int:
        return 2 * int(self.cfg.latent_dim)  # mu and logvar from one linear layer

    def _code_out(self) -> nn.Module:
        return nn.Identity()

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(x)
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2014, eq. 10)."""
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def forward(self, x: torch.Tensor) -> ForwardOut:
        mu, logvar = self.encode_dist(x)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return ForwardOut(x_hat=self.decode(z), z=z, mu=mu, logvar=logvar)

    def export_encoder(self) -> nn.Module:
        return self.head

    def export_encoder_outputs(self) -> list[str]:
        return ["mu", "logvar"]


class DenseAE(CodecAE):
    """Dense autoencoder on samples of shape ``shape``."""

    cfg: DenseAEConfig

    def __init__(self, cfg: DenseAEConfig, shape: tuple[int, ...]) -> None:
        super().__init__(cfg, shape)
        n = math.prod(shape)
        dec_hidden = list(cfg.decoder_hidden or tuple(reversed(cfg.hidden)))
        self.encoder = nn.Sequential(
            nn.Flatten(1),  # [N, *shape] -> [N, n]
            _mlp([n, *cfg.hidden, self._code_width()], cfg.activation, self._code_out()),
        )
        self.decoder = nn.Sequential(
            _mlp([cfg.latent_dim, *dec_hidden, n], cfg.activation, OUTPUTS[cfg.output]()),
            nn.Unflatten(1, self.shape),  # [N, n] -> [N, *shape]
        )


class DenseVAE(VariationalAE, DenseAE):
    """Dense VAE: reparameterised sampling in training, the mean in eval mode."""

    cfg: DenseVAEConfig


Builder = Callable[[Any, tuple[int, ...]], Autoencoder]
ARCHITECTURES: dict[str, tuple[type[Any], Builder]] = {}


def register(name: str, config_cls: type[Any], builder: Builder) -> None:
    """Make an architecture available to recipes as ``[architecture] kind = name``."""
    if name in ARCHITECTURES:
        raise ValueError(f"architecture {name!r} registered twice")
    ARCHITECTURES[name] = (config_cls, builder)


register("dense_ae", DenseAEConfig, DenseAE)
register("dense_vae", DenseVAEConfig, DenseVAE)


def make_config(kind: str, options: dict[str, Any]) -> Any:
    """A config dataclass from a recipe table; unknown keys are an error, lists become tuples."""
    if kind not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {kind!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    cls = ARCHITECTURES[kind][0]
    names = {f.name for f in fields(cls)}
    unknown = set(options) - names
    if unknown:
        raise ValueError(f"unknown option(s) for {kind}: {', '.join(sorted(unknown))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    for key in ("activation",):
        if key in values and values[key] not in ACTIVATIONS:
            raise ValueError(f"unknown activation {values[key]!r}")
    return cls(**values)


def build_model(kind: str, config: Any, shape: tuple[int, ...]) -> Autoencoder:
    return ARCHITECTURES[kind][1](config, shape)


def describe(kind: str, config: Any) -> dict[str, Any]:
    """The architecture as plain data for the manifest (enough to rebuild the module)."""
    return {
        "kind": kind,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
    }


# Architectures defined in their own modules register themselves on import (issue 4: conv).
from training import conv as _conv  # noqa: E402, F401
from training import stacked as _stacked  # noqa: E402, F401
