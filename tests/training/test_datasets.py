import numpy as np
import pytest

from training.datasets import DATASETS, load_dataset
from training.datasets.font import char_names, decode_row, glyphs


def test_glyph_a_decodes_row_by_row() -> None:
    # 'a' = 00 0e 01 0d 13 13 0d, most significant bit = leftmost pixel, rows top to bottom.
    a = glyphs()[1].astype(int).tolist()
    assert a == [
        [0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 1],
        [0, 1, 1, 0, 1],
        [1, 0, 0, 1, 1],
        [1, 0, 0, 1, 1],
        [0, 1, 1, 0, 1],
    ]


def test_glyph_table_shape_and_landmarks() -> None:
    g = glyphs()
    assert g.shape == (32, 7, 5) and g.dtype == np.float32
    assert set(np.unique(g)) == {0.0, 1.0}
    assert g[31].all()  # DEL: every pixel on
    # '|' is a vertical bar in the middle column with a gap in row 3.
    assert g[28][:, 2].tolist() == [1, 1, 1, 0, 1, 1, 1] and g[28][:, [0, 1, 3, 4]].sum() == 0
    # '`' = 04 04 02 00...: the top-left of the backtick.
    assert g[0][0].tolist() == [0, 0, 1, 0, 0] and g[0][2].tolist() == [0, 0, 0, 1, 0]
    assert len({tuple(x.ravel()) for x in g}) == 32  # all glyphs differ
    names = char_names()
    assert names[0] == "`" and names[1] == "a" and names[26] == "z" and names[31] == "DEL"


def test_decode_row_rejects_wide_values() -> None:
    assert decode_row(0x11) == [1, 0, 0, 0, 1]
    with pytest.raises(ValueError):
        decode_row(0x20)


def test_font_dataset_contract() -> None:
    assert "font" in DATASETS
    d = load_dataset("font")
    assert d.kind == "image" and d.shape == (7, 5) and d.binary and d.score_kind == "bce"
    assert len(d.train) == len(d.val) == len(d.test) == 32
    assert d.value_range == (0.0, 1.0)


def test_unknown_dataset_is_named_in_error() -> None:
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        load_dataset("nope")
