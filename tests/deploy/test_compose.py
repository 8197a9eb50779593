"""Static checks of docker/compose.yaml, validated with Debian's docker-compose (no engine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import Settings, read_keys_file
from tests.deploy.conftest import DOCKER, ROOT
from tests.deploy.dockerfile import parse

COMPOSE_FILE = DOCKER / "compose.yaml"
NGINX_CONF = DOCKER / "nginx" / "nginx.conf"
LONG_RUNNING = ("aeserve", "nginx", "prometheus")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def defaulted(value: str) -> str:
    """``${VAR:-default}`` -> default (what compose uses when the operator sets nothing)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def short_volumes(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of a service's short-syntax volumes, defaults applied."""
    out = []
    for spec in service.get("volumes", []):
        parts = defaulted(spec).split(":")
        out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


def test_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"aeserve", "nginx", "prometheus", "train"}
    assert services["train"]["profiles"] == ["train"]
    for name in LONG_RUNNING:
        assert "profiles" not in services[name], f"{name} must start with a plain `up`"
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", compose["name"])


def test_only_the_load_balancer_is_published(compose: dict[str, Any]) -> None:
    published = {n for n, s in compose["services"].items() if s.get("ports")}
    assert published == {"nginx"}
    http, grpc = compose["services"]["nginx"]["ports"]
    listens = re.findall(r"^\s*listen\s+(\d+);", NGINX_CONF.read_text(), flags=re.M)
    assert listens == [defaulted(http).split(":")[-1]]
    grpc_listens = re.findall(r"^\s*listen\s+(\d+) http2;", NGINX_CONF.read_text(), flags=re.M)
    assert grpc_listens == [defaulted(grpc).split(":")[-1]]


def test_upstreams_agree_with_the_service(compose: dict[str, Any]) -> None:
    aeserve = compose["services"]["aeserve"]
    port = aeserve["environment"]["AESERVE_PORT"]
    grpc_port = aeserve["environment"]["AESERVE_GRPC_PORT"]
    assert grpc_port == str(Settings.model_fields["grpc_port"].default)
    assert aeserve["expose"] == [port, grpc_port]
    runtime = parse(ROOT / "Dockerfile").stage("runtime")
    assert runtime.last("EXPOSE").args.split() == [port, grpc_port]  # type: ignore[union-attr]
    for name, target, pass_line in [
        ("aeserve", port, "proxy_pass http://aeserve;"),
        ("aeserve_grpc", grpc_port, "grpc_pass grpc://aeserve_grpc;"),
    ]:
        upstream = re.search(rf"upstream {name} \{{(.*?)\}}", NGINX_CONF.read_text(), flags=re.S)
        assert upstream, name
        servers = re.findall(r"^\s*server\s+(\S+)", upstream.group(1), flags=re.M)
        # One entry naming the compose service, which Docker's DNS resolves to every replica.
        assert servers == [f"aeserve:{target}"]
        assert pass_line in NGINX_CONF.read_text()
    assert re.search(r"^\s*resolver 127\.0\.0\.11\b", NGINX_CONF.read_text(), flags=re.M)
    prom = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "aeserve")
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["aeserve"] and str(sd["port"]) == port
    assert job["metrics_path"] == "/metrics"


def test_referenced_files_exist(compose: dict[str, Any]) -> None:
    stages = {s.name for s in parse(ROOT / "Dockerfile").stages}
    for name, service in compose["services"].items():
        if "build" in service:
            context = (DOCKER / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).is_file()
            assert service["build"]["target"] in stages
        for source, target, _ in short_volumes(service):
            if source.startswith((".", "/")):
                assert (DOCKER / source).is_file(), f"{name}: {source} -> {target} is missing"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    assert compose["services"]["aeserve"]["build"]["target"] == "runtime"
    assert compose["services"]["train"]["build"]["target"] == "train"


