"""The command line run in-process (``aeserve.cli.main``), and the models the tests define.

The autoencoders here are small torch modules written for the tests (not from ``training/``):
8x8 images in [0, 1] with sigmoid outputs, a VAE, a pair of plain modules, and a tabular AE.
``serve`` starts the app through its lifespan on a model repository, as the server would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from aeserve.cli import main
from service.http.app import create_app
from service.settings import Settings

SHAPE = (8, 8)
SIZE = 64


class TinyAE(nn.Module):
    """8x8 images -> 2-D code -> 8x8 in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(SIZE, 16), nn.Tanh(), nn.Linear(16, 2))
        self.dec = nn.Sequential(
            nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, SIZE), nn.Sigmoid(), nn.Unflatten(1, SHAPE)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.enc(x)
        return out

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dec(z)
        return out


class TinyVAE(TinyAE):
    """The same, with a (mu, logvar) encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.logvar = nn.Linear(SIZE, 2)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.enc(x), self.logvar(x.flatten(1))


class TableAE(nn.Module):
    """5 raw features -> 2 -> 5 (no output activation: MSE)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
        self.dec = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 5))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.enc(x)
        return out

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dec(z)
        return out


# Factories named on the command line as tests.cli.conftest:<name>.
def make_ae() -> TinyAE:
    torch.manual_seed(0)
    return TinyAE()


def make_vae() -> TinyVAE:
    torch.manual_seed(1)
    return TinyVAE()


def make_pair() -> tuple[nn.Module, nn.Module]:
    ae = make_ae()
    return ae.enc, ae.dec


def make_table_ae() -> TableAE:
    torch.manual_seed(2)
    return TableAE()


def not_a_module() -> str:
    return "nothing"


def images(n: int, seed: int = 0) -> np.ndarray:
    """n smooth 8x8 images in [0, 1]: a bright blob at a random place."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:8, 0:8]
    cy, cx = rng.uniform(2, 6, (2, n, 1, 1))
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4).astype(np.float32)


def export_onnx(
    module: nn.Module,
    path_enc: Path,
    path_dec: Path,
    example: torch.Tensor,
    *,
    dynamic: bool = True,
    input_name: str = "x",
) -> None:
    """The test's own export of ``module`` (encode/decode) to two ONNX files."""
    import warnings

    class Call(nn.Module):
        def __init__(self, fn: str) -> None:
            super().__init__()
            self.m, self.fn = module, fn

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = getattr(self.m, self.fn)(x)
            return out

    module.eval()
    with torch.no_grad():
        z = module.encode(example)  # type: ignore[operator]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fn, inp, name, out, path in (
            ("encode", example, input_name, "z", path_enc),
            ("decode", z, "z", "x_hat", path_dec),
        ):
            axes = {name: {0: "N"}, out: {0: "N"}} if dynamic else None
            torch.onnx.export(
                Call(fn),
                (inp,),
                str(path),
                input_names=[name],
                output_names=[out],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Result]]:
    """``run(*argv)`` -> Result(code, out, err) of ``aeserve *argv`` in this process."""

    def call(*argv: str | Path) -> Result:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse: --help (0) and usage mistakes (2)
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield call


def assert_user_error(result: Result, *needles: str) -> None:
    """Exit status 2, one line on stderr that names the problem, no traceback."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in result.err, (needle, result.err)


@contextmanager
def serve(models: Path) -> Iterator[TestClient]:
    """The app on ``models`` through its lifespan, once ready."""
    with TestClient(create_app(Settings(model_dir=models))) as client:
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "models did not load"
            time.sleep(0.05)
        yield client
