"""The shipped models' reference sets (``reference.npz``, what ``/neighbors`` searches) belong to
the shipped encoders: their stored items, encoded again by the served model, give the stored
codes, and each item's nearest reference is itself. A model retrained without rebuilding its
reference set fails here (the course branch's shuttle did: codes off by up to 1.22)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.runtime.repository import load_model
from service.runtime.sessions import OnnxOptions

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = sorted(p.parent.name for p in MODELS.glob("*/model.json"))


@pytest.mark.parametrize("name", SHIPPED)
def test_reference_codes_are_the_shipped_encoders(name: str) -> None:
    runtime = load_model(MODELS / name, OnnxOptions(), 1024)
    ref = runtime.reference
    assert ref is not None, f"{name} ships no usable reference.npz (make reference)"
    assert ref.inputs is not None and 0 < ref.size <= 1000
    rows = np.arange(0, ref.size, max(1, ref.size // 50))  # about 50 items
    items = runtime.reference_items(rows[:, None])[:, 0]  # wire values
    z = runtime.infer("encode", runtime.model_inputs(items))[0].astype(np.float64)
    spread = float(ref.codes.std())
    # Images come back from 8-bit pixels (digits' k/16 values are not multiples of 1/255),
    # tabular rows from float32 raw values: 2% of the codes' spread covers that; a stale set is
    # far off.
    np.testing.assert_allclose(z, ref.codes[rows], atol=0.02 * spread)
    found = runtime.neighbors(z.astype(np.float32), 1)
    own = ref.codes[found.rows[:, 0]]
    # The nearest reference is the item itself, or one at the same code (duplicates).
    np.testing.assert_allclose(own, ref.codes[rows], atol=0.02 * spread)
