"""``aeserve package``: models defined here, packaged from torch and from ONNX files, served."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aeserve.modeldir import model_version
from service.runtime.manifest import Manifest
from tests.cli.conftest import (
    Result,
    assert_user_error,
    export_onnx,
    images,
    make_ae,
    make_table_ae,
    serve,
)
from training.pipeline import model_version as training_version

Run = Callable[..., Result]
FACTORY = "tests.cli.conftest"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calibration data, a state dict and ONNX files exported by the test."""
    d = tmp_path_factory.mktemp("package")
    np.save(d / "normal.npy", images(300))
    ae = make_ae()
    with torch.no_grad():  # weights different from the factory's, so loading them matters
        for p in ae.parameters():
            p.mul_(1.5)
    torch.save(ae.state_dict(), d / "ae.pt")
    export_onnx(make_ae(), d / "enc.onnx", d / "dec.onnx", torch.from_numpy(images(4)))
    export_onnx(
        make_ae(),
        d / "enc-fixed.onnx",
        d / "dec-fixed.onnx",
        torch.from_numpy(images(1)),
        dynamic=False,
    )
    export_onnx(
        make_ae(),
        d / "enc-named.onnx",
        d / "dec-named.onnx",
        torch.from_numpy(images(2)),
        input_name="input",
    )
    return d


