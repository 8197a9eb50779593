"""Schemathesis against the real server (``python -m service`` on the fixture zoo): every
check (``--checks all``), every phase (examples, coverage, fuzzing, stateful), a bounded number of
examples and a fixed seed. No 5xx, no answer outside its schema, no undocumented status, no
schema-valid request refused except by the documented 422 (``schemathesis.toml`` says why)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
                # The REST API. The Open Inference Protocol's /v2 routes are fuzzed by
                # tests/service/test_fuzz.py against their own error shape.
                "--exclude-path-regex",
                "^/v2",
            ],
            cwd=REPO,  # schemathesis.toml
            capture_output=True,
            text=True,
            timeout=300,
        )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert " passed" in out and "failure" not in out.lower(), out[-3000:]
