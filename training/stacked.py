"""Stacked-autoencoder classifiers (issue 17): greedy layer-wise pretraining, then fine-tuning.

The course's recipe, with convolutional layers (a conv stacked AE, as in Masci et al. 2011):

1. **Greedy pretraining**, unsupervised, on every training image: each stage is a one-layer
   autoencoder trained on the codes of the frozen stages below it (stage 1 on the images).
   Conv stages: ``conv 3x3 stride 2 [-> BatchNorm] -> ReLU`` (or ``conv [-> BatchNorm] -> ReLU
   -> max-pool 2``), chosen per stage; decoder: ``transposed conv 2x2 stride 2`` (3x3 when the
   stage's input has an odd size, 7 -> 4 -> 7); the last stage is dense: ``flatten -> linear ->
   ReLU`` = the code ``z`` [N, latent_dim].
   Inputs are corrupted by masking noise while each stage learns (a denoising stack).
2. **Fine-tuning** with labels: the stacked encoder plus a softmax head (dropout -> linear) on
   cross-entropy, with light augmentation (shifts; horizontal flips where the classes allow),
   Adam with a step or one-cycle learning-rate schedule.
3. **Decoder refit**: the stages' decoders, stacked in reverse, are trained on the fine-tuned
   (frozen) encoder's codes, so ``decoder.onnx`` reconstructs from the codes the model serves.

Export: ``encoder.onnx`` (x -> z), ``decoder.onnx`` (z -> x_hat) and ``classifier.onnx``
(z -> logits). The same network from scratch (no pretraining) is built by :func:`finetune` on a
fresh model; :mod:`training.classifier_study` compares both, with 100% and 1% of the labels.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from training.datasets import Dataset
from training.models import ACTIVATIONS, CodecAE, Family, register
from training.recipe import Recipe, build_options
from training.train import TrainResult, seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackedConvConfig:
    """Conv stages (one per entry of ``channels``), a dense code stage, a linear softmax head."""

    latent_dim: int = 128
    channels: tuple[int, ...] = (32, 64)
    kernel: int = 3
    activation: str = "relu"
    classes: int = 10
    # Dropout before the head and before the dense stage, during fine-tuning only.
    dropout: float = 0.3
    # How conv stages halve H and W: "stride" (a stride-2 convolution: 4x cheaper) or "pool"
    # (a stride-1 convolution, then 2x2 max-pooling); one word for every stage or one per stage.
    # Odd sizes round up (7 -> 4), and the stage's decoder rebuilds the odd size.
    downsample: str | tuple[str, ...] = "stride"
    # Batch normalisation after each convolution (before the activation).
    batchnorm: bool = False

    def stage_downsample(self) -> tuple[str, ...]:
        ways = (
            (self.downsample,) * len(self.channels)
            if isinstance(self.downsample, str)
            else tuple(self.downsample)
        )
        if len(ways) != len(self.channels) or any(w not in ("stride", "pool") for w in ways):
            raise ValueError(
                f"downsample must be 'stride' or 'pool', or one of them per stage "
                f"({len(self.channels)}), got {self.downsample!r}"
            )
        return ways

    @property
    def family(self) -> Family:
        return "ae"


class StackedConvClassifier(CodecAE):
    """``encoder`` = Unflatten + one Sequential per stage; ``decoder`` = the stages' decoders in
    reverse order; ``head`` = dropout + linear (z -> logits)."""

    cfg: StackedConvConfig

    def __init__(self, cfg: StackedConvConfig, shape: tuple[int, ...]) -> None:
        super().__init__(cfg, shape)
        if len(shape) != 2:
            raise ValueError(f"stacked conv classifiers take [H, W] images, got {shape}")
        h, w = shape
        ways = cfg.stage_downsample()
        act = ACTIVATIONS[cfg.activation]
        pad = cfg.kernel // 2
        enc_stages: list[nn.Module] = []
        dec_stages: list[nn.Module] = []
        c_in = 1
        fh, fw = h, w
        for i, (c, way) in enumerate(zip(cfg.channels, ways, strict=True)):
            if min(fh, fw) < 2:
                raise ValueError(f"{h}x{w} images are too small for {len(cfg.channels)} stages")
            stride = 2 if way == "stride" else 1
            down: list[nn.Module] = [
                nn.Conv2d(c_in, c, cfg.kernel, stride=stride, padding=pad, bias=not cfg.batchnorm)
            ]
            if cfg.batchnorm:
                down.append(nn.BatchNorm2d(c))
            down.append(act())
            if way == "pool":
                down.append(nn.MaxPool2d(2, ceil_mode=True))
            enc_stages.append(nn.Sequential(*down))
            # Stage 1 rebuilds pixels in [0, 1]; higher stages rebuild ReLU feature maps (>= 0).
            out_act: nn.Module = nn.Sigmoid() if i == 0 else nn.ReLU()
            # Even sizes: a 2x2 stride-2 transposed convolution exactly doubles H and W (and
            # costs a quarter of an upsample + 3x3 convolution at the output's size). Odd sizes
            # (7 -> 4): a 3x3 one with padding 1 gives 2 * 4 - 1 = 7.
            if fh % 2 == 0 and fw % 2 == 0:
                up = nn.ConvTranspose2d(c, c_in, 2, stride=2)
            elif fh % 2 == 1 and fw % 2 == 1:
                up = nn.ConvTranspose2d(c, c_in, 3, stride=2, padding=1)
            else:
                raise ValueError(f"stage {i + 1}: {fh}x{fw} maps need H and W both even or odd")
            dec_stages.append(nn.Sequential(up, out_act))
            c_in = c
            fh, fw = -(-fh // 2), -(-fw // 2)
        flat = c_in * fh * fw
        enc_stages.append(
            nn.Sequential(
                nn.Flatten(1),
                nn.Dropout(cfg.dropout),
                nn.Linear(flat, cfg.latent_dim),
                act(),
            )
        )
        dec_stages.append(
            nn.Sequential(
                nn.Linear(cfg.latent_dim, flat), nn.ReLU(), nn.Unflatten(1, (c_in, fh, fw))
            )
        )
        self.n_stages = len(enc_stages)
        # [N, H, W] -> [N, 1, H, W] -> ... -> z [N, latent_dim]
        self.encoder = nn.Sequential(nn.Unflatten(1, (1, h)), *enc_stages)
        # z -> ... -> [N, 1, H, W] -> [N, H, W]
        self.decoder = nn.Sequential(*reversed(dec_stages), nn.Flatten(1, 2))
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.latent_dim, cfg.classes))

    def stage_encoder(self, k: int) -> nn.Module:
        """Encoder of stage ``k`` (0 = on the images)."""
        module: nn.Module = self.encoder[1 + k]
        return module

    def stage_decoder(self, k: int) -> nn.Module:
        module: nn.Module = self.decoder[self.n_stages - 1 - k]
        return module

    def below(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The input of stage ``k``: images [N, 1, H, W] through stages 0..k-1."""
        h: torch.Tensor = self.encoder[0](x)
        for i in range(k):
            h = self.stage_encoder(i)(h)
        return h

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encode(x))
        return out

    def export_classifier(self) -> nn.Module:
        """The module exported as ``classifier.onnx``: z -> logits."""
        return self.head


