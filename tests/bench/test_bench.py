"""`make bench` keeps working: the quick mode runs every piece (servers, the floor, wrk, raw
onnxruntime, report and plot) in a few seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import JSON_IMAGE, JSON_RECORD, NPY_BATCH
from bench.v2 import GRPC_IMAGE, V2_BINARY, V2_JSON

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").stat().st_size > 1000
    runs = {(r["server"], r["scenario"]) for r in data["results"]}
    assert runs >= {
        ("baseline", JSON_IMAGE),
        ("baseline", JSON_RECORD),
        ("aeserve", JSON_IMAGE),
        ("aeserve", JSON_RECORD),
        ("aeserve", NPY_BATCH),
        ("aeserve-nobatch", JSON_IMAGE),
        ("floor", JSON_IMAGE),
        ("floor", JSON_RECORD),
        ("aeserve", V2_BINARY),
        ("aeserve", GRPC_IMAGE),
    }
    for r in data["results"]:
        assert r["requests"] > 0 and r["rps"] > 0 and r["errors"] == 0, r
    assert data["raw"]["batch1_us"] > 0 and data["memory"]["rss_mb"] > 0
    assert "| target | measured | met |" in text and "![requests/s" in text
    assert text.count("floor (bench/floor.py): ") == 2 and "| floor | " in text
    # The 8x targets side by side: both servers, each request, alternating.
    paired = {(p["server"], p["scenario"]) for p in data["paired"]}
    assert paired == {
        *((s, r) for s in ("baseline", "aeserve") for r in (JSON_IMAGE, JSON_RECORD)),
        # v2 JSON against REST /reconstruct on one server (bench/v2.py).
        ("aeserve-v2", V2_JSON),
        ("aeserve-rest", V2_JSON),
    }
    assert all(p["rps"] > 0 for p in data["paired"])
    assert text.count("side by side (") == 3 and "**Side by side.**" in text
    assert "**Open Inference Protocol, side by side**" in text
    assert "v2 binary 256-image request" in text and "gRPC 1 image, 16 clients" in text


def test_soak_capacity_counts_only_answers_and_the_pace_meets_the_target() -> None:
    from bench import soak

    # Flat out, a shedding server answers many quick 503s: they are not capacity.
    flat = {"requests": 1000, "non2xx": 400, "socket_errors": 100}
    assert soak.answered(flat) == 500
    # 64 closed-loop clients at 0.1 s per request and 40/s: each pauses 1.5 s.
    assert soak.pace(64, 40.0, 0.1) == pytest.approx(1500.0)
    assert 64 / (0.1 + soak.pace(64, 40.0, 0.1) / 1000) == pytest.approx(40.0)
    assert soak.pace(64, 10_000.0, 0.5) == 0.0  # never negative
