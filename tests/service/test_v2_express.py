"""Plain v2 inference through the express lane: the same bytes as the ASGI path (the reference),
and only the plain cases taken (``service/http/v2/express.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.live_server import live_server

from .conftest import ClientFactory, glyphs
from .test_express import assert_same_answers

INFER = "/v2/models/{}/infer"


def x(model: str, data: Any, shape: list[int], name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": "FP32", "data": data, **extra}


def just(output: str, data: Any, shape: list[int]) -> dict[str, Any]:
    """A body with input x asking for one output."""
    return {"inputs": [x("m", data, shape)], "outputs": [{"name": output}]}


G = glyphs(2)
G_FLAT = G.ravel().tolist()
Z = np.zeros((1, 784)).ravel().tolist()

CASES: list[tuple[str, Any, bool]] = [
    (INFER.format("glyph"), {"inputs": [x("glyph", G_FLAT, [2, 7, 5])]}, False),  # 3 operations
    (
        INFER.format("glyph"),
        {"id": "a", "inputs": [x("glyph", G_FLAT, [2, 35])], "outputs": [{"name": "x_hat"}]},
        True,
    ),
    (
        INFER.format("pixels28"),
        {"inputs": [x("p", Z, [1, 784])], "outputs": [{"name": "score"}, {"name": "x_hat"}]},
        True,
    ),
    (
        INFER.format("glyph-vae"),
        {"inputs": [x("v", G_FLAT, [2, 7, 5])], "outputs": [{"name": "mu"}, {"name": "logvar"}]},
        True,
    ),
    (  # nested data: the full path (the lane reads flat data only)
        INFER.format("glyph-vae"),
        {"inputs": [x("v", G.tolist(), [2, 7, 5])], "outputs": [{"name": "mu"}]},
        False,
    ),
    (
        INFER.format("table"),
        {
            "inputs": [x("t", [1, 2, 3, 4], [1, 4])],
            "outputs": [{"name": "percentile"}, {"name": "contributions"}, {"name": "score"}],
        },
        True,
    ),
    (
        INFER.format("glyph"),
        {"inputs": [x("z", [0.5] * 35, [1, 35], name="z")], "outputs": [{"name": "x_hat"}]},
        True,
    ),
    # Not the plain case, or an error: the full path answers, the same bytes.
    (
        INFER.format("glyph"),
        {**just("z", G_FLAT, [2, 35]), "parameters": {"binarize": True}},
        False,
    ),
    (INFER.format("nope"), just("z", G_FLAT, [2, 35]), False),
    (INFER.format("glyph"), just("z", [2.0] * 35, [1, 35]), False),
    (INFER.format("glyph"), just("z", [1.0] * 3, [1, 3]), False),
    (INFER.format("glyph"), just("?", G_FLAT, [2, 35]), False),
    (INFER.format("glyph"), [1], False),
    # A null id or outputs: refused (422) as the documented schema says, never read as absent.
    (INFER.format("glyph"), {**just("x_hat", G_FLAT, [2, 35]), "id": None}, False),
    (INFER.format("glyph"), {**just("x_hat", G_FLAT, [2, 35]), "outputs": None}, False),
]


@pytest.fixture(scope="module")
def server(zoo_dir: Path) -> Iterator[str]:
    with live_server(zoo_dir, AESERVE_DEFAULT_MODEL="glyph") as url:
        yield url


def test_v2_answers_are_the_same_bytes_as_the_asgi_path(
    server: str, make_client: ClientFactory
) -> None:
    assert_same_answers(server, make_client, CASES)
