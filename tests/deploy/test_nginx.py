"""The load balancer for real: Debian's nginx with docker/nginx/nginx.conf (ports substituted)
in front of two service processes started with the container's command, all on loopback."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import DOCKER, Proc, StartService, client, free_port, wait_http

NGINX_CONF = DOCKER / "nginx" / "nginx.conf"
UPSTREAM_LINE = re.compile(r"^(\s*)server aeserve:8000 resolve( [^;]*)?;$", flags=re.M)
GRPC_UPSTREAM_LINE = re.compile(r"^(\s*)server aeserve:8001 resolve( [^;]*)?;$", flags=re.M)
ROW = [[0.1, 0.2, 0.3, 0.4]]


def render(
    conf: str, *, listen: int, upstreams: list[int], prefix: Path, grpc_listen: int = 0
) -> str:
    """The compose config for a loopback run: listen ports, replica addresses, /tmp/ prefix.
    The gRPC server listens on ``grpc_listen`` (a free port unless given) in front of the
    replicas' gRPC ports, taken to be their HTTP ports plus one.

    Each substitution must hit exactly once, so a config that drifts from what the test knows
    fails here rather than being half rendered.
    """
    out, n = re.subn(r"^(\s*)listen 8080;$", rf"\1listen 127.0.0.1:{listen};", conf, flags=re.M)
    assert n == 1, "expected one `listen 8080;`"

    def servers(m: re.Match[str]) -> str:
        # Debian's nginx predates `resolve`; loopback addresses need no DNS anyway.
        params = m.group(2) or ""
        return "\n".join(f"{m.group(1)}server 127.0.0.1:{p}{params};" for p in upstreams)

    out, n = UPSTREAM_LINE.subn(servers, out)
    assert n == 1, "expected one `server aeserve:8000 resolve ...;` in upstream aeserve"
    out, n = re.subn(
        r"^(\s*)listen 8001 http2;$",
        rf"\1listen 127.0.0.1:{grpc_listen or free_port()} http2;",
        out,
        flags=re.M,
    )
    assert n == 1, "expected one `listen 8001 http2;`"

    def grpc_servers(m: re.Match[str]) -> str:
        params = m.group(2) or ""
        return "\n".join(f"{m.group(1)}server 127.0.0.1:{p + 1}{params};" for p in upstreams)

    out, n = GRPC_UPSTREAM_LINE.subn(grpc_servers, out)
    assert n == 1, "expected one `server aeserve:8001 resolve ...;` in upstream aeserve_grpc"
    out, n = re.subn(r"^(\s*(?:pid|\w+_temp_path)\s+)/tmp/", rf"\g<1>{prefix}/", out, flags=re.M)
    assert n == 6, "expected pid and five temp paths under /tmp/"
    return out


def test_render_substitutes_ports_and_paths() -> None:
    prefix = Path("/srv/run")
    text = render(
        NGINX_CONF.read_text(), listen=1234, upstreams=[11, 22], prefix=prefix, grpc_listen=1235
    )
    assert "listen 127.0.0.1:1234;" in text
    assert "listen 127.0.0.1:1235 http2;" in text
    assert "server 127.0.0.1:12 max_fails=2 fail_timeout=5s;" in text
    assert "aeserve:8001" not in text
    assert "server 127.0.0.1:11 max_fails=2 fail_timeout=5s;" in text
    assert "server 127.0.0.1:22 max_fails=2 fail_timeout=5s;" in text
    assert "aeserve:8000" not in text
    assert f"pid {prefix}/nginx.pid;" in text
    assert not re.search(r"^\s*[^#\s].*/tmp/", text, flags=re.M)


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[Callable[[list[int]], Proc]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx missing: `make sysdeps` installs Debian's nginx"
    started: list[Proc] = []

    def start(upstreams: list[int]) -> Proc:
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            render(NGINX_CONF.read_text(), listen=port, upstreams=upstreams, prefix=prefix)
        )
        # As root (CI), keep the workers root too: they write temp files under tmp_path,
        # which other users cannot reach. The container image runs all of nginx unprivileged.
        directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        command = [nginx, "-e", "stderr", "-p", str(prefix), "-c", str(conf), "-g", directives]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        log = prefix / "access.log"  # stdout: the JSON access log
        with log.open("wb") as out, (prefix / "error.log").open("wb") as err:
            popen = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True)
        proc = Proc(popen, log, port)
        started.append(proc)
        wait_http(proc, "/_lb/healthz", timeout=20)
        return proc

    yield start
    for proc in started:
        proc.stop()


def access_log(proc: Proc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.output().splitlines() if line.strip()]


def test_requests_spread_over_replicas_and_survive_one_stopping(
    start_service: StartService, start_nginx: Callable[[list[int]], Proc]
) -> None:
    replicas = [start_service(), start_service()]
    lb = start_nginx([r.port for r in replicas])
    addresses = {f"127.0.0.1:{r.port}" for r in replicas}

    with client() as http:
        for _ in range(12):
            response = http.post(lb.url + "/reconstruct", json={"inputs": ROW})
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"]
        answered = {e["upstream_addr"] for e in access_log(lb) if e["uri"] == "/reconstruct"}
        assert answered == addresses, "both replicas should have answered"

        replicas[0].stop()
        before = len(access_log(lb))
        for _ in range(12):
            response = http.post(lb.url + "/reconstruct", json={"inputs": ROW})
            assert response.status_code == 200, response.text
            assert http.get(lb.url + "/readyz").status_code == 200
        entries = access_log(lb)[before:]
        # Every answer came from the survivor (a request nginx first tried on the stopped
        # replica shows both addresses and was retried).
        survivor = f"127.0.0.1:{replicas[1].port}"
        assert len(entries) == 24
        assert all(e["status"] == 200 and e["upstream_addr"].endswith(survivor) for e in entries)

        replicas[1].stop()
        response = http.post(lb.url + "/reconstruct", json={"inputs": ROW})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    assert response.json()["status"] == 503


def test_service_errors_pass_through_and_metrics_stay_inside(
    start_service: StartService, start_nginx: Callable[[list[int]], Proc]
) -> None:
    replica = start_service()
    lb = start_nginx([replica.port])
    with client() as http:
        # The service's own problem+json (here: a wrong shape) reaches the client untouched.
        direct = http.post(replica.url + "/reconstruct", json={"inputs": [[1.0, 2.0]]})
        proxied = http.post(lb.url + "/reconstruct", json={"inputs": [[1.0, 2.0]]})
        assert direct.status_code == proxied.status_code == 422
        assert proxied.headers["content-type"] == "application/problem+json"
        assert proxied.json()["detail"] == direct.json()["detail"]
        # /metrics is for Prometheus on the internal network only.
        assert http.get(replica.url + "/metrics").status_code == 200
        blocked = http.get(lb.url + "/metrics")
    assert blocked.status_code == 404
    assert blocked.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_refused_by_nginx_as_problem_json(
    start_service: StartService, start_nginx: Callable[[list[int]], Proc]
) -> None:
    replica = start_service()
    lb = start_nginx([replica.port])
    # Announce 30 MB (over client_max_body_size 20m) and send none: nginx answers at once.
    with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as sock:
        sock.sendall(
            b"POST /reconstruct HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 30000000\r\n\r\n"
        )
        head, _, body = sock.recv(65536).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["status"] == 413
