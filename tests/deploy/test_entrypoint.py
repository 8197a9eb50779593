"""The container's start command (docker/entrypoint.sh with the image's AESERVE_* environment),
run outside a container, and the health-check script against it."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    ENTRYPOINT,
    HEALTHCHECK,
    TINY_MODEL,
    StartService,
    client,
    free_port,
    service_env,
)


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30
    )


def test_container_command_serves_the_models(start_service: StartService) -> None:
    proc = start_service()
    with client() as http:
        assert http.get(proc.url + "/healthz").status_code == 200
        assert http.get(proc.url + "/readyz").status_code == 200
        response = http.post(proc.url + "/reconstruct", json={"inputs": [[0.1, 0.2, 0.3, 0.4]]})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == TINY_MODEL


def test_healthcheck_passes_on_the_ready_service(
    start_service: StartService, model_repo: Path
) -> None:
    proc = start_service()
    # The script reads the same variables as the service, as it does inside the container.
    result = run_healthcheck(service_env(model_repo, proc.port))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def answering_503() -> Iterator[int]:
    """A server whose /readyz says 503, as the service does while its models load."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503 if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_healthcheck_fails_while_not_ready_or_down(answering_503: int, model_repo: Path) -> None:
    result = run_healthcheck(service_env(model_repo, answering_503))
    assert result.returncode == 1 and "503" in result.stderr
    result = run_healthcheck(service_env(model_repo, free_port()))
    assert result.returncode == 1 and "unhealthy" in result.stderr


def test_options_override_the_environment(start_service: StartService) -> None:
    port = free_port()
    proc = start_service("--port", str(port), port=port)
    with client() as http:
        assert http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    assert proc.port == port


def test_workers_setting_starts_that_many_processes(start_service: StartService) -> None:
    proc = start_service(env={"AESERVE_WORKERS": "2"})
    deadline = time.monotonic() + 30
    workers: list[str] = []
    while time.monotonic() < deadline:
        workers = [c for c in children(proc.popen.pid) if "spawn_main" in c]
        if len(workers) == 2:
            break
        time.sleep(0.2)
    assert len(workers) == 2, workers
    # Each worker loads the models itself, so the second may answer 503 for a moment after the
    # first is ready; ready means every worker answers 200: wait for 8 in a row.
    streak = 0
    with client() as http:
        while streak < 8 and time.monotonic() < deadline + 30:
            streak = streak + 1 if http.get(proc.url + "/readyz").status_code == 200 else 0
            if streak == 0:
                time.sleep(0.1)
    assert streak == 8


def children(pid: int) -> list[str]:
    """Command lines of a process's direct children (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline")
            if cmdline.exists():
                out.append(cmdline.read_bytes().replace(b"\0", b" ").decode())
    return out


def test_bad_setting_stops_the_container_with_a_message(
    start_service: StartService, tmp_path: Path
) -> None:
    proc = start_service(env={"AESERVE_MODEL_DIR": str(tmp_path / "missing")}, wait=False)
    assert proc.popen.wait(60) == 2
    assert "AESERVE_MODEL_DIR" in proc.output()


def test_other_commands_run_as_given(model_repo: Path) -> None:
    env = service_env(model_repo, free_port())
    result = subprocess.run(
        [
            "/bin/sh",
            str(ENTRYPOINT),
            "python",
            "-c",
            "import os; print(os.environ['AESERVE_PORT'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == env["AESERVE_PORT"]