def test_torch_module_packaged_and_served(run: Run, workdir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    res = run(
        "package",
        "--name",
        "tiny",
        "--torch",
        f"{FACTORY}:make_ae",
        "--weights",
        workdir / "ae.pt",
        "--data",
        workdir / "normal.npy",
        "--models",
        models,
    )
    assert res.code == 0, res.err
    folder = models / "tiny"
    m = Manifest.read(folder)
    assert (m.family, m.input.kind, m.input.shape, m.latent.dim) == ("ae", "image", [8, 8], 2)
    assert m.score.kind == "bce" and m.score.threshold_rule == "quantile:0.99"
    assert m.score.calibration.n == 300 and m.latent.prior.kind == "empirical"
    assert m.training.command.startswith("aeserve package --name tiny --torch")
    assert m.training.extra["parity_max_abs_diff"] <= 1e-4
    card = (folder / "card.md").read_text()
    for plot in ("scores.png", "latent.png", "reconstructions.png"):
        assert (folder / plot).is_file() and f"]({plot})" in card

    # The weights file was loaded: the served reconstruction is the loaded module's.
    ae = make_ae()
    ae.load_state_dict(torch.load(workdir / "ae.pt", weights_only=True))
    x = images(5, seed=9)
    with torch.no_grad():
        want = ae.decode(ae.encode(torch.from_numpy(x))).numpy()
    with serve(models) as client:
        r = client.post("/reconstruct", json={"model": "tiny", "inputs": x.tolist()})
        assert r.status_code == 200, r.text
        assert np.abs(np.asarray(r.json()["outputs"]) - want).max() < 1e-4
        r = client.post("/anomaly-score", json={"model": "tiny", "inputs": x.tolist()})
        body = r.json()
        assert r.status_code == 200 and body["threshold"] == m.score.threshold
        assert len(body["percentiles"]) == 5
        # The score is the contract's BCE of the module's own reconstruction.
        p = np.clip(want.reshape(5, -1).astype(np.float64), 1e-7, 1 - 1e-7)
        t = x.reshape(5, -1).astype(np.float64)
        bce = -(t * np.log(p) + (1 - t) * np.log1p(-p)).mean(1)
        np.testing.assert_allclose(body["scores"], bce, rtol=1e-4)
        assert body["is_anomaly"] == [s > m.score.threshold for s in body["scores"]]


@pytest.mark.slow
def test_torch_vae_and_pair(run: Run, workdir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    data = workdir / "normal.npy"
    assert (
        run(
            "package",
            "--name",
            "v",
            "--torch",
            f"{FACTORY}:make_vae",
            "--data",
            data,
            "--models",
            models,
        ).code
        == 0
    )
    m = Manifest.read(models / "v")
    assert m.family == "vae" and m.latent.prior.kind == "standard_normal"
    ae = make_ae()
    pair_weights = tmp_path / "pair.pt"
    torch.save({"encoder": ae.enc.state_dict(), "decoder": ae.dec.state_dict()}, pair_weights)
    res = run(
        "package",
        "--name",
        "p",
        "--torch",
        f"{FACTORY}:make_pair",
        "--weights",
        pair_weights,
        "--data",
        data,
        "--models",
        models,
    )
    assert res.code == 0, res.err
    with serve(models) as client:
        r = client.post("/sample", json={"model": "v", "n": 3, "seed": 1})
        assert r.status_code == 200 and np.asarray(r.json()["outputs"]).shape == (3, 8, 8)
        r = client.post(
            "/encode", json={"model": "v", "inputs": images(2).tolist(), "return_logvar": True}
        )
        assert r.status_code == 200 and len(r.json()["logvar"]) == 2
        r = client.post("/encode", json={"model": "p", "inputs": images(2).tolist()})
        assert r.status_code == 200


def test_onnx_files_packaged_and_served(run: Run, workdir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    res = run(
        "package",
        "--name",
        "from-onnx",
        "--encoder",
        workdir / "enc.onnx",
        "--decoder",
        workdir / "dec.onnx",
        "--data",
        workdir / "normal.npy",
        "--models",
        models,
    )
    assert res.code == 0, res.err
    m = Manifest.read(models / "from-onnx")
    assert m.training.architecture["source"] == "onnx"
    assert m.version == training_version(m.files.encoder.sha256, m.files.decoder.sha256)
    x = images(3, seed=4)
    ae = make_ae()
    with torch.no_grad():
        want = ae.decode(ae.encode(torch.from_numpy(x))).numpy()
    with serve(models) as client:
        r = client.post("/reconstruct", json={"model": "from-onnx", "inputs": x.tolist()})
        assert np.abs(np.asarray(r.json()["outputs"]) - want).max() < 1e-4
        # The calibration samples' codes: the web app's latent map of the model.
        listed = client.get("/models/from-onnx").json()
        assert listed["reference"] == "/models/from-onnx/reference"
        ref = client.get("/models/from-onnx/reference?inputs=true").json()
        n = len(np.load(workdir / "normal.npy"))
        assert ref["split"] == "calibration" and ref["label_names"] == ["normal"]
        assert ref["n"] == min(n, 1000) and ref["labels"] == [0] * ref["n"]
        items = np.asarray(ref["inputs"], dtype=np.float32) / 255
        again = client.post("/encode", json={"model": "from-onnx", "inputs": items.tolist()})
        assert np.allclose(again.json()["latents"], ref["codes"], atol=0.05)


@pytest.mark.slow
def test_package_from_onnx_does_not_import_torch(workdir: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from aeserve.cli import main\n"
        f"rc = main(['package', '--name', 'no-torch', '--encoder', {str(workdir / 'enc.onnx')!r},"
        f" '--decoder', {str(workdir / 'dec.onnx')!r}, '--data', {str(workdir / 'normal.npy')!r},"
        f" '--models', {str(tmp_path)!r}])\n"
        "assert rc == 0, rc\n"
        "assert 'torch' not in sys.modules, 'aeserve package imported torch'\n"
        "rc = main(['check', " + repr(str(tmp_path / "no-torch")) + "])\n"
        "assert rc == 0 and 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "no-torch" / "model.json").is_file()


def test_image_folder_and_csv(run: Run, workdir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(images(20)):
        Image.fromarray((img * 255).round().astype(np.uint8)).save(folder / f"{i:02d}.png")
    models = tmp_path / "models"
    res = run(
        "package",
        "--name",
        "imgs",
        "--encoder",
        workdir / "enc.onnx",
        "--decoder",
        workdir / "dec.onnx",
        "--data",
        folder,
        "--models",
        models,
    )
    assert res.code == 0, res.err
    assert Manifest.read(models / "imgs").score.calibration.n == 20

    # Tabular: a CSV with a header (an id column dropped), raw features, MSE.
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 5))
    csv = tmp_path / "normal.csv"
    lines = ["id,a,b,c,d,e"] + [
        f"r{i}," + ",".join(f"{v:.4f}" for v in row) for i, row in enumerate(rows)
    ]
    csv.write_text("\n".join(lines) + "\n")
    table = make_table_ae()
    export_onnx(
        table,
        tmp_path / "t-enc.onnx",
        tmp_path / "t-dec.onnx",
        torch.from_numpy(rows[:4].astype(np.float32)),
    )
    res = run(
        "package",
        "--name",
        "tab",
        "--encoder",
        tmp_path / "t-enc.onnx",
        "--decoder",
        tmp_path / "t-dec.onnx",
        "--data",
        csv,
        "--drop",
        "id",
        "--models",
        models,
    )
    assert res.code == 0, res.err
    m = Manifest.read(models / "tab")
    assert (m.input.kind, m.input.features, m.score.kind) == ("tabular", list("abcde"), "mse")
    with serve(models) as client:
        record = dict(zip("abcde", [0.1, -0.2, 0.3, 0.0, 1.0], strict=True))
        r = client.post("/anomaly-score", json={"model": "tab", "records": [record]})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["contributions"][0]["feature"] in "abcde"
        ref = client.get("/models/tab/reference?inputs=true").json()
        assert ref["n"] == 200 and np.allclose(ref["inputs"], rows, atol=1e-4)


def test_version_formula_matches_training() -> None:
    assert model_version("a" * 64, "b" * 64) == training_version("a" * 64, "b" * 64)


def test_user_mistakes(run: Run, workdir: Path, tmp_path: Path) -> None:
    data, enc, dec = workdir / "normal.npy", workdir / "enc.onnx", workdir / "dec.onnx"
    models = tmp_path / "models"
    onnx = ["--encoder", enc, "--decoder", dec]
    base = ["package", "--name", "m", "--models", models]
    cases: list[tuple[list[object], str]] = [
        ([*base, "--data", data], "--encoder and --decoder"),
        ([*base, *onnx, "--torch", f"{FACTORY}:make_ae", "--data", data], "not both"),
        ([*base, *onnx, "--weights", workdir / "ae.pt", "--data", data], "--weights goes with"),
        ([*base, *onnx, "--data", tmp_path / "nope.npy"], "no such file"),
        ([*base, "--encoder", tmp_path / "x.onnx", "--decoder", dec, "--data", data], "--encoder"),
        (["package", "--name", "My Model", *onnx, "--data", data], "model name"),
        (
            [
                *base,
                "--encoder",
                workdir / "enc-named.onnx",
                "--decoder",
                workdir / "dec-named.onnx",
                "--data",
                data,
            ],
            "named 'x'",
        ),
        (
            [
                *base,
                "--encoder",
                workdir / "enc-fixed.onnx",
                "--decoder",
                workdir / "dec-fixed.onnx",
                "--data",
                data,
            ],
            "batch axis is fixed",
        ),
        ([*base, *onnx, "--data", workdir / "normal.npy", "--range", "0", "0.5"], "outside"),
        ([*base, *onnx, "--data", data, "--threshold-rule", "best_f1"], "quantile:Q"),
        ([*base, *onnx, "--data", data, "--range", "1", "0"], "LO must be below HI"),
        ([*base, "--torch", "nocolon", "--data", data], "pkg.module:factory"),
        ([*base, "--torch", "no_such_module_xyz:f", "--data", data], "cannot import"),
        ([*base, "--torch", f"{FACTORY}:not_a_module", "--data", data], "not a torch.nn.Module"),
        (
            [
                *base,
                "--torch",
                f"{FACTORY}:make_vae",
                "--weights",
                workdir / "ae.pt",
                "--data",
                data,
            ],
            "does not fit",
        ),
        (
            [*base, "--torch", f"{FACTORY}:make_ae", "--weights", data, "--data", data],
            "not a state dict",
        ),
        ([*base, *onnx, "--data", data, "--bogus"], "unrecognized arguments"),
        (["package"], "required"),
    ]
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((10, 6, 6), np.float32))
    cases.append(([*base, *onnx, "--data", wrong_shape], "[N, 6, 6]"))
    text = tmp_path / "text.csv"
    text.write_text("a,b\n1,x\n")
    cases.append(([*base, *onnx, "--data", text], "must be a number"))
    for argv, needle in cases:
        assert_user_error(run(*argv), needle)
    assert not models.exists() or not any(models.iterdir())  # nothing half-written

    # MSE-trained, unbounded outputs are no probabilities: BCE is refused, MSE works.
    rows = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    export_onnx(
        make_table_ae(), tmp_path / "te.onnx", tmp_path / "td.onnx", torch.from_numpy(rows[:2])
    )
    t = ["--encoder", tmp_path / "te.onnx", "--decoder", tmp_path / "td.onnx"]
    assert_user_error(run(*base, *t, "--data", tmp_path / "rows.npy", "--score", "bce"), "[0, 1]")
    assert run(*base, *t, "--data", tmp_path / "rows.npy").code == 0
    assert_user_error(run(*base, *t, "--data", tmp_path / "rows.npy"), "--force")
    assert run(*base, *t, "--data", tmp_path / "rows.npy", "--force").code == 0
    assert json.loads((models / "m" / "model.json").read_text())["input"]["kind"] == "tabular"
