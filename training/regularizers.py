"""Penalties added to the training loss, as a registry: kind -> function.

A regulariser gets a :class:`RegularizerContext` and returns a scalar tensor; the trainer adds
``weight * penalty``. None ship yet: issue 4 adds ``l1`` (on the code), ``kl_sparsity`` (on hidden
activations, with ``rho``) and ``contractive`` (the Frobenius norm of the encoder Jacobian) with
:func:`register`; the manifest's ``training.regularizer`` already names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from training.models import Autoencoder, ForwardOut


@dataclass(frozen=True)
class RegularizerContext:
    """What a penalty may look at: the model, the (possibly noisy) input batch and its outputs."""

    model: Autoencoder
    x_in: torch.Tensor
    out: ForwardOut
    rho: float | None = None


RegularizerFn = Callable[[RegularizerContext], torch.Tensor]
REGULARIZERS: dict[str, RegularizerFn] = {}


def register(name: str) -> Callable[[RegularizerFn], RegularizerFn]:
    def deco(fn: RegularizerFn) -> RegularizerFn:
        if name in REGULARIZERS:
            raise ValueError(f"regularizer {name!r} registered twice")
        REGULARIZERS[name] = fn
        return fn

    return deco


def get_regularizer(kind: str) -> RegularizerFn:
    try:
        return REGULARIZERS[kind]
    except KeyError:
        known = ", ".join(sorted(REGULARIZERS)) or "none yet"
        raise KeyError(f"unknown regularizer {kind!r} (known: {known})") from None