register("stacked_conv", StackedConvConfig, StackedConvClassifier)


@dataclass(frozen=True)
class StackedOptions:
    """The recipe's ``[classifier]`` table: the three phases' budgets and the augmentation."""

    # Greedy pretraining: epochs per stage (over every training image, labels unused), masking
    # noise on each stage's input, learning rate.
    pretrain_epochs: int = 1
    pretrain_noise: float = 0.2
    pretrain_lr: float = 1e-3
    # Pretraining and the decoder refit see the first ``pretrain_limit`` training images (None:
    # all): unsupervised phases on a budget.
    pretrain_limit: int | None = None
    # Fine-tuning of encoder + head on the labels (``recipe.epochs`` epochs, [training] lr,
    # batch size and decay); augmentation: random shifts of up to ``shift`` pixels, flips.
    shift: int = 2
    hflip: bool = False
    # Learning-rate schedule of fine-tuning: "step" ([training] lr_decay at lr_milestones) or
    # "onecycle" (warm up to [training] lr over the first 30% of the steps, then anneal to ~0:
    # most accuracy per epoch when the budget is a handful of epochs).
    schedule: str = "step"
    # Decoder refit on the fine-tuned encoder's codes.
    decoder_epochs: int = 1
    # The 1%-of-labels comparison: the labelled share and its fine-tuning budget (epochs over
    # the small labelled set; a fixed number of steps whatever the share).
    small_fraction: float = 0.01
    small_steps: int = 600
    # PCA components of the logistic-regression baseline.
    pca_components: int = 50

    @classmethod
    def parse(cls, table: dict[str, Any]) -> StackedOptions:
        opts: StackedOptions = build_options(cls, table, "[classifier]")
        return opts


