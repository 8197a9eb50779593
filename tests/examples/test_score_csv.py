"""examples/score_csv.py against the real server (uvicorn on a free loopback port)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.runtime.manifest import Manifest
from tests.live_server import live_server

REPO = Path(__file__).resolve().parents[2]
MODEL = "breast-cancer"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m service`` serving a copy of the shipped breast-cancer model."""
    models = tmp_path_factory.mktemp("models")
    shutil.copytree(REPO / "models" / MODEL, models / MODEL)
    with live_server(models) as url:
        yield url


def write_csv(path: Path, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Generated rows around the model's training statistics; every 10th pushed far out."""
    m = Manifest.read(REPO / "models" / MODEL)
    assert m.input.scaler is not None and m.input.features is not None
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.3, (n, len(m.input.features)))
    far = np.arange(n) % 10 == 0
    z[far, 0] += 12  # 12 standard deviations in the first feature
    raw = z * m.input.scaler.std + m.input.scaler.mean
    ids = np.array([f"case-{i:04d}" for i in range(n)])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "label", *m.input.features])
        for i in range(n):
            w.writerow([ids[i], int(far[i]), *(f"{v:.6f}" for v in raw[i])])
    return m.input.features, ids, far


def test_score_csv_in_batches_against_the_real_server(server: str, tmp_path: Path) -> None:
    src, dst = tmp_path / "cases.csv", tmp_path / "scored.csv"
    features, ids, far = write_csv(src, 53)
    cmd = [
        sys.executable,
        str(REPO / "examples" / "score_csv.py"),
        str(src),
        str(dst),
        "--model",
        MODEL,
        "--url",
        server,
        "--id-column",
        "case",
        "--batch-size",
        "20",
        "--top",
        "2",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "scored 53 rows in 3 requests" in done.stdout
    with dst.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ids.tolist()  # ids back, in order, across batches
    flagged = np.array([r["is_anomaly"] == "1" for r in rows])
    assert flagged[far].all()  # every far-out row is flagged ...
    for r, is_far in zip(rows, far, strict=True):
        top = r["top_features"].split(";")
        assert len(top) == 2
        if is_far:  # ... and explained by the feature that was pushed
            assert top[0].rsplit(":", 1)[0] == features[0]
        assert float(r["percentile"]) >= 0 and float(r["score"]) > 0
    # The same rows scored one by one through the API give the same scores.
    record = {f: float(v) for f, v in zip(features, _first_raw(src), strict=True)}
    one = httpx.post(f"{server}/anomaly-score", json={"model": MODEL, "records": [record]})
    assert float(rows[0]["score"]) == pytest.approx(one.json()["scores"][0], rel=1e-5)


def _first_raw(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        return next(reader)[2:]


def test_score_csv_reports_problems(server: str, tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("case,mean radius\n1,2\n")
    script = str(REPO / "examples" / "score_csv.py")
    done = subprocess.run(
        [sys.executable, script, str(src), str(tmp_path / "o"), "--model", MODEL, "--url", server],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "missing feature column(s)" in done.stderr
