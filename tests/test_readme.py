"""Every shell block of the README that talks to the server runs, exactly as written, against a
live server over the shipped zoo (the port changed; nothing else); so does every Python block
that talks to the REST port (tritonclient's HTTP client, our client, httpx).

The blocks run with bash in a scratch directory that has the repository's ``examples/`` and
``.venv/`` beside them, as in a checkout; ``curl`` is wrapped to fail on an HTTP error
(``--fail-with-body``), so a 4xx answer fails the test instead of printing a problem document.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import REPO, free_port_in, live_server

README = REPO / "README.md"
SERVER = "localhost:8000"
BLOCK = re.compile(r"^```(?:sh|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def server_blocks() -> list[str]:
    return [b for b in BLOCK.findall(README.read_text(encoding="utf-8")) if SERVER in b]


def python_blocks() -> list[str]:
    return [b for b in PYTHON_BLOCK.findall(README.read_text(encoding="utf-8")) if SERVER in b]


def own_server_blocks() -> list[str]:
    """Blocks that build a model and start a server of their own (``aeserve serve``)."""
    return [
        b
        for b in BLOCK.findall(README.read_text(encoding="utf-8"))
        if "aeserve serve" in b and SERVER not in b
    ]


def test_the_readme_has_server_examples() -> None:
    blocks = server_blocks()
    assert len(blocks) >= 4
    text = "\n".join(blocks)
    for needed in ("examples/glyph-e.png", "examples/shuttle.csv", "examples/mnist-batch.npy"):
        assert needed in text, needed
        assert (REPO / needed).is_file(), needed


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with live_server(REPO / "models", port=free_port_in(19000, 19999)) as url:
        yield url


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A scratch directory that looks like the repository root to the README's commands."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "models").symlink_to(REPO / "models")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    shims = tmp_path / ".shims"
    shims.mkdir()
    curl = shutil.which("curl")
    assert curl, "curl is needed"
    (shims / "curl").write_text(f'#!/bin/sh\nexec {curl} --fail-with-body "$@"\n')
    (shims / "curl").chmod(0o755)
    return tmp_path


@pytest.mark.parametrize("index", range(len(server_blocks())))
def test_readme_block_runs(server: str, checkout: Path, index: int) -> None:
    block = server_blocks()[index]
    script = block.replace(SERVER, server.removeprefix("http://"))
    env = {**os.environ, "PATH": f"{checkout / '.shims'}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{block}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert '"status":4' not in run.stdout and '"status":5' not in run.stdout, run.stdout


def test_the_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(server: str, checkout: Path, index: int) -> None:
    block = python_blocks()[index]
    script = block.replace(SERVER, server.removeprefix("http://"))
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{block}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert run.stdout.strip(), block  # each prints what it got


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(own_server_blocks())))
def test_readme_block_with_its_own_server_runs(checkout: Path, index: int) -> None:
    """Exactly as written (it starts its own server on its own port)."""
    block = own_server_blocks()[index]
    env = {**os.environ, "PATH": f"{checkout / '.shims'}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"{block}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert '"status":4' not in run.stdout and '"status":5' not in run.stdout, run.stdout
    assert '"error"' not in run.stdout, run.stdout
