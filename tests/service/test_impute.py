"""service/runtime/impute.py: the fixed-point imputation, on reconstructions whose answer is
known."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from service.runtime.impute import impute, missing_mask


def _line_model(direction: np.ndarray) -> Any:
    """Reconstruction = orthogonal projection onto the line through 0 along ``direction``
    (the linear autoencoder of data lying on that line)."""
    v = direction / np.linalg.norm(direction)

    def reconstruct(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((x @ v)[:, None] * v[None]).astype(np.float32)
        return out

    return reconstruct


def test_missing_values_of_data_on_the_model_manifold_are_recovered() -> None:
    rng = np.random.default_rng(0)
    v = np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    x = (rng.normal(size=(20, 1)) * v).astype(np.float32)
    missing = np.zeros_like(x, bool)
    missing[:, 1] = True
    missing[::2, 3] = True
    holes = np.where(missing, np.nan, x)
    res = impute(_line_model(v), holes, iterations=500, tolerance=1e-7)
    np.testing.assert_allclose(res.values, x, atol=1e-4)
    assert res.converged.all()
    assert (res.filled == missing).all()
    # known values are the caller's, bit for bit
    assert (res.values[~missing] == x[~missing]).all()


def test_rows_without_missing_values_are_untouched_and_need_no_step() -> None:
    calls: list[int] = []

    def reconstruct(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return np.zeros_like(x)

    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    x[1, 2] = np.nan
    res = impute(reconstruct, x, start=7.0)
    assert res.iterations.tolist() == [0, 2, 0]  # 7 -> 0, then 0 -> 0 (no change: converged)
    assert calls == [1, 1]  # only the row with a hole is reconstructed
    assert res.values[1, 2] == 0.0
    np.testing.assert_array_equal(res.values[[0, 2]], x[[0, 2]])


def test_start_per_position_and_iteration_cap() -> None:
    def shift(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = x + 1.0  # never converges
        return out

    x = np.array([[np.nan, 1.0], [2.0, np.nan]], np.float32)
    res = impute(shift, x, start=np.array([10.0, 20.0], np.float32), iterations=3)
    assert res.values.tolist() == [[13.0, 1.0], [2.0, 23.0]]
    assert not res.converged.any() and res.iterations.tolist() == [3, 3]


def test_masks_images_and_errors() -> None:
    x = np.zeros((2, 3, 3), np.float32)
    mask = np.zeros((2, 3, 3), bool)
    mask[0, 1, 1] = True
    x[1, 0, 0] = np.nan
    assert missing_mask(x, mask).sum() == 2
    res = impute(lambda a: np.full_like(a, 0.5), x, mask)
    assert res.values[0, 1, 1] == 0.5 and res.values[1, 0, 0] == 0.5
    with pytest.raises(ValueError, match="mask shape"):
        missing_mask(x, mask[:1])
    with pytest.raises(ValueError, match="iterations"):
        impute(lambda a: a, x, mask, iterations=0)


def test_the_module_imports_neither_torch_nor_the_web_stack() -> None:
    code = (
        "import sys, service.runtime.impute; "
        "bad = {'torch', 'fastapi', 'starlette'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
