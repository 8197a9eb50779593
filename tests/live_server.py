"""``python -m service`` as a real process: uvicorn on a free loopback port, over HTTP.

Shared by the tests that need the real server (``tests/service/test_server.py``,
``tests/examples/test_score_csv.py``); the deployment tests start the container entrypoint
instead (``tests/deploy/conftest.py``).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


# Loopback ports the tests may use (this shared machine leaves the project 20000-21999).
PORTS = range(20000, 22000)


def free_port() -> int:
    """A free loopback port in :data:`PORTS`."""
    start = random.randrange(len(PORTS))
    for i in range(len(PORTS)):
        port = PORTS[(start + i) % len(PORTS)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def free_port_in(low: int, high: int) -> int:
    """A free loopback port in [low, high] (for tests told to keep to a range)."""
    for port in random.sample(range(low, high + 1), high - low + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, seconds: float, output: Callable[[], str]
) -> None:
    """Poll ``url/readyz`` until 200; fail with the process's ``output`` if it exits first."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, output()
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready after {seconds} s"
        time.sleep(0.05)


@contextmanager
def live_server(
    model_dir: Path,
    command: list[str] | None = None,
    output: list[str] | None = None,
    *,
    port: int | None = None,
    **env: str,
) -> Iterator[str]:
    """Serve ``model_dir`` (``env``: more ``AESERVE_*`` settings) on ``port`` (default: a free
    one); yields the base URL once ``/readyz`` answers 200. On exit the server must stop
    cleanly, without a traceback.

    ``command``: the server to run instead of ``python -m service`` (``--host`` and ``--port``
    are appended); ``output``: gets what the server printed, once it has stopped."""
    port = port if port is not None else free_port()
    environ = {
        **os.environ,
        "AESERVE_MODEL_DIR": str(model_dir),
        "AESERVE_LOG_LEVEL": "warning",
        "AESERVE_GRPC_PORT": "0",  # no gRPC unless a test asks for it (on a port of PORTS)
        **env,
    }
    proc = subprocess.Popen(
        [
            *(command or [sys.executable, "-m", "service"]),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, 30, lambda: proc.communicate()[0].decode())
        yield url
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0].decode()
        if output is not None:
            output.append(out)
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells.
        assert proc.returncode in (0, -15), out
        assert "Traceback" not in out, out
