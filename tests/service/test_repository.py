"""Loading: every valid model serves; each kind of broken model is refused with its reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.runtime.errors import ModelNotFound
from service.runtime.manifest import DECODER_FILE, ENCODER_FILE, MANIFEST_FILE
from service.runtime.repository import ModelRepository

from .conftest import ClientFactory, assert_problem, build_glyph, build_table


def test_loads_every_fixture_model(zoo_dir: Path) -> None:
    repo = ModelRepository.load(zoo_dir)
    assert sorted(repo.models) == ["glyph", "glyph-denoise", "glyph-vae", "pixels28", "table"]
    assert repo.failed == {}
    assert repo.default_name == "glyph"  # first by name when none is configured
    assert repo.denoisers() == ["glyph-denoise"]
    with pytest.raises(ModelNotFound, match="unknown model 'nope'; loaded models: glyph,"):
        repo.get("nope")


def _break(root: Path, how: str) -> None:
    d = root / "broken"
    if how == "checksum":
        build_glyph(root, "broken")
        data = bytearray((d / DECODER_FILE).read_bytes())
        data[-1] ^= 0xFF
        (d / DECODER_FILE).write_bytes(bytes(data))
    elif how == "manifest-json":
        build_glyph(root, "broken")
        (d / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    elif how == "manifest-field":
        build_glyph(root, "broken")
        doc = json.loads((d / MANIFEST_FILE).read_text())
        doc["latent"]["dim"] = -3
        (d / MANIFEST_FILE).write_text(json.dumps(doc))
    elif how == "onnx":
        build_glyph(root, "broken")
        (d / ENCODER_FILE).write_bytes(b"not an onnx file")
        doc = json.loads((d / MANIFEST_FILE).read_text())
        import hashlib

        doc["files"]["encoder"]["sha256"] = hashlib.sha256(b"not an onnx file").hexdigest()
        (d / MANIFEST_FILE).write_text(json.dumps(doc))
    elif how == "shape":
        build_glyph(root, "broken")
        doc = json.loads((d / MANIFEST_FILE).read_text())
        doc["input"]["shape"] = [5, 7]
        (d / MANIFEST_FILE).write_text(json.dumps(doc))
    elif how == "latent":
        build_glyph(root, "broken")
        doc = json.loads((d / MANIFEST_FILE).read_text())
        doc["latent"]["dim"] = 34
        doc["latent"]["prior"] = {"kind": "standard_normal"}
        (d / MANIFEST_FILE).write_text(json.dumps(doc))
    elif how == "name":
        build_glyph(root, "broken")
        doc = json.loads((d / MANIFEST_FILE).read_text())
        doc["name"] = "other"
        (d / MANIFEST_FILE).write_text(json.dumps(doc))
    elif how == "missing-file":
        build_glyph(root, "broken")
        (d / ENCODER_FILE).unlink()
    elif how == "no-manifest":
        d.mkdir()
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("checksum", "checksum mismatch"),
        ("manifest-json", "invalid model.json"),
        ("manifest-field", "latent.dim"),
        ("onnx", "does not load in onnxruntime"),
        ("shape", "manifest says [N, 5, 7]"),
        ("latent", "manifest says [N, 34]"),
        ("name", "differs from its directory name"),
        ("missing-file", "missing"),
        ("no-manifest", "no model.json"),
    ],
)
def test_broken_model_is_refused_and_the_others_serve(
    tmp_path: Path, how: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    build_table(tmp_path)
    _break(tmp_path, how)
    repo = ModelRepository.load(tmp_path)
    assert list(repo.models) == ["table"]
    assert reason in repo.failed["broken"]
    refusals = [r for r in caplog.records if "broken refused" in r.getMessage()]
    assert len(refusals) == 1 and reason in refusals[0].getMessage()
    with pytest.raises(ModelNotFound, match="failed to load"):
        repo.get("broken")


def test_failed_model_listed_over_http(
    tmp_path: Path, zoo_dir: Path, make_client: ClientFactory
) -> None:
    for name in ("glyph", "table"):
        shutil.copytree(zoo_dir / name, tmp_path / name)
    _break(tmp_path, "checksum")
    with make_client(model_dir=tmp_path) as client:
        assert client.get("/readyz").json()["failed"][0]["name"] == "broken"
        listing = client.get("/models").json()
        assert [m["name"] for m in listing["models"]] == ["glyph", "table"]
        assert listing["failed"][0]["name"] == "broken"
        assert "checksum mismatch" in listing["failed"][0]["reason"]
        r = client.post("/reconstruct", json={"model": "broken", "inputs": [[0] * 35]})
        assert_problem(r, 404, "model 'broken' failed to load", "checksum")
        ok = client.post("/reconstruct", json={"model": "glyph", "inputs": [[0] * 35]})
        assert ok.status_code == 200
        metrics = client.get("/metrics").text
        assert "aeserve_models_failed 1.0" in metrics
        assert "aeserve_models_loaded 2.0" in metrics
