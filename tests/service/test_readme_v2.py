"""The README's Open Inference Protocol examples run, as written, against ``python -m service``
serving the shipped models (curl lines and Python blocks; only host and ports substituted)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.live_server import free_port, live_server

REPO = Path(__file__).resolve().parents[2]


def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Open Inference Protocol (v2)")
    return text[start : text.index("\n## ", start + 1)]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), re.S)


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[str, str]]:
    grpc = free_port()
    with live_server(REPO / "models", AESERVE_GRPC_PORT=str(grpc)) as url:
        yield url.removeprefix("http://"), f"127.0.0.1:{grpc}"


def local(text: str, ports: tuple[str, str]) -> str:
    return text.replace("localhost:8000", ports[0]).replace("localhost:8001", ports[1])


def test_the_curl_examples_run(ports: tuple[str, str]) -> None:
    lines = [ln for block in blocks("sh") for ln in block.splitlines() if ln.startswith("curl")]
    assert len(lines) == 3
    for line in lines:
        out = subprocess.run(
            ["bash", "-c", local(line, ports)], capture_output=True, check=True, timeout=30
        )
        answer = orjson.loads(out.stdout)
        assert "error" not in answer, (line, answer)
        assert answer["name"] == "font" if "infer" not in line else answer["outputs"]


@pytest.mark.parametrize("index", range(3))
def test_the_python_examples_run(ports: tuple[str, str], index: int) -> None:
    code = blocks("python")[index]
    out = subprocess.run(
        [sys.executable, "-c", local(code, ports)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
