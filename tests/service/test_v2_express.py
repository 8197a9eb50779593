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


def binary_body(
    inputs: list[tuple[str, np.ndarray]], outputs: list[str], **extra: Any
) -> tuple[bytes, int]:
    """A body of Triton's binary tensor extension: the JSON header, then the tensors' bytes."""
    import json

    head = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": array.astype("<f4").nbytes},
                }
                for name, array in inputs
            ],
            "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs],
            **extra,
        }
    ).encode()
    return head + b"".join(a.astype("<f4").tobytes() for _, a in inputs), len(head)


BINARY_CASES: list[tuple[str, tuple[bytes, int], str | None, bool]] = [
    (INFER.format("glyph"), binary_body([("x", G)], ["x_hat", "score"]), None, True),
    (
        INFER.format("pixels28"),
        binary_body([("x", np.full((3, 28, 28), 0.5))], ["x_hat"]),
        "application/octet-stream",
        True,
    ),
    (INFER.format("glyph"), binary_body([("z", np.zeros((2, 35)))], ["x_hat"]), None, True),
    (INFER.format("table"), binary_body([("x", np.ones((2, 4)))], ["score"]), None, True),
    # Several operations, options, or an error: the full path, the same bytes.
    (INFER.format("glyph"), binary_body([("x", G)], ["x_hat", "z", "score"]), None, False),
    (
        INFER.format("glyph"),
        binary_body([("x", G)], ["x_hat"], parameters={"binarize": True}),
        None,
        True,  # options as parameters: read as the routes read them
    ),
    (INFER.format("nope"), binary_body([("x", G)], ["x_hat"]), None, False),
    (INFER.format("glyph"), binary_body([("x", np.zeros((1, 3)))], ["x_hat"]), None, False),
    (INFER.format("glyph"), (b'{"inputs": [', 12), None, False),  # a header that is not JSON
]


def test_v2_binary_bodies_take_the_lane_with_the_same_answers(
    server: str, make_client: ClientFactory
) -> None:
    import httpx

    from .test_express import RID, answer, express_count

    with make_client() as local, httpx.Client(base_url=server, timeout=10) as http:
        for path, (body, head), ctype, taken in BINARY_CASES:
            headers = {**RID, "inference-header-content-length": str(head)}
            if ctype is not None:
                headers["content-type"] = ctype
            before = express_count(http)
            live = http.post(path, content=body, headers=headers)
            want = local.post(path, content=body, headers=headers)
            assert answer(live) == answer(want), (path, live.text[:200])
            assert live.headers.get("inference-header-content-length") == want.headers.get(
                "inference-header-content-length"
            )
            assert express_count(http) - before == (1 if taken else 0), (path, live.text[:200])
        # Compressed bodies: the full path decompresses them.
        body, head = BINARY_CASES[0][1]
        import gzip

        headers = {**RID, "inference-header-content-length": str(head)}
        headers["content-encoding"] = "gzip"
        before = express_count(http)
        live = http.post(INFER.format("glyph"), content=gzip.compress(body), headers=headers)
        assert live.status_code == 200 and express_count(http) == before
