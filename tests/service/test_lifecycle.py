"""Models change while the server runs: versions side by side, load/reload/unload under load,
the watcher, and API keys on every path (service/runtime/repository.py, service/dataplane/
plane.py, service/http/routes/repository.py, service/http/keys.py)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.runtime.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    InputSpec,
    Manifest,
    content_version,
)
from service.runtime.repository import ModelRepository
from tests.live_server import live_server

from .conftest import ClientFactory, glyphs, write_decoder, write_encoder, write_manifest

ADMIN, INFER = "admin-secret-1", "infer-secret-2"


def add_version(model: Path, version: str, created_at: str, gain: float) -> str:
    """A version folder in ``model``, named after the full version; returns it."""
    staging = model / "_staging"
    full = build_version(staging, version, created_at, gain)
    staging.rename(model / full)
    return full


def build_version(folder: Path, version: str, created_at: str, gain: float) -> str:
    """A glyph model ``multi`` whose decoder's gain differs per version (so do its answers)."""
    folder.mkdir(parents=True)
    write_encoder(folder / ENCODER_FILE, [7, 5], np.eye(35), np.zeros(35))
    write_decoder(
        folder / DECODER_FILE, [7, 5], gain * np.eye(35), -gain / 2 * np.ones(35), sigmoid=True
    )
    write_manifest(
        folder, name="multi", input_spec=InputSpec(kind="image", shape=[7, 5], binary=True), dim=35
    )
    manifest = Manifest.read(folder)
    # A team's version with the weights' content version as its build metadata.
    full = (
        f"{version}+{content_version(manifest.files.encoder.sha256, manifest.files.decoder.sha256)}"
    )
    manifest.model_copy(update={"version": full, "created_at": created_at}).write(folder)
    return full


def test_versions_side_by_side_newest_serves_and_a_request_can_pin_one(
    tmp_path: Path, make_client: ClientFactory
) -> None:
    v1 = add_version(tmp_path / "multi", "1.0.0", "2026-01-01T00:00:00Z", 20.0)
    v2 = add_version(tmp_path / "multi", "2.0.0", "2026-02-01T00:00:00Z", 4.0)
    repo = ModelRepository.load(tmp_path)
    assert sorted(repo.versions["multi"]) == [v1, v2]
    assert repo.get("multi").version == v2 and repo.get("multi", v1).version == v1
    body = {"model": "multi", "inputs": glyphs(2).tolist()}
    with make_client(model_dir=tmp_path, default_model=None, express=True) as client:
        newest = client.post("/reconstruct", json=body).json()
        old = client.post("/reconstruct", json={**body, "version": v1}).json()
        assert newest["version"] == v2 and old["version"] == v1
        assert newest["outputs"] != old["outputs"]
        r = client.post("/reconstruct", json={**body, "version": "9"})
        assert r.status_code == 404 and f"versions: {v1}, {v2}" in r.json()["detail"]
        listed = client.get("/models/multi").json()
        assert listed["version"] == v2 and listed["versions"] == [v1, v2]
        metrics = client.get("/metrics").text
        for v in (v1, v2):
            assert f'aeserve_model_info{{family="ae",model="multi",version="{v}"}} 1.0' in metrics


def test_a_version_folder_must_be_named_after_its_version(tmp_path: Path) -> None:
    build_version(tmp_path / "multi" / "v1", "1.0.0", "2026-01-01T00:00:00Z", 20.0)
    repo = ModelRepository.load(tmp_path)
    assert "multi" not in repo.models and "name the folder after" in repo.failed["multi"]


def keys_env(tmp_path: Path) -> dict[str, str]:
    file = tmp_path / "keys.txt"
    file.write_text(f"# infer keys\ninfer {hashlib.sha256(INFER.encode()).hexdigest()}\n")
    return {"AESERVE_API_KEYS": f"{ADMIN}:admin", "AESERVE_API_KEYS_FILE": str(file)}


@pytest.mark.slow
def test_reload_under_load_loses_nothing_and_a_broken_version_is_refused(
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    v1 = build_version(models / "multi", "1.0.0", "2026-01-01T00:00:00Z", 20.0)
    auth = {"authorization": f"Bearer {ADMIN}"}
    body = {"model": "multi", "inputs": glyphs(1).tolist()}
    with live_server(models, **keys_env(tmp_path), AESERVE_DEFAULT_MODEL="multi") as url:
        seen: list[str] = []
        failures: list[str] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=10, headers={"x-api-key": INFER}) as http:
                while not stop.is_set():
                    r = http.post("/reconstruct", json=body)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        seen.append(r.json()["version"])

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            # A new version next to the old one: loaded, checked, swapped in under load.
            staging = tmp_path / "staging"
            v2 = add_version(staging, "2.0.0", "2026-03-01T00:00:00Z", 4.0)
            assert add_version(staging, "1.0.0", "2026-01-01T00:00:00Z", 20.0) == v1
            shutil.rmtree(models / "multi")
            shutil.move(str(staging), models / "multi")
            r = httpx.post(f"{url}/v2/repository/models/multi/load", headers=auth, timeout=30)
            assert r.status_code == 200 and r.json()["versions"] == sorted([v1, v2])
            time.sleep(0.5)
            # A broken new version (weights that do not match the manifest): refused, the
            # loaded ones keep serving.
            (models / "multi" / v2 / DECODER_FILE).write_bytes(b"not onnx")
            r = httpx.post(f"{url}/v2/repository/models/multi/load", headers=auth, timeout=30)
            assert r.status_code == 422 and "checksum mismatch" in r.json()["error"]
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, failures[:3]
        assert set(seen) == {v1, v2} and seen[-1] == v2
        first_new = seen.index(v2)
        assert v1 not in seen[first_new + 20 :]  # the old version stopped serving
        # Unload: gone from /models; an infer key cannot unload.
        r = httpx.post(f"{url}/v2/repository/models/multi/unload", headers={"x-api-key": INFER})
        assert r.status_code == 403
        r = httpx.post(f"{url}/v2/repository/models/multi/unload", headers=auth)
        assert r.status_code == 200
        r = httpx.post(f"{url}/reconstruct", json=body, headers=auth)
        assert r.status_code == 404


