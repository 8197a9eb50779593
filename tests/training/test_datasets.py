import numpy as np
import pytest

from training.datasets import DATASETS, Dataset, Split, load_dataset
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


def _tiny_classes(n: int = 6, label_kind: str = "class") -> Dataset:
    x = np.zeros((n, 2, 2), np.float32)
    split = Split(x, np.arange(n) % 3)
    return Dataset(
        name="tiny",
        kind="image",
        shape=(2, 2),
        train=split,
        val=split,
        test=split,
        label_names=["zero", "one", "two"],
        label_kind=label_kind,  # type: ignore[arg-type]
    )


def test_names_say_whether_they_name_samples_or_classes() -> None:
    font = load_dataset("font")
    assert font.label_kind == "sample"
    assert font.sample_names(font.test) == char_names()
    # Class names: each sample is named by its label, however many samples there are.
    d = _tiny_classes()
    assert d.sample_names(d.test) == ["zero", "one", "two"] * 2
    assert d.sample_names(Split(d.test.x)) is None  # no labels, no names
    digits = load_dataset("digits")
    assert digits.label_kind == "class"
    assert digits.sample_names(digits.test) == [str(c) for c in digits.test.y]
    with pytest.raises(ValueError, match="6 samples, 3 sample names"):
        _tiny_classes(label_kind="sample")
    with pytest.raises(ValueError, match="labels outside the 3 class names"):
        Dataset(
            name="bad",
            kind="image",
            shape=(2, 2),
            train=d.train,
            val=d.val,
            test=Split(d.test.x, np.full(6, 3)),
            label_names=d.label_names,
        )