def test_hardening_limits_and_restarts(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        service = compose["services"][name]
        assert service["restart"] in ("unless-stopped", "always"), name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[mg]", limits["memory"]), name
        assert service["healthcheck"]["test"][0] == "CMD", name
    for name in ("aeserve", "nginx"):  # both write only under /tmp (nginx.conf's temp paths)
        assert any(t.startswith("/tmp:") for t in compose["services"][name]["tmpfs"]), name
    temp_paths = re.findall(r"^\s*(?:pid|\w+_temp_path)\s+(\S+);", NGINX_CONF.read_text(), re.M)
    assert len(temp_paths) == 6 and all(p.startswith("/tmp/") for p in temp_paths)


def test_health_checks_gate_traffic(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["nginx"]["depends_on"] == {"aeserve": {"condition": "service_healthy"}}
    runtime = parse(ROOT / "Dockerfile").stage("runtime")
    image_check = runtime.last("HEALTHCHECK").args  # type: ignore[union-attr]
    # The compose health check runs the same script as the image's HEALTHCHECK.
    assert services["aeserve"]["healthcheck"]["test"][1:] == re.findall(r'"([^"]+)"', image_check)
    nginx_probe = services["nginx"]["healthcheck"]["test"][-1]
    path = re.sub(r"^http://[^/]+", "", nginx_probe)
    assert re.search(rf"location = {re.escape(path)} \{{", NGINX_CONF.read_text())


def test_replicas_scale_by_name(compose: dict[str, Any]) -> None:
    aeserve = compose["services"]["aeserve"]
    assert int(defaulted(str(aeserve["deploy"]["replicas"]))) >= 2
    # Scaling needs unnamed containers and no fixed host port.
    assert "container_name" not in aeserve and "ports" not in aeserve


def test_models_from_the_image_or_a_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["aeserve"]["environment"]
    runtime_env = parse(ROOT / "Dockerfile").stage("runtime").env()
    assert defaulted(env["AESERVE_MODEL_DIR"]) == runtime_env["AESERVE_MODEL_DIR"]
    (serve_mount,) = short_volumes(services["aeserve"])
    (train_mount,) = short_volumes(services["train"])
    assert serve_mount[0] == train_mount[0] and serve_mount[1] == train_mount[1] == "/models"
    assert serve_mount[2] == "ro" and train_mount[2] == "rw"
    assert "${AESERVE_MODELS:-" in services["aeserve"]["volumes"][0]  # operator's choice
    command = services["train"]["command"]
    assert command[command.index("--out") + 1] == "/models"


def test_compose_environment_names_real_settings(compose: dict[str, Any]) -> None:
    fields = {f"AESERVE_{name.upper()}" for name in Settings.model_fields}
    env = compose["services"]["aeserve"]["environment"]
    unknown = set(env) - fields
    assert not unknown, f"compose sets variables the service does not read: {unknown}"
    # Unset values pass through; an empty string would be an invalid setting.
    assert all(v is None or defaulted(str(v)) != "" for v in env.values()), env


def docker_compose(*args: str, env: dict[str, str] | None = None, cwd: Path) -> str:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose missing: `make sysdeps` installs Debian's docker-compose"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AESERVE_", "COMPOSE_"))}
    environ.update(env or {})
    result = subprocess.run(
        [exe, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def v1_compose_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compose file for Debian's docker-compose 1.29, whose schema predates the top-level
    ``name`` (the project name is passed with -p instead); everything else is validated as is."""
    text = COMPOSE_FILE.read_text()
    stripped = re.sub(r"^name: .*\n", "", text, count=1, flags=re.M)
    assert stripped != text
    path = tmp_path_factory.mktemp("compose") / "compose.yaml"
    path.write_text(stripped)
    return path


def compose_config(v1_file: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    out = docker_compose(
        "-p", "aeserve", "--project-directory", str(DOCKER), "-f", str(v1_file), *args,
        env=env, cwd=DOCKER,
    )  # fmt: skip
    return yaml.safe_load(out) if out.strip() and "--services" not in args else out


def resolved_volumes(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of a volume list as docker-compose 1.29 prints it."""
    out = []
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        out.append((source, target, mode[0] if mode else "rw"))
    return out


def test_api_keys_come_from_a_secret_file(compose: dict[str, Any]) -> None:
    """The keys file is a compose secret (mounted read-only under /run/secrets), the service
    reads it as AESERVE_API_KEYS_FILE, and the shipped default is a valid keys file that
    holds no key (so holds no secret either)."""
    aeserve = compose["services"]["aeserve"]
    assert aeserve["secrets"] == ["api_keys"]
    assert aeserve["environment"]["AESERVE_API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert "AESERVE_API_KEYS" not in aeserve["environment"]  # no keys in the environment
    source = compose["secrets"]["api_keys"]["file"]
    assert source.startswith("${AESERVE_API_KEYS_SECRET:-")
    default = DOCKER / defaulted(source)
    assert read_keys_file(default) == []
    assert not any(s.get("secrets") for n, s in compose["services"].items() if n != "aeserve")


def test_docker_compose_validates_the_file(v1_compose_file: Path) -> None:
    config = compose_config(v1_compose_file, "config")
    services = config["services"]
    assert set(services) == {*LONG_RUNNING, "train"}
    assert services["train"]["profiles"] == ["train"]  # 1.29 prints profiled services too
    assert services["aeserve"]["deploy"]["replicas"] == 3
    assert services["aeserve"]["build"]["context"] == str(ROOT)
    # Relative bind mounts resolved against docker/ and pointing at real files.
    binds = [v for n in ("nginx", "prometheus") for v in resolved_volumes(services[n])]
    assert len([b for b in binds if b[0].startswith("/")]) == 3
    for source, target, mode in binds:
        if source.startswith("/"):
            assert Path(source).is_file() and mode == "ro", (source, target)
    assert resolved_volumes(services["aeserve"]) == [("models", "/models", "ro")]
    # Unset by the operator: no value (passed through, so unset in the container), not "".
    assert services["aeserve"]["environment"]["AESERVE_DEFAULT_MODEL"] is None


def test_docker_compose_applies_operator_settings(v1_compose_file: Path) -> None:
    env = {
        "AESERVE_REPLICAS": "5",
        "AESERVE_MODELS": "/srv/aeserve-models",
        "AESERVE_MODEL_DIR": "/models",
        "AESERVE_DEFAULT_MODEL": "font-2d",
        "AESERVE_HTTP_PORT": "9000",
        "AESERVE_LB_GRPC_PORT": "9001",
        "AESERVE_API_KEYS_SECRET": "/srv/aeserve-keys.txt",
    }
    config = compose_config(v1_compose_file, "--profile", "train", "config", env=env)
    services = config["services"]
    aeserve = services["aeserve"]
    assert aeserve["deploy"]["replicas"] == 5
    assert aeserve["environment"]["AESERVE_MODEL_DIR"] == "/models"
    assert aeserve["environment"]["AESERVE_DEFAULT_MODEL"] == "font-2d"
    assert resolved_volumes(aeserve) == [("/srv/aeserve-models", "/models", "ro")]
    assert resolved_volumes(services["train"]) == [("/srv/aeserve-models", "/models", "rw")]
    ports = {(int(p["published"]), int(p["target"])) for p in services["nginx"]["ports"]}
    assert ports == {(9000, 8080), (9001, 8001)}
    assert config["secrets"]["api_keys"]["file"] == "/srv/aeserve-keys.txt"
