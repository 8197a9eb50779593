"""Convolutional autoencoders for grayscale images (issue 4), registered as ``conv_ae`` and
``conv_vae``.

The contract's image input is ``[N, H, W]``; the channel axis is added and removed *inside* the
modules, so the exported graphs keep ``x [N, H, W] -> z [N, d]`` and ``z -> x_hat [N, H, W]``.

Encoder: one stride-2 convolution per entry of ``channels`` (28 -> 14 -> 7), flatten, optional
dense layers, then the code. Decoder: the mirror image with stride-2 transposed convolutions
(kernel 4, padding 1: exactly doubles H and W), and a last 3x3 convolution to one channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from training.models import (
    ACTIVATIONS,
    OUTPUTS,
    CodecAE,
    Family,
    VariationalAE,
    _mlp,
    register,
)


@dataclass(frozen=True)
class ConvAEConfig:
    """A small convolutional autoencoder; H and W must be divisible by 2 ** len(channels)."""

    latent_dim: int = 16
    channels: tuple[int, ...] = (16, 32)
    kernel: int = 3
    # Dense layers between the flattened feature map and the code (mirrored in the decoder).
    dense: tuple[int, ...] = ()
    activation: str = "relu"
    latent_activation: str = "identity"
    output: str = "sigmoid"

    @property
    def family(self) -> Family:
        return "ae"


@dataclass(frozen=True)
class ConvVAEConfig(ConvAEConfig):
    """A convolutional VAE: the code layer gives ``mu`` and ``logvar``."""

    beta: float = 1.0

    @property
    def family(self) -> Family:
        return "vae"


class ConvAE(CodecAE):
    """Convolutional autoencoder on ``[N, H, W]`` images."""

    cfg: ConvAEConfig

    def __init__(self, cfg: ConvAEConfig, shape: tuple[int, ...]) -> None:
        super().__init__(cfg, shape)
        if len(shape) != 2:
            raise ValueError(f"conv models take grayscale [H, W] images, got shape {shape}")
        if cfg.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {cfg.activation!r}")
        h, w = shape
        step = 2 ** len(cfg.channels)
        if h % step or w % step:
            raise ValueError(f"{h}x{w} images need H and W divisible by {step} for {cfg.channels}")
        self.shape = (h, w)
        fh, fw = h // step, w // step  # feature map after the strided convolutions
        flat = cfg.channels[-1] * fh * fw
        act = ACTIVATIONS[cfg.activation]

        enc: list[nn.Module] = [nn.Unflatten(1, (1, h))]  # [N, H, W] -> [N, 1, H, W]
        c_in = 1
        for c in cfg.channels:
            enc += [nn.Conv2d(c_in, c, cfg.kernel, stride=2, padding=cfg.kernel // 2), act()]
            c_in = c
        enc += [
            nn.Flatten(1),
            _mlp([flat, *cfg.dense, self._code_width()], cfg.activation, self._code_out()),
        ]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [
            _mlp([cfg.latent_dim, *reversed(cfg.dense), flat], cfg.activation, act()),
            nn.Unflatten(1, (cfg.channels[-1], fh, fw)),
        ]
        outs = [*reversed(cfg.channels[:-1]), cfg.channels[0]]
        c_in = cfg.channels[-1]
        for c in outs:
            dec += [nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1), act()]
            c_in = c
        dec += [
            nn.Conv2d(c_in, 1, 3, padding=1),
            OUTPUTS[cfg.output](),
            nn.Flatten(1, 2),  # [N, 1, H, W] -> [N, H, W]
        ]
        self.decoder = nn.Sequential(*dec)


class ConvVAE(VariationalAE, ConvAE):
    """Convolutional VAE: reparameterised sampling in training, the mean in eval mode."""

    cfg: ConvVAEConfig


register("conv_ae", ConvAEConfig, ConvAE)
register("conv_vae", ConvVAEConfig, ConvVAE)
