"""Tiny font models built through the real pipeline (seconds), shared by the training tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from training.pipeline import BuildResult, build
from training.recipe import Recipe, parse


def tiny_recipe(kind: str = "dense_ae", **extra: Any) -> Recipe:
    """A small fast recipe on the font set; ``extra`` adds or replaces top-level tables."""
    data: dict[str, Any] = {
        "name": "tiny-" + kind.replace("_", "-"),
        "seed": 7,
        "epochs": 40,
        "dataset": {"name": "font"},
        "architecture": {"kind": kind, "latent_dim": 2, "hidden": [16], "activation": "tanh"},
        "training": {"lr": 0.01},
        "evaluate": {"noise_draws": 4, "samples": 8},
    }
    data.update(extra)
    return parse(data)


@pytest.fixture(scope="session")
def tiny_ae(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    out = tmp_path_factory.mktemp("zoo") / "tiny-ae"
    return build(tiny_recipe(), out, "python -m training train tiny", quiet=True)


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    out = tmp_path_factory.mktemp("zoo") / "tiny-vae"
    return build(tiny_recipe("dense_vae"), out, "python -m training train tiny-vae", quiet=True)


@pytest.fixture
def model_copy(tiny_ae: BuildResult, tmp_path: Path) -> Path:
    """A private copy of the tiny AE's directory that a test may damage."""
    dst = tmp_path / tiny_ae.out_dir.name
    shutil.copytree(tiny_ae.out_dir, dst)
    return dst
