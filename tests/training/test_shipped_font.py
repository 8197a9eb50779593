"""The shipped font models in models/, run with onnxruntime only (no torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.runtime.manifest import Manifest
from training.datasets.font import glyphs
from training.evaluate import wrong_pixels
from training.noise import corrupt
from training.onnx_model import OnnxAutoencoder, verify_files

MODELS = Path(__file__).resolve().parents[2] / "models"


def _load(name: str) -> tuple[Manifest, OnnxAutoencoder]:
    d = MODELS / name
    manifest = Manifest.read(d)
    verify_files(d, manifest)
    return manifest, OnnxAutoencoder(d)


def test_evaluation_helpers_do_not_import_torch() -> None:
    code = (
        "import sys, training.onnx_model, training.evaluate, training.noise, training.datasets;"
        "assert 'torch' not in sys.modules, 'torch loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["font", "font-denoise", "font-vae"])
def test_shipped_manifest_matches_files(name: str) -> None:
    manifest, model = _load(name)
    assert manifest.name == name
    assert manifest.input.shape == [7, 5] and manifest.input.binary
    assert manifest.score.kind == "bce" and manifest.score.threshold_rule == "quantile:0.99"
    assert manifest.training.command == (
        f"python -m training train training/recipes/{name}.toml --out models/{name}"
    )
    assert (MODELS / name / "card.md").is_file()
    assert model.variational == (manifest.family == "vae")


def test_shipped_font_has_zero_wrong_pixels() -> None:
    manifest, model = _load("font")
    g = glyphs()
    z = model.encode(g)
    assert z.shape == (32, 2) and manifest.latent.dim == 2
    assert int(wrong_pixels(g, model.decode(z)).sum()) == 0
    assert manifest.metrics["wrong_pixels_total"].value == 0


def test_shipped_font_denoise_meets_its_targets() -> None:
    manifest, model = _load("font-denoise")
    assert manifest.training.denoising is not None
    assert manifest.training.denoising.kind == "bitflip"
    clean = np.repeat(glyphs(), 100, axis=0)  # 3,200 noisy glyphs per level, not the build's draws
    means = {}
    for p, seed in ((0.10, 20240), (0.20, 20241)):
        noisy = corrupt(clean, "bitflip", p, seed)
        means[p] = float(wrong_pixels(clean, model.reconstruct(noisy)).mean())
        # The noisy input itself is far worse: the model does the work.
        assert float(wrong_pixels(clean, noisy).mean()) > 4 * means[p]
    assert means[0.10] <= 0.2, means
    assert means[0.20] <= 2.0, means
    assert int(wrong_pixels(glyphs(), model.reconstruct(glyphs())).sum()) == 0