def test_model_control_is_off_without_an_admin_key(make_client: ClientFactory) -> None:
    with make_client() as client:
        r = client.post("/v2/repository/models/glyph/load")
        assert r.status_code == 403 and "admin API key" in r.json()["error"]


def test_the_watcher_loads_reloads_and_unloads(tmp_path: Path, make_client: ClientFactory) -> None:
    models = tmp_path / "models"
    v1 = build_version(models / "multi", "1.0.0", "2026-01-01T00:00:00Z", 20.0)
    body = {"model": "multi", "inputs": glyphs(1).tolist()}

    def until(check: object, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while not check():  # type: ignore[operator]
            assert time.monotonic() < deadline
            time.sleep(0.05)

    with make_client(model_dir=models, default_model=None, model_watch_s=0.1) as client:
        assert client.post("/reconstruct", json=body).json()["version"] == v1
        shutil.rmtree(models / "multi")
        v11 = build_version(models / "multi", "1.1.0", "2026-02-01T00:00:00Z", 20.0)
        until(lambda: client.post("/reconstruct", json=body).json().get("version") == v11)
        shutil.rmtree(models / "multi")
        until(lambda: client.post("/reconstruct", json=body).status_code == 404)


# -- API keys -------------------------------------------------------------------------------


@pytest.mark.slow
def test_api_keys_hold_on_every_path_and_never_reach_the_logs(
    zoo_dir: Path, tmp_path: Path
) -> None:
    env = {**keys_env(tmp_path), "AESERVE_ACCESS_LOG": "true", "AESERVE_LOG_LEVEL": "info"}
    plain = {"model": "pixels28", "inputs": np.full((1, 784), 0.5).tolist()}
    printed: list[str] = []
    with (
        live_server(zoo_dir, output=printed, **env) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        # Open: health, docs, metrics (by default).
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert http.get(path).status_code == 200, path
        # The express lane's path and the ASGI path (a .npy body, options) alike.
        cases = [
            ("/reconstruct", {"json": plain}),
            ("/anomaly-score", {"json": {"model": "table", "inputs": [[1, 2, 3, 4]]}}),
            ("/sample", {"json": {"model": "glyph-vae", "n": 1}}),
            ("/reconstruct", {"json": {**plain, "binarize": False}}),  # the ASGI path
        ]
        for path, kwargs in cases:
            r = http.post(path, **kwargs)  # type: ignore[arg-type]
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.headers["content-type"] == "application/problem+json"
            r = http.post(path, headers={"authorization": "Bearer wrong"}, **kwargs)  # type: ignore[arg-type]
            assert r.status_code == 401 and "not valid" in r.json()["detail"]
            for header in ({"authorization": f"Bearer {INFER}"}, {"x-api-key": ADMIN}):
                r = http.post(path, headers=header, **kwargs)  # type: ignore[arg-type]
                assert r.status_code == 200, (path, r.text)
        assert http.get("/models").status_code == 401
        assert http.get("/models", headers={"x-api-key": INFER}).status_code == 200
        express = float(
            next(
                line.split()[-1]
                for line in http.get("/metrics").text.splitlines()
                if line.startswith('aeserve_express_requests_total{endpoint="/reconstruct"}')
            )
        )
        assert express >= 2  # the lane answered the keyed requests (and refused the others)
    log = printed[0]
    assert '"POST /reconstruct" 200' in log  # the access log is on ...
    assert INFER not in log and ADMIN not in log  # ... and holds no key


def test_a_bad_keys_file_stops_startup_with_a_clear_message(tmp_path: Path) -> None:
    file = tmp_path / "keys.txt"
    file.write_text("infer not-a-digest\n")
    out = subprocess.run(
        [sys.executable, "-m", "service"],
        env={"AESERVE_API_KEYS_FILE": str(file), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "AESERVE_API_KEYS_FILE" in out.stderr and "line 1" in out.stderr
    assert "Traceback" not in out.stderr
