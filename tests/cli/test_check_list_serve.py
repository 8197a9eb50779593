"""``aeserve check``, ``list``, ``serve`` and ``--help`` on good and broken model folders."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from tests.cli.conftest import Result, assert_user_error, export_onnx, images, make_ae

Run = Callable[..., Result]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with one packaged model, ``good``."""
    from aeserve.cli import main

    d = tmp_path_factory.mktemp("repo")
    np.save(d / "normal.npy", images(50))
    export_onnx(make_ae(), d / "enc.onnx", d / "dec.onnx", torch.from_numpy(images(2)))
    argv = [
        "package",
        "--name",
        "good",
        "--encoder",
        str(d / "enc.onnx"),
        "--decoder",
        str(d / "dec.onnx"),
        "--data",
        str(d / "normal.npy"),
        "--models",
        str(d / "models"),
    ]
    assert main(argv) == 0
    return d / "models"


def _copy(repo: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / "models" / name
    shutil.copytree(repo / "good", dst)
    manifest = json.loads((dst / "model.json").read_text())
    manifest["name"] = name
    (dst / "model.json").write_text(json.dumps(manifest))
    return dst


def test_check_good_and_broken(run: Run, repo: Path, tmp_path: Path) -> None:
    res = run("check", repo / "good")
    assert res.code == 0 and "OK" in res.out and "good" in res.out

    tampered = _copy(repo, tmp_path, "tampered")
    data = bytearray((tampered / "encoder.onnx").read_bytes())
    data[-1] ^= 1
    (tampered / "encoder.onnx").write_bytes(bytes(data))
    res = run("check", tampered)
    assert res.code == 1 and "checksum mismatch" in res.err and len(res.err.splitlines()) == 1

    renamed = tmp_path / "models" / "renamed"
    shutil.copytree(repo / "good", renamed)
    res = run("check", renamed)
    assert res.code == 1 and "differs from its directory name" in res.err

    broken = _copy(repo, tmp_path, "broken")
    manifest = json.loads((broken / "model.json").read_text())
    manifest["latent"]["dim"] = 3
    (broken / "model.json").write_text(json.dumps(manifest))
    res = run("check", broken)
    assert res.code == 1 and "refused" in res.err

    empty = tmp_path / "models" / "empty"
    empty.mkdir()
    assert "no model.json" in run("check", empty).err
    assert_user_error(run("check", tmp_path / "nowhere"), "not a directory")


def test_list(run: Run, repo: Path, tmp_path: Path) -> None:
    res = run("list", repo)
    assert res.code == 0 and res.out.startswith("good") and "OK" in res.out
    _copy(repo, tmp_path, "fine")
    (tmp_path / "models" / "junk").mkdir()
    res = run("list", tmp_path / "models")
    assert res.code == 1
    lines = res.out.splitlines()
    assert lines[0].startswith("fine ") and "OK" in lines[0]
    assert lines[1].startswith("junk ") and "REFUSED  no model.json" in lines[1]
    assert_user_error(run("list", tmp_path / "nowhere"), "no model repository")


def test_help_reads_well(run: Run) -> None:
    res = run("--help")
    assert res.code == 0
    for command in ("serve", "package", "fit-csv", "check", "list"):
        assert command in res.out
    res = run("package", "--help")
    assert res.code == 0 and "--encoder" in res.out and "aeserve package --name" in res.out
    res = run("fit-csv", "--help")
    assert res.code == 0 and "--label COL" in res.out and "--id-column" in res.out
    assert_user_error(run(), "required: COMMAND")
    assert_user_error(run("frobnicate"), "invalid choice")


def _port() -> int:
    """A free loopback port in 17000-17999 (the range this machine's tests may use)."""
    for port in range(17400, 17999):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 17400-17999")


@pytest.mark.slow
def test_serve(repo: Path, run: Run, tmp_path: Path) -> None:
    assert_user_error(run("serve", "--models", tmp_path / "nowhere"), "no model repository")
    port = _port()
    # No gRPC: its default port (8001) belongs to whatever else runs on the machine.
    env = {**os.environ, "AESERVE_LOG_LEVEL": "warning", "AESERVE_GRPC_PORT": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aeserve",
            "serve",
            "--models",
            str(repo),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "aeserve serve not ready"
            time.sleep(0.1)
        r = httpx.post(
            f"http://127.0.0.1:{port}/anomaly-score", json={"inputs": images(2).tolist()}
        )
        assert r.status_code == 200 and r.json()["model"] == "good"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (as tests/live_server.py expects).
    assert proc.returncode in (0, -15) and b"Traceback" not in out, out
