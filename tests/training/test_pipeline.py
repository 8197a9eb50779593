"""A tiny training run end to end: train -> ONNX (parity) -> manifest -> card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from service.runtime.manifest import Manifest, sha256_file
from training import plots
from training.cli import main
from training.datasets import DATASETS, Dataset, Split, load_dataset
from training.datasets.font import glyphs
from training.export import PARITY_TOL, ParityError, check_parity, export
from training.onnx_model import ChecksumError, OnnxAutoencoder, verify_files
from training.pipeline import BuildResult, build, model_version
from training.train import train

from .conftest import tiny_recipe


def test_tiny_run_writes_a_complete_model(tiny_ae: BuildResult) -> None:
    d = tiny_ae.out_dir
    for name in ("model.json", "encoder.onnx", "decoder.onnx", "card.md", "loss.png"):
        assert (d / name).is_file(), name
    assert sorted(p.name for p in d.parent.iterdir()) == ["tiny-ae"]  # no leftovers
    assert tiny_ae.parity <= PARITY_TOL
    card = (d / "card.md").read_text()
    for png in {part.split(")")[0] for part in card.split("](")[1:]}:
        assert (d / png).is_file(), f"card references missing {png}"
    assert "python -m training train tiny" in card


def test_onnx_files_follow_the_contract(tiny_ae: BuildResult) -> None:
    d = tiny_ae.out_dir
    enc, dec = onnx.load(str(d / "encoder.onnx")), onnx.load(str(d / "decoder.onnx"))
    for proto in (enc, dec):
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
        for init in proto.graph.initializer:  # self-contained: no external data
            assert init.data_location != onnx.TensorProto.EXTERNAL
    assert [i.name for i in enc.graph.input] == ["x"] and [o.name for o in enc.graph.output] == [
        "z"
    ]
    assert [i.name for i in dec.graph.input] == ["z"]
    assert [o.name for o in dec.graph.output] == ["x_hat"]
    m = OnnxAutoencoder(d)
    for n in (1, 5, 32):  # the batch axis is dynamic
        z = m.encode(glyphs()[:n])
        assert z.shape == (n, 2) and z.dtype == np.float32
        x_hat = m.decode(z)
        assert x_hat.shape == (n, 7, 5) and x_hat.dtype == np.float32
        assert x_hat.min() >= 0 and x_hat.max() <= 1  # sigmoid: the input range


def test_vae_encoder_outputs_mu_and_logvar(tiny_vae: BuildResult) -> None:
    m = OnnxAutoencoder(tiny_vae.out_dir)
    assert m.encoder_outputs == ["mu", "logvar"] and m.variational
    mu, logvar = m.encode_all(glyphs()[:3])
    assert mu.shape == logvar.shape == (3, 2)
    man = tiny_vae.manifest
    assert man.family == "vae" and man.latent.prior.kind == "standard_normal"
    assert "neg_elbo_test" in man.metrics and man.metrics["neg_elbo_test"].value > 0
    assert tiny_vae.parity <= PARITY_TOL


def test_parity_check_catches_a_wrong_graph(tmp_path: Path) -> None:
    res = train(tiny_recipe(epochs=2), load_dataset("font"), quiet=True)
    exported = export(res.model, tmp_path, glyphs())
    assert exported.max_abs_diff <= PARITY_TOL
    z = [torch.zeros(3, 2), torch.ones(1, 2)]
    assert check_parity(res.model.decoder, exported.decoder, z) <= PARITY_TOL
    with torch.no_grad():  # change the torch weights after export: the file no longer matches
        res.model.decoder[0][0].bias += 1.0
    with pytest.raises(ParityError, match=r"decoder\.onnx"):
        check_parity(res.model.decoder, exported.decoder, z)


def test_manifest_round_trips_through_the_schema(tiny_ae: BuildResult) -> None:
    d = tiny_ae.out_dir
    read = Manifest.read(d)
    assert read == tiny_ae.manifest
    assert Manifest.model_validate_json(read.model_dump_json()) == read
    raw = json.loads((d / "model.json").read_text())
    assert raw["score"]["kind"] == "bce" and raw["input"]["shape"] == [7, 5]
    assert raw["input"]["binary"] is True and raw["input"]["range"] == [0.0, 1.0]
    cal = read.score.calibration
    assert cal.levels[0] == 0.0 and cal.levels[-1] == 1.0 and len(cal.levels) == 101
    assert cal.n == 32
    assert read.latent.prior.kind == "empirical" and read.latent.prior.cov is not None
    assert read.training.command == "python -m training train tiny"
    enc, dec = read.files.encoder, read.files.decoder
    assert enc.sha256 == sha256_file(d / enc.path) and dec.sha256 == sha256_file(d / dec.path)
    assert read.version == model_version(enc.sha256, dec.sha256)


def test_tampered_onnx_file_is_detected(model_copy: Path) -> None:
    manifest = Manifest.read(model_copy)
    verify_files(model_copy, manifest)  # intact: passes
    path = model_copy / "decoder.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"decoder\.onnx"):
        verify_files(model_copy, manifest)


def test_same_seed_same_weights_other_seed_differs() -> None:
    data = load_dataset("font")
    a = train(tiny_recipe(epochs=15), data, quiet=True).model.state_dict()
    b = train(tiny_recipe(epochs=15), data, quiet=True).model.state_dict()
    c = train(tiny_recipe(epochs=15, seed=8), data, quiet=True).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cli_train_writes_model_and_records_command(tmp_path: Path) -> None:
    recipe = tmp_path / "mini.toml"
    recipe.write_text(
        'name = "mini"\nseed = 1\nepochs = 5\n[dataset]\nname = "font"\n'
        '[architecture]\nkind = "dense_ae"\nlatent_dim = 3\nhidden = [8]\n'
        "[evaluate]\nnoise_draws = 2\n"
    )
    out = tmp_path / "models" / "mini"
    assert main(["--quiet", "train", str(recipe), "--out", str(out), "--epochs", "3"]) == 0
    man = Manifest.read(out)
    assert man.training.epochs == 3 and man.latent.dim == 3
    assert man.training.command.endswith(f"--out {out} --epochs 3")
    assert str(recipe) in man.training.command


def test_small_class_labelled_image_set_gets_its_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fewer than 64 samples of a few classes: the plots name each sample by its class (class
    names were once taken for per-sample names, and the latent map and error bars crashed)."""
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(rng.random((n, 6, 6), dtype=np.float32), np.arange(n) % 4)

    def loader(data_dir: Path | None = None) -> Dataset:
        return Dataset(
            name="tiny-classes",
            kind="image",
            shape=(6, 6),
            train=split(40),
            val=split(12),
            test=split(20),
            label_names=["north", "east", "south", "west"],
        )

    monkeypatch.setitem(DATASETS, "tiny-classes", loader)
    seen: dict[str, Any] = {}
    for fn in ("latent_map", "sample_errors"):
        real = getattr(plots, fn)

        def spy(*args: Any, _fn: str = fn, _real: Any = real, **kw: Any) -> Path:
            seen[_fn] = args
            result: Path = _real(*args, **kw)
            return result

        monkeypatch.setattr(plots, fn, spy)
    recipe = tiny_recipe(name="tiny-classes", dataset={"name": "tiny-classes"}, epochs=2)
    res = build(recipe, tmp_path / "tiny-classes", "test", quiet=True)
    assert res.manifest.latent.dim == 2
    for png in ("latent.png", "errors.png", "reconstructions.png", "grid.png"):
        assert (res.out_dir / png).is_file(), png
    names = ["north", "east", "south", "west"]
    assert seen["latent_map"][4] == [names[i % 4] for i in range(40)]  # training samples
    assert seen["sample_errors"][2] == [names[i % 4] for i in range(20)]  # test samples


