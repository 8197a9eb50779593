"""Reference sets (training/reference.py): written by every build, and for built models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from service.runtime.reference import REFERENCE_FILE, load_reference
from training.datasets import load_dataset
from training.onnx_model import OnnxAutoencoder
from training.pipeline import BuildResult
from training.reference import reference_arrays, write_for_model

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_a_build_writes_the_reference_set(tiny_ae: BuildResult) -> None:
    d = tiny_ae.out_dir
    ref = load_reference(d)
    assert ref is not None and len(ref.ids) == 32 and ref.plane == "latent"
    onnx = OnnxAutoencoder(d)
    data = load_dataset("font")
    assert np.allclose(ref.codes, onnx.encode(data.test.x), atol=1e-5)
    assert ref.label_names[1] == "a"
    assert np.array_equal(np.array(ref.inputs) / 255, data.test.x)


def test_vae_reference_codes_are_posterior_means(tiny_vae: BuildResult) -> None:
    d = tiny_vae.out_dir
    ref = load_reference(d)
    assert ref is not None
    mu = OnnxAutoencoder(d).encode_all(load_dataset("font").test.x)[0]
    assert np.allclose(ref.codes, mu, atol=1e-5)


def test_codes_beyond_two_dimensions_get_a_principal_plane() -> None:
    onnx = OnnxAutoencoder(MODELS / "font-denoise")  # 8-D codes
    a = reference_arrays(onnx, load_dataset("font"))
    axes, mean, codes = a["plane_axes"], a["plane_mean"], a["codes"]
    assert str(a["plane"]) == "pca" and axes.shape == (2, 8)
    assert np.allclose(axes @ axes.T, np.eye(2), atol=1e-5)
    assert np.allclose(a["points"], (codes - mean) @ axes.T, atol=1e-5)
    # The first axis carries the most variance, and the shares are fractions.
    assert a["points"][:, 0].var() >= a["points"][:, 1].var()
    assert 0 < a["explained"].sum() <= 1


def test_shipped_references_match_what_their_encoders_give(tmp_path: Path) -> None:
    """The committed reference.npz of a shipped model is what ``python -m training reference``
    computes from its encoder today (no retraining)."""
    copy = tmp_path / "font-vae"
    shutil.copytree(MODELS / "font-vae", copy)
    (copy / REFERENCE_FILE).unlink()
    write_for_model(copy)
    with (
        np.load(copy / REFERENCE_FILE) as fresh,
        np.load(MODELS / "font-vae" / REFERENCE_FILE) as shipped,
    ):
        assert sorted(fresh.files) == sorted(shipped.files)
        for k in fresh.files:
            assert np.array_equal(fresh[k], shipped[k]), k


def test_every_shipped_model_has_a_small_reference_set() -> None:
    for model in sorted(p.parent for p in MODELS.glob("*/model.json")):
        path = model / REFERENCE_FILE
        assert path.is_file(), model.name
        assert path.stat().st_size < 2_000_000, model.name
        ref = load_reference(model)
        assert ref is not None and 0 < len(ref.ids) <= 1000, model.name
        assert len(ref.labels) == len(ref.codes) == len(ref.points) == len(ref.ids)
