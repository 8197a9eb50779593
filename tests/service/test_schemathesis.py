"""Schemathesis against the real server (``python -m service`` on the fixture zoo): every
check (``--checks all``), every phase (examples, coverage, fuzzing, stateful), a bounded number of
examples and a fixed seed, over the REST API and the Open Inference Protocol's ``/v2`` routes.
No 5xx, no answer outside its schema, no undocumented status, no schema-valid request refused
except by the documented 422 (``schemathesis.toml`` says why; it also names the fixture models
for the v2 paths, so that v2 inference is reached, not only 404s for made-up names)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx

from tests.live_server import REPO, live_server


def test_schemathesis_finds_nothing(zoo_dir: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(REPO / ".venv" / "bin")))
    exe = exe or shutil.which("schemathesis")
    assert exe, "schemathesis missing: `make test` installs the dev extras"
    with live_server(zoo_dir, AESERVE_DEFAULT_MODEL="glyph") as url:
        result = subprocess.run(
            [
                exe,
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--generation-database",
                "none",
                "--no-color",
            ],
            cwd=REPO,  # schemathesis.toml
            capture_output=True,
            text=True,
            timeout=300,
        )
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert " passed" in out and "failure" not in out.lower(), out[-3000:]
    # The v2 routes were reached with real models: answers and model-specific refusals.
    infer = 'endpoint="/v2/models/{model}/infer",model="glyph",status='
    assert infer + '"200"' in metrics and infer + '"422"' in metrics
