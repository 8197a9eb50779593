"""Stacked-autoencoder classifiers (training/stacked.py, training/classifier_study.py): a tiny
one built through the real pipeline on scikit-learn's 8x8 digits, and the pieces it is made of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from service.runtime.manifest import CLASSIFIER_FILE, Files, Manifest
from training.classifier_study import confusion, per_class_report, stratified_subset
from training.onnx_model import ChecksumError, OnnxAutoencoder, verify_files
from training.pipeline import BuildResult, build
from training.recipe import parse
from training.stacked import StackedConvClassifier, StackedConvConfig, augment


def tiny_classifier_recipe() -> Any:
    return parse(
        {
            "name": "tiny-classifier",
            "seed": 3,
            "epochs": 2,
            "dataset": {"name": "digits"},
            "architecture": {"kind": "stacked_conv", "latent_dim": 16, "channels": [8, 16]},
            "training": {"lr": 0.003, "batch_size": 64},
            "classifier": {
                "pretrain_limit": 600,
                "shift": 0,  # 2-pixel shifts are for 28x28 images, not 8x8
                "small_fraction": 0.05,
                "small_steps": 10,
                "pca_components": 10,
            },
            "evaluate": {"samples": 8, "images": {"pca": False}},
        }
    )


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    out = tmp_path_factory.mktemp("zoo") / "tiny-classifier"
    return build(tiny_classifier_recipe(), out, "python -m training train tiny", quiet=True)


def test_classifier_model_ships_a_classifier_and_its_label_names(
    tiny_classifier: BuildResult,
) -> None:
    d, m = tiny_classifier.out_dir, tiny_classifier.manifest
    assert (d / CLASSIFIER_FILE).is_file()
    assert m.classes == [str(i) for i in range(10)]
    assert m.files.classifier is not None and m.files.classifier.path == CLASSIFIER_FILE
    assert Manifest.read(d) == m
    verify_files(d, m)
    onnx = OnnxAutoencoder(d)
    x = np.random.default_rng(0).random((7, 8, 8), dtype=np.float32)
    assert onnx.encode(x).shape == (7, 16)
    assert onnx.logits(x).shape == (7, 10)
    assert onnx.reconstruct(x).shape == (7, 8, 8)
    for key in (
        "accuracy_test",
        "accuracy_test_scratch",
        "accuracy_test_pca10_logreg",
        "accuracy_test_1pct",
        "accuracy_test_scratch_1pct",
        "accuracy_test_pca10_logreg_1pct",
        "macro_f1_test",
    ):
        assert 0.0 <= m.metrics[key].value <= 1.0, key
    card = (d / "card.md").read_text()
    assert "same network from scratch" in card and "Per-class report" in card
    assert (d / "confusion.png").is_file() and (d / "label_budget.png").is_file()
    assert m.training.extra["phases_s"].keys() == {"pretrain_s", "finetune_s", "decoder_s"}


def test_the_shipped_accuracy_is_the_onnx_files_accuracy(tiny_classifier: BuildResult) -> None:
    from training.datasets import load_dataset

    data = load_dataset("digits")
    onnx = OnnxAutoencoder(tiny_classifier.out_dir)
    acc = float((onnx.logits(data.test.x).argmax(1) == data.test.y).mean())
    assert acc == pytest.approx(tiny_classifier.manifest.metrics["accuracy_test"].value)


def test_the_service_serves_what_the_pipeline_built(tiny_classifier: BuildResult) -> None:
    # The version names all three files the way the service checks it, the classifier loads
    # and /classify's numbers are the ONNX files'; the reference set is the built encoder's.
    from service.runtime.repository import check_version, load_model
    from service.runtime.sessions import OnnxOptions
    from training.datasets import load_dataset

    runtime = load_model(tiny_classifier.out_dir, OnnxOptions(), 64)
    check_version(runtime.manifest)
    x = load_dataset("digits").test.x[:20]
    res = runtime.classified(runtime.infer("classify", runtime.model_inputs(x))[0])
    logits = OnnxAutoencoder(tiny_classifier.out_dir).logits(x)
    assert res.labels.tolist() == logits.argmax(1).tolist()
    assert res.label_names == [str(i) for i in res.labels.tolist()]
    ref = runtime.reference
    assert ref is not None and ref.codes.shape[1] == runtime.latent_dim


def test_a_tampered_classifier_is_detected(tiny_classifier: BuildResult, tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(tiny_classifier.out_dir, d)
    data = bytearray((d / CLASSIFIER_FILE).read_bytes())
    data[-1] ^= 1
    (d / CLASSIFIER_FILE).write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        verify_files(d, Manifest.read(d))


def test_classes_and_classifier_file_come_together(tiny_classifier: BuildResult) -> None:
    m = tiny_classifier.manifest
    with pytest.raises(ValidationError, match="come together"):
        Manifest.model_validate({**m.model_dump(), "classes": None})
    no_cls = {**m.files.model_dump(), "classifier": None}
    with pytest.raises(ValidationError, match="come together"):
        Manifest.model_validate({**m.model_dump(), "files": no_cls})
    with pytest.raises(ValidationError, match="distinct"):
        Manifest.model_validate({**m.model_dump(), "classes": ["a"] * 10})


def test_files_hash_lists_the_classifier_only_when_present(
    tiny_classifier: BuildResult, tmp_path: Path
) -> None:
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_classifier.out_dir, d)
    assert Files.hash(d).classifier is not None
    (d / CLASSIFIER_FILE).unlink()
    files = Files.hash(d)
    assert files.classifier is None and [f.path for f in files.all()] == [
        "encoder.onnx",
        "decoder.onnx",
    ]


def test_stages_chain_to_the_code_and_back() -> None:
    model = StackedConvClassifier(StackedConvConfig(latent_dim=12, channels=(4, 8)), (16, 16))
    x = torch.rand(3, 16, 16)
    assert model.below(x, 0).shape == (3, 1, 16, 16)
    assert model.below(x, 1).shape == (3, 4, 8, 8)
    assert model.below(x, 2).shape == (3, 8, 4, 4)
    h = model.below(x, 1)
    assert model.stage_decoder(1)(model.stage_encoder(1)(h)).shape == h.shape
    model.eval()
    assert model.encode(x).shape == (3, 12) and model.logits(x).shape == (3, 10)
    assert model.decode(model.encode(x)).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="both even or odd"):
        StackedConvClassifier(StackedConvConfig(channels=(4, 8)), (16, 14))
    with pytest.raises(ValueError, match="too small"):
        StackedConvClassifier(StackedConvConfig(channels=(4, 8, 16)), (4, 4))
    with pytest.raises(ValueError, match="one of them per stage"):
        StackedConvClassifier(StackedConvConfig(channels=(4, 8), downsample=("pool",)), (8, 8))


def test_three_stages_on_28x28_round_odd_sizes_up_and_rebuild_them() -> None:
    """28 -> 14 (pool) -> 7 (stride) -> 4 (stride, odd: rounded up); each stage's decoder
    rebuilds exactly its input's size, 4 -> 7 included; batch norm after every convolution."""
    cfg = StackedConvConfig(
        latent_dim=16, channels=(4, 8, 16), downsample=("pool", "stride", "stride"), batchnorm=True
    )
    model = StackedConvClassifier(cfg, (28, 28))
    x = torch.rand(5, 28, 28)
    sizes = [model.below(x, k).shape[1:] for k in range(4)]
    assert sizes == [(1, 28, 28), (4, 14, 14), (8, 7, 7), (16, 4, 4)]
    for k in range(4):
        h = model.below(x, k)
        assert model.stage_decoder(k)(model.stage_encoder(k)(h)).shape == h.shape
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder.modules()) == 3
    model.eval()
    assert model.decode(model.encode(x)).shape == (5, 28, 28)