@dataclass
class StackedResult(TrainResult):
    """A trained stacked classifier; ``pretrained`` is the state after greedy pretraining (the
    starting point of the 1%-labels comparison), ``phases`` the seconds each phase took."""

    pretrained: dict[str, torch.Tensor] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    pretrain_losses: list[float] = field(default_factory=list)


def _batches(n: int, batch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    for start in range(0, n, batch):
        yield order[start : start + batch]


def augment(x: torch.Tensor, shift: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random per-sample shifts of up to ``shift`` pixels (zero padding) and, with ``hflip``,
    left-right flips of half the samples. x [N, H, W] -> [N, H, W]."""
    n, h, w = x.shape
    if hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip[:, None, None], x.flip(-1), x)
    if shift > 0:
        padded = F.pad(x, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        rows = (dy[:, None] + torch.arange(h)[None]).unsqueeze(-1).expand(n, h, w + 2 * shift)
        x = padded.gather(1, rows)
        cols = (dx[:, None] + torch.arange(w)[None]).unsqueeze(1).expand(n, h, w)
        x = x.gather(2, cols)
    return x


def _bar(total: int, desc: str, quiet: bool) -> tqdm[Any]:
    return tqdm(total=total, desc=desc, disable=quiet or not sys.stderr.isatty(), leave=False)


def pretrain(
    model: StackedConvClassifier,
    x: np.ndarray,
    opts: StackedOptions,
    batch: int,
    gen: torch.Generator,
    quiet: bool = True,
) -> list[float]:
    """Greedy layer-wise pretraining: stage k learns to rebuild the frozen stages' output from a
    masked copy of it. Returns the last epoch's mean loss per stage (BCE per pixel for stage 0,
    MSE per value above)."""
    xt = torch.from_numpy(x)
    losses = []
    for k in range(model.n_stages):
        enc, dec = model.stage_encoder(k), model.stage_decoder(k)
        params = [*enc.parameters(), *dec.parameters()]
        optim = torch.optim.Adam(params, lr=opts.pretrain_lr)
        # The stages below are frozen, batch-norm statistics included.
        model.eval()
        enc.train()
        dec.train()
        bar = _bar(opts.pretrain_epochs * len(x), f"pretrain stage {k + 1}", quiet)
        total = 0.0
        for _ in range(opts.pretrain_epochs):
            total = 0.0
            for idx in _batches(len(xt), batch, gen):
                with torch.no_grad():
                    h = model.below(xt[idx], k)  # frozen stages below: [B, C, H, W]
                keep = torch.rand(h.shape, generator=gen) >= opts.pretrain_noise
                h_hat = dec(enc(h * keep))
                loss = F.binary_cross_entropy(h_hat, h) if k == 0 else F.mse_loss(h_hat, h)
                optim.zero_grad(set_to_none=True)
                torch.autograd.backward(loss)
                optim.step()
                total += float(loss.detach()) * len(idx)
                bar.update(len(idx))
        bar.close()
        losses.append(total / len(x))
        log.info("pretrain stage %d: loss %.5f", k + 1, losses[-1])
    return losses


def finetune(
    model: StackedConvClassifier,
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps_or_epochs: tuple[str, int],
    lr: float,
    batch: int,
    lr_decay: float,
    lr_milestones: tuple[float, ...],
    opts: StackedOptions,
    gen: torch.Generator,
    quiet: bool = True,
    desc: str = "fine-tune",
) -> list[float]:
    """Encoder + head on cross-entropy. ``steps_or_epochs``: ("epochs", n) over ``x``, or
    ("steps", n) minibatch steps (small labelled sets). Returns the mean loss per epoch."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    kind, count = steps_or_epochs
    per_epoch = -(-len(x) // batch)
    epochs = count if kind == "epochs" else max(1, -(-count // per_epoch))
    params = [*model.encoder.parameters(), *model.head.parameters()]
    optim = torch.optim.Adam(params, lr=lr)
    sched: torch.optim.lr_scheduler.LRScheduler
    if opts.schedule == "onecycle":  # stepped per minibatch
        sched = torch.optim.lr_scheduler.OneCycleLR(optim, lr, total_steps=epochs * per_epoch)
    elif opts.schedule == "step":  # stepped per epoch
        milestones = sorted(int(m * epochs) for m in lr_milestones)
        sched = torch.optim.lr_scheduler.MultiStepLR(optim, milestones, gamma=lr_decay)
    else:
        raise ValueError(f"[classifier] schedule must be 'step' or 'onecycle': {opts.schedule!r}")
    model.train()
    history: list[float] = []
    bar = _bar(epochs * len(x), desc, quiet)
    for _ in range(epochs):
        total = 0.0
        for idx in _batches(len(xt), batch, gen):
            xb = augment(xt[idx], opts.shift, opts.hflip, gen)
            loss = F.cross_entropy(model.logits(xb), yt[idx])
            optim.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optim.step()
            if opts.schedule == "onecycle":
                sched.step()
            total += float(loss.detach()) * len(idx)
            bar.update(len(idx))
        if opts.schedule == "step":
            sched.step()
        history.append(total / len(x))
    bar.close()
    model.eval()
    return history


def refit_decoder(
    model: StackedConvClassifier,
    x: np.ndarray,
    epochs: int,
    lr: float,
    batch: int,
    gen: torch.Generator,
    quiet: bool = True,
) -> list[float]:
    """Train the stacked decoder (from its pretrained stages) on the frozen encoder's codes;
    BCE summed over pixels, per sample (the zoo's reconstruction loss)."""
    xt = torch.from_numpy(x)
    optim = torch.optim.Adam(model.decoder.parameters(), lr=lr)
    model.eval()
    model.decoder.train()
    history = []
    bar = _bar(epochs * len(x), "decoder refit", quiet)
    for _ in range(epochs):
        total = 0.0
        for idx in _batches(len(xt), batch, gen):
            with torch.no_grad():
                z = model.encode(xt[idx])
            x_hat = model.decode(z)
            loss = F.binary_cross_entropy(x_hat, xt[idx], reduction="sum") / len(idx)
            optim.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optim.step()
            total += float(loss.detach()) * len(idx)
            bar.update(len(idx))
        history.append(total / len(x))
    bar.close()
    model.eval()
    return history


def train_stacked(recipe: Recipe, data: Dataset, *, quiet: bool = False) -> StackedResult:
    """The three phases on ``data.train``; the model comes back in eval mode."""
    if data.train.y is None:
        raise ValueError(f"{recipe.name}: a classifier needs labelled training data")
    t = recipe.train
    opts = StackedOptions.parse(recipe.classifier)
    gen = seed_everything(recipe.seed, t.threads)
    options: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in recipe.arch_options.items()
    }
    cfg = StackedConvConfig(**options)
    model = StackedConvClassifier(cfg, data.shape)
    batch = t.batch_size or 128
    x, y = data.train.x, data.train.y
    phases = {}
    started = time.perf_counter()
    unlabelled = x[: opts.pretrain_limit] if opts.pretrain_limit else x
    pre = pretrain(model, unlabelled, opts, batch, gen, quiet)
    phases["pretrain_s"] = time.perf_counter() - started
    pretrained = copy.deepcopy(model.state_dict())
    mark = time.perf_counter()
    history = finetune(
        model,
        x,
        y,
        steps_or_epochs=("epochs", recipe.epochs),
        lr=t.lr,
        batch=batch,
        lr_decay=t.lr_decay,
        lr_milestones=t.lr_milestones,
        opts=opts,
        gen=gen,
        quiet=quiet,
    )
    phases["finetune_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    refit_decoder(model, unlabelled, opts.decoder_epochs, opts.pretrain_lr, batch, gen, quiet)
    phases["decoder_s"] = time.perf_counter() - mark
    duration = time.perf_counter() - started
    log.info("%s: trained in %.1fs (%s)", recipe.name, duration, phases)
    return StackedResult(
        model=model,
        history=history,
        duration_s=duration,
        pretrained=pretrained,
        phases={k: round(v, 1) for k, v in phases.items()},
        pretrain_losses=pre,
    )


Predict = Callable[[np.ndarray], np.ndarray]


def torch_predict(model: StackedConvClassifier, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Predicted labels [N] of a torch classifier in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model.logits(torch.from_numpy(x[i : i + batch])).argmax(1).numpy())
    return np.concatenate(out)