def test_build_zoo_reports_build_times_and_exits_1_naming_the_missed_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from training import recipe as recipes

    src = (recipes.RECIPES_DIR / "font.toml").read_text().replace("epochs = 3000", "epochs = 30")
    for name, target in (("met", ">= 0"), ("missed", "< 0")):
        text = src.replace('name = "font"\n', f'name = "zoo-{name}"\n', 1)
        text = text.replace('"<= 0" }', f'"{target}" }}\nselection = "Picked by {name} runs."')
        (tmp_path / f"zoo-{name}.toml").write_text(text)
    monkeypatch.setattr(recipes, "zoo", lambda: sorted(tmp_path.glob("*.toml")))
    assert main(["build-zoo", "--out", str(tmp_path / "zoo")]) == 1
    out, err = capsys.readouterr()
    assert "MISSED: zoo-missed: wrong_pixels_total" in err and "zoo-met:" not in err
    rows = {
        line.split()[0]: line.split()[1:3]
        for line in out.splitlines()
        if line.startswith(("zoo-", "total "))
    }
    for name in ("zoo-met", "zoo-missed"):
        extra = Manifest.read(tmp_path / "zoo" / name).training.extra
        assert extra["build_s"] > 0 and extra["build_cpu_s"] > 0
        assert rows[name] == [f"{extra['build_s']:.0f}", f"{extra['build_cpu_s']:.0f}"]
        card = (tmp_path / "zoo" / name / "card.md").read_text()
        assert (
            f"whole build (training, export, studies, baselines): {extra['build_s']:.0f} s" in card
        )
        assert f"## How this recipe was chosen\n\nPicked by {name[4:]} runs." in card
    total = sum(
        Manifest.read(tmp_path / "zoo" / n).training.extra["build_s"]
        for n in ("zoo-met", "zoo-missed")
    )
    assert abs(float(rows["total"][0]) - total) <= 1
    assert "elapsed" in out
    # Only the met one: exit 0.
    assert main(["-q", "build-zoo", "--out", str(tmp_path / "zoo"), "--only", "zoo-met"]) == 0
    # Two at a time, in worker processes: the same files (the version hashes them), the same exit.
    assert main(["-q", "build-zoo", "--out", str(tmp_path / "zoo2"), "--jobs", "2"]) == 1
    for name in ("zoo-met", "zoo-missed"):
        one, two = (Manifest.read(tmp_path / z / name) for z in ("zoo", "zoo2"))
        assert one.version == two.version and one.metrics == two.metrics
