"""``aeserve package --torch``: a user's PyTorch module -> encoder.onnx and decoder.onnx.

Imported only for ``--torch`` (it needs torch, the ``train`` extra). The export and the parity
check are training's own (:func:`training.export.to_onnx`, :func:`check_parity`): the public
``torch.onnx.export``, a dynamic batch axis, onnxruntime within 1e-4 of torch.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from aeserve.errors import UserError

try:
    import torch
    from torch import nn
except ImportError as exc:  # the runtime install: say what to install, in one line
    raise UserError("--torch needs PyTorch: pip install 'aeserve[train]'") from exc

from service.runtime.manifest import DECODER_FILE, ENCODER_FILE
from training.export import ParityError, check_parity, to_onnx

# Largest batch the export runs through torch and onnxruntime for the parity check.
PARITY_ROWS = 256


class _Method(nn.Module):
    """``owner.<method>(x)`` as a module of its own (encoder and decoder export separately)."""

    def __init__(self, owner: nn.Module, method: str) -> None:
        super().__init__()
        self.owner = owner
        self.method = method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.owner, self.method)(x)


def load_factory(spec: str) -> Any:
    """``pkg.module:factory`` -> the callable (the working directory is importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"--torch {spec!r}: write it as pkg.module:factory")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"--torch: cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"--torch: {module_name} has no callable {attr!r}")
    return factory


def _modules(made: Any, spec: str) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """(encoder, decoder, whole module or None for a pair)."""
    if isinstance(made, tuple | list) and len(made) == 2:
        if not all(isinstance(m, nn.Module) for m in made):
            raise UserError(f"--torch {spec}: the pair must hold two torch.nn.Module objects")
        return made[0], made[1], None
    if isinstance(made, nn.Module):
        if not (
            callable(getattr(made, "encode", None)) and callable(getattr(made, "decode", None))
        ):
            raise UserError(
                f"--torch {spec}: {type(made).__name__} needs encode(x) and decode(z) methods "
                "(or return an (encoder, decoder) pair)"
            )
        return _Method(made, "encode"), _Method(made, "decode"), made
    raise UserError(f"--torch {spec}: returned {type(made).__name__}, not a torch.nn.Module")


def _load_weights(
    path: Path, encoder: nn.Module, decoder: nn.Module, whole: nn.Module | None
) -> None:
    if not path.is_file():
        raise UserError(f"--weights: no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise UserError(
            f"--weights {path}: not a state dict torch.load(weights_only=True) can read "
            f"({type(exc).__name__}); save it with torch.save(module.state_dict(), path)"
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"--weights {path}: holds {type(state).__name__}, not a state dict")
    try:
        if whole is not None:
            whole.load_state_dict(state)
        elif set(state) >= {"encoder", "decoder"}:
            encoder.load_state_dict(state["encoder"])
            decoder.load_state_dict(state["decoder"])
        else:
            raise UserError(
                f"--weights {path}: for an (encoder, decoder) pair, save "
                "{'encoder': enc.state_dict(), 'decoder': dec.state_dict()}"
            )
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--weights {path} does not fit the module: {first}") from None


def export_module(spec: str, weights: Path | None, x: np.ndarray, work: Path) -> float:
    """Write both ONNX files into ``work``; returns the worst torch-vs-onnxruntime difference."""
    factory = load_factory(spec)
    try:
        made = factory()
    except Exception as exc:  # the user's code
        raise UserError(
            f"--torch {spec}: the factory failed: {type(exc).__name__}: {exc}"
        ) from None
    encoder, decoder, whole = _modules(made, spec)
    if weights is not None:
        _load_weights(weights, encoder, decoder, whole)
    for module in (encoder, decoder):
        module.eval()
    xt = torch.from_numpy(np.ascontiguousarray(x[:PARITY_ROWS], dtype=np.float32))
    try:
        with torch.no_grad():
            out = encoder(xt)
    except Exception as exc:  # the user's code
        raise UserError(
            f"the encoder fails on the data (batch {list(xt.shape)}): {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(out, torch.Tensor):
        outputs, z = ["z"], out
    elif isinstance(out, tuple | list) and len(out) == 2:
        outputs, z = ["mu", "logvar"], out[0]  # a VAE: decode the mean
    else:
        raise UserError("encode(x) must return a tensor z, or (mu, logvar) for a VAE")
    try:
        (work / ENCODER_FILE).write_bytes(to_onnx(encoder, xt[:2], "x", outputs))
        (work / DECODER_FILE).write_bytes(to_onnx(decoder, z[:2], "z", ["x_hat"]))
    except Exception as exc:  # the exporter's errors have no common type
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"torch.onnx.export failed: {type(exc).__name__}: {first}") from None
    try:
        return max(
            check_parity(encoder, work / ENCODER_FILE, [xt, xt[:1], xt[:7]]),
            check_parity(decoder, work / DECODER_FILE, [z, z[:1], z[:7]]),
        )
    except ParityError as exc:
        raise UserError(
            f"the exported graph disagrees with torch: {exc} (tolerance 1e-4)"
        ) from None
