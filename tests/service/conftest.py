"""Tiny ONNX fixture models built with onnx.helper (no torch), and app/client factories.

Models (all under one session-wide repository directory):

- ``glyph``: image AE, [7, 5] binary, BCE. The code is the image itself (latent 35) and the
  decoder is sigmoid(20 z - 10), so every 0/1 image comes back exactly after thresholding.
  Its reference set (``reference.npz``): 12 random glyphs (:data:`GLYPH_REFERENCE`), so the
  distance between codes is the square root of the number of differing pixels.
- ``glyph-denoise``: the same weights, manifest marked as a bit-flip denoiser.
- ``glyph-vae``: VAE on [7, 5] with ``mu`` and ``logvar`` outputs, latent 4, standard normal prior.
- ``pixels28``: image AE on [28, 28] in [0, 1], random weights, latent 8, MSE; with a linear
  classifier (``classifier.onnx``: logits = z @ CLASSIFIER_W) over 3 classes.
- ``table``: tabular AE on 4 named features with a scaler; decoder is linear, MSE; a reference
  set of 6 rows (no items).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper

from service.http.app import create_app
from service.runtime.manifest import (
    CLASSIFIER_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    Calibration,
    Denoising,
    Files,
    InputSpec,
    LatentSpec,
    Manifest,
    Prior,
    Scaler,
    ScoreSpec,
    TrainingInfo,
    content_version,
)
from service.settings import Settings

FEATURES = ["alpha", "beta", "gamma", "delta"]
CLASSES = ["left", "middle", "right"]
CLASSIFIER_W = np.random.default_rng(5).normal(0, 3, (8, 3))
GLYPH_REFERENCE = np.random.default_rng(7).integers(0, 2, (12, 7, 5)).astype(np.float32)
SCALER_MEAN = [10.0, -2.0, 0.5, 100.0]
SCALER_STD = [2.0, 0.5, 1.0, 25.0]


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _linear(
    name: str, inp: str, out: str, w: np.ndarray, b: np.ndarray
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    inits = [
        numpy_helper.from_array(w.astype(np.float32), f"{name}_w"),
        numpy_helper.from_array(b.astype(np.float32), f"{name}_b"),
    ]
    nodes = [
        helper.make_node("MatMul", [inp, f"{name}_w"], [f"{name}_mm"]),
        helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [out]),
    ]
    return nodes, inits


def write_encoder(
    path: Path, shape: list[int], w: np.ndarray, b: np.ndarray, logvar: np.ndarray | None = None
) -> None:
    """x [N, *shape] -> flatten -> linear -> z (or mu and logvar for a VAE)."""
    dim = w.shape[1]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1)]
    lin, inits = _linear("enc", "flat", "mu" if logvar is not None else "z", w, b)
    nodes += lin
    outputs = []
    if logvar is None:
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", dim]))
    else:
        lv_nodes, lv_inits = _linear("lv", "flat", "logvar", logvar, np.zeros(dim))
        nodes += lv_nodes
        inits += lv_inits
        outputs.append(helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["N", dim]))
        outputs.append(helper.make_tensor_value_info("logvar", TensorProto.FLOAT, ["N", dim]))
    _save(helper.make_graph(nodes, "encoder", [x], outputs, inits), path)


def write_decoder(
    path: Path, shape: list[int], w: np.ndarray, b: np.ndarray, *, sigmoid: bool
) -> None:
    """z [N, dim] -> linear (-> sigmoid) -> reshape -> x_hat [N, *shape]."""
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", w.shape[0]])
    nodes, inits = _linear("dec", "z", "lin", w, b)
    last = "lin"
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["lin"], ["sig"]))
        last = "sig"
    inits.append(numpy_helper.from_array(np.array([-1, *shape], dtype=np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", [last, "shape"], ["x_hat"]))
    out = helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, ["N", *shape])
    _save(helper.make_graph(nodes, "decoder", [z], [out], inits), path)


def write_manifest(
    model_dir: Path,
    *,
    name: str,
    input_spec: InputSpec,
    dim: int,
    family: str = "ae",
    score_kind: str = "bce",
    calibration: tuple[list[float], list[float]] = ([0.0, 0.5, 0.9, 1.0], [0.0, 0.1, 0.2, 0.4]),
    threshold: float = 0.2,
    denoising: Denoising | None = None,
    classes: list[str] | None = None,
) -> Manifest:
    prior = (
        Prior(kind="standard_normal")
        if family == "vae"
        else Prior(
            kind="empirical",
            mean=[0.5] * dim,
            cov=(0.04 * np.eye(dim)).tolist(),
        )
    )
    files = Files.hash(model_dir)
    manifest = Manifest(
        name=name,
        # A team's version with the weights' content version as build metadata (checked at load).
        version=f"1.0.0-test+{content_version(*(f.sha256 for f in files.all()))}",
        created_at="2026-01-01T00:00:00Z",
        description=f"fixture model {name}",
        family=family,  # type: ignore[arg-type]
        input=input_spec,
        latent=LatentSpec(dim=dim, prior=prior),
        files=files,
        score=ScoreSpec(
            kind=score_kind,  # type: ignore[arg-type]
            calibration=Calibration(
                levels=calibration[0], values=calibration[1], n=100, split="fixture"
            ),
            threshold=threshold,
            threshold_rule="quantile:0.9",
        ),
        metrics={},
        training=TrainingInfo(
            dataset="fixture",
            seed=0,
            epochs=0,
            duration_s=0.0,
            architecture={"kind": "linear"},
            command="built by tests/service/conftest.py",
            denoising=denoising,
        ),
        classes=classes,
    )
    manifest.write(model_dir)
    return manifest


def build_glyph(root: Path, name: str = "glyph", denoising: Denoising | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    write_encoder(d / ENCODER_FILE, [7, 5], np.eye(35), np.zeros(35))
    write_decoder(d / DECODER_FILE, [7, 5], 20 * np.eye(35), -10 * np.ones(35), sigmoid=True)
    write_manifest(
        d,
        name=name,
        input_spec=InputSpec(kind="image", shape=[7, 5], binary=True),
        dim=35,
        denoising=denoising,
    )
    (d / "card.md").write_text(f"# {name}\n\nA fixture.\n\n![loss](loss.png)\n", encoding="utf-8")
    (d / "loss.png").write_bytes(_tiny_png())
    if name == "glyph":
        codes = GLYPH_REFERENCE.reshape(12, 35)
        write_reference(
            d,
            codes,
            ids=np.arange(100, 112),
            labels=np.arange(12) % 3,
            names=["even", "odd", "other"],
            inputs=(GLYPH_REFERENCE * 255).astype(np.uint8),
        )
    return d


def write_reference(
    d: Path,
    codes: np.ndarray,
    *,
    ids: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    inputs: np.ndarray | None,
) -> None:
    """A ``reference.npz`` as training/reference.py writes it (the plane: the first two axes)."""
    dim = codes.shape[1]
    axes = np.eye(2, dim, dtype=np.float32)
    arrays = {
        "split": np.array("test"),
        "codes": codes.astype(np.float32),
        "ids": ids.astype(np.int64),
        "labels": labels.astype(np.int64),
        "label_names": np.array(names),
        "plane": np.array("latent" if dim == 2 else "pca"),
        "plane_mean": np.zeros(dim, np.float32),
        "plane_axes": axes,
        "points": (codes @ axes.T).astype(np.float32),
        "explained": np.array([0.5, 0.5], np.float32),
    }
    if inputs is not None:
        arrays["inputs"] = inputs
    np.savez_compressed(d / "reference.npz", **arrays)  # type: ignore[arg-type]


def build_vae(root: Path) -> Path:
    d = root / "glyph-vae"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    write_encoder(
        d / ENCODER_FILE,
        [7, 5],
        rng.normal(0, 0.3, (35, 4)),
        np.zeros(4),
        logvar=rng.normal(0, 0.1, (35, 4)),
    )
    write_decoder(d / DECODER_FILE, [7, 5], rng.normal(0, 1, (4, 35)), np.zeros(35), sigmoid=True)
    write_manifest(
        d,
        name="glyph-vae",
        input_spec=InputSpec(kind="image", shape=[7, 5], binary=True),
        dim=4,
        family="vae",
    )
    return d


def build_pixels28(root: Path) -> Path:
    d = root / "pixels28"
    d.mkdir(parents=True)
    rng = np.random.default_rng(2)
    write_encoder(d / ENCODER_FILE, [28, 28], rng.normal(0, 0.05, (784, 8)), np.zeros(8))
    write_decoder(
        d / DECODER_FILE, [28, 28], rng.normal(0, 0.5, (8, 784)), np.zeros(784), sigmoid=True
    )
    write_classifier(d / CLASSIFIER_FILE, CLASSIFIER_W)
    write_manifest(
        d,
        name="pixels28",
        input_spec=InputSpec(kind="image", shape=[28, 28]),
        dim=8,
        score_kind="mse",
        classes=CLASSES,
    )
    return d


def write_classifier(path: Path, w: np.ndarray) -> None:
    """z [N, dim] -> logits = z @ w [N, classes]."""
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", w.shape[0]])
    nodes, inits = _linear("cls", "z", "logits", w, np.zeros(w.shape[1]))
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", w.shape[1]])
    _save(helper.make_graph(nodes, "classifier", [z], [out], inits), path)


def build_table(root: Path) -> Path:
    """Linear AE on 4 features: the code is the first two standardised features."""
    d = root / "table"
    d.mkdir(parents=True)
    enc = np.zeros((4, 2))
    enc[0, 0] = enc[1, 1] = 1.0
    write_encoder(d / ENCODER_FILE, [4], enc, np.zeros(2))
    write_decoder(d / DECODER_FILE, [4], enc.T.copy(), np.zeros(4), sigmoid=False)
    write_manifest(
        d,
        name="table",
        input_spec=InputSpec(
            kind="tabular",
            shape=[4],
            range=None,
            features=FEATURES,
            scaler=Scaler(mean=SCALER_MEAN, std=SCALER_STD),
        ),
        dim=2,
        score_kind="mse",
        calibration=([0.0, 0.5, 1.0], [0.0, 1.0, 4.0]),
        threshold=3.0,
    )
    codes = np.array([[0, 0], [1, 0], [0, 1], [2, 2], [-1, 0], [0, -3]], dtype=np.float32)
    write_reference(
        d,
        codes,
        ids=np.arange(6),
        labels=np.array([0, 0, 0, 1, 0, 1]),
        names=["normal", "anomaly"],
        inputs=None,
    )
    return d


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def build_zoo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    build_glyph(root)
    build_glyph(root, "glyph-denoise", Denoising(kind="bitflip", level=0.1))
    build_vae(root)
    build_pixels28(root)
    build_table(root)
    return root


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with every fixture model (read-only: tests must not modify it)."""
    return build_zoo(tmp_path_factory.mktemp("zoo"))


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    """Poll /readyz: models load in a background thread started by the lifespan."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/readyz').json()}")


ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client(zoo_dir: Path) -> Iterator[ClientFactory]:
    """``with make_client(**settings) as client``: an app through its lifespan, ready
    (``express=True``: with the express lane on, as ``python -m service`` builds it)."""

    @contextmanager
    def factory(
        ready: bool = True, express: bool = False, hooks: Any = (), **overrides: Any
    ) -> Iterator[TestClient]:
        settings = Settings(**{"model_dir": zoo_dir, "default_model": "glyph", **overrides})
        app = create_app(settings, express=express, hooks=hooks)
        with TestClient(app, raise_server_exceptions=False) as client:
            if ready:
                wait_ready(client)
            yield client

    yield factory


@pytest.fixture
def client(make_client: ClientFactory) -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def glyphs(n: int, seed: int = 0) -> np.ndarray:
    """Random 0/1 images [n, 7, 5]."""
    return np.random.default_rng(seed).integers(0, 2, (n, 7, 5)).astype(np.float32)


def assert_problem(response: Any, status: int, *needles: str) -> dict[str, Any]:
    """A problem+json response with this status whose detail contains every needle."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["instance"]
    for needle in needles:
        assert needle in body["detail"], (needle, body["detail"])
    return body


def component(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` of the OpenAPI document ``spec``, or the component its ``$ref`` names."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    found: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def bce(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    n = x.shape[0]
    loss = -(x * np.log(p) + (1 - x) * np.log(1 - p))
    return loss.reshape(n, -1).mean(axis=1)


__all__ = ["FEATURES", "SCALER_MEAN", "SCALER_STD", "assert_problem", "bce", "glyphs", "math"]