def test_onecycle_fine_tuning_anneals_and_pretraining_freezes_the_stages_below() -> None:
    from training.stacked import StackedOptions, finetune, pretrain

    cfg = StackedConvConfig(latent_dim=8, channels=(4, 8), batchnorm=True)
    model = StackedConvClassifier(cfg, (8, 8))
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8), dtype=np.float32)
    y = (x.mean((1, 2)) > 0.5).astype(np.int64)
    gen = torch.Generator().manual_seed(0)
    opts = StackedOptions(shift=0, schedule="onecycle")
    bn0 = model.stage_encoder(0)[1]
    pretrain(model, x, StackedOptions(pretrain_epochs=1), 16, gen)
    # stage 0's statistics were learnt in its own phase and left alone above it: one update per
    # minibatch of stage 0 only (4 of the 12 pretraining steps)
    assert int(bn0.num_batches_tracked) == 4
    seen: list[float] = []
    optim_step = torch.optim.Adam.step

    def spy(self: torch.optim.Adam, *a: Any, **k: Any) -> Any:
        seen.append(self.param_groups[0]["lr"])
        return optim_step(self, *a, **k)

    torch.optim.Adam.step = spy  # type: ignore[method-assign]
    try:
        finetune(
            model,
            x,
            y,
            steps_or_epochs=("epochs", 5),
            lr=0.01,
            batch=16,
            lr_decay=1.0,
            lr_milestones=(),
            opts=opts,
            gen=gen,
        )
    finally:
        torch.optim.Adam.step = optim_step  # type: ignore[method-assign]
    assert len(seen) == 20 and max(seen) == pytest.approx(0.01, rel=0.05)
    assert seen[0] < 0.002 and seen[-1] < 1e-4  # warm-up, then annealed
    with pytest.raises(ValueError, match="schedule"):
        finetune(
            model,
            x,
            y,
            steps_or_epochs=("epochs", 1),
            lr=0.01,
            batch=16,
            lr_decay=1.0,
            lr_milestones=(),
            opts=StackedOptions(schedule="cosine"),
            gen=gen,
        )


def test_augment_shifts_and_flips_within_the_frame() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 9, 9)
    x[:, 4, 4] = 1.0
    out = augment(x, 2, False, gen)
    assert out.shape == x.shape and torch.all(out.sum((1, 2)) == 1)  # the dot moved, intact
    rows, cols = out.nonzero()[:, 1], out.nonzero()[:, 2]
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5
    y = torch.zeros(200, 4, 4)
    y[:, :, 0] = 1.0
    flipped = augment(y, 0, True, gen)
    share = float(flipped[:, 0, 3].mean())
    assert 0.3 < share < 0.7 and torch.all(flipped.sum((1, 2)) == 4)
    assert torch.equal(augment(y, 0, False, gen), y)


def test_stratified_subset_confusion_and_report() -> None:
    y = np.repeat(np.arange(4), [100, 200, 50, 3])
    idx = stratified_subset(y, 0.1, seed=0)
    assert np.bincount(y[idx]).tolist() == [10, 20, 5, 1]
    assert np.array_equal(idx, stratified_subset(y, 0.1, seed=0))
    cm = confusion(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    precision, recall, f1 = per_class_report(cm)
    np.testing.assert_allclose(precision, [0.5, 2 / 3, 0.0])
    np.testing.assert_allclose(recall, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(f1, [0.5, 0.8, 0.0])
