"""Fixtures for the deployment tests: a tiny model repository, and processes on loopback.

Every process is started on 127.0.0.1 on a free port, waited for with a deadline, and stopped by
a finalizer whatever the test did.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.runtime.manifest import (
    Calibration,
    Files,
    InputSpec,
    LatentSpec,
    Manifest,
    Prior,
    ScoreSpec,
    TrainingInfo,
    content_version,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
HEALTHCHECK = DOCKER / "healthcheck.py"
TINY_MODEL = "tiny"
TINY_FEATURES = 4
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client(timeout: float = 10.0) -> httpx.Client:
    # trust_env=False: a proxy set in the environment must never see loopback test traffic.
    return httpx.Client(timeout=timeout, trust_env=False)


def _save_linear(path: Path, name_in: str, name_out: str, weight: np.ndarray) -> None:
    """A one-MatMul ONNX graph: name_in [N, rows] -> name_out [N, cols], dynamic batch axis."""
    from onnx import TensorProto, helper, numpy_helper, save_model

    rows, cols = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", [name_in, "w"], [name_out])],
        "linear",
        [helper.make_tensor_value_info(name_in, TensorProto.FLOAT, ["N", rows])],
        [helper.make_tensor_value_info(name_out, TensorProto.FLOAT, ["N", cols])],
        initializer=[numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save_model(model, str(path))


def make_tiny_model(repo: Path, name: str = TINY_MODEL) -> Path:
    """A tabular plain autoencoder of 4 features and a 2-d latent, built without torch."""
    model_dir = repo / name
    model_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(TINY_FEATURES, 2)).astype(np.float32)
    _save_linear(model_dir / "encoder.onnx", "x", "z", w)
    _save_linear(model_dir / "decoder.onnx", "z", "x_hat", w.T)
    features = [f"f{i}" for i in range(TINY_FEATURES)]
    files = Files.hash(model_dir)
    manifest = Manifest(
        name=name,
        version=content_version(files.encoder.sha256, files.decoder.sha256),  # checked at load
        created_at=datetime.now(UTC).isoformat(),
        family="ae",
        input=InputSpec(kind="tabular", shape=[TINY_FEATURES], range=None, features=features),
        latent=LatentSpec(
            dim=2, prior=Prior(kind="empirical", mean=[0.0, 0.0], cov=[[1.0, 0.0], [0.0, 1.0]])
        ),
        files=files,
        score=ScoreSpec(
            kind="mse",
            calibration=Calibration(
                levels=[0.0, 0.5, 1.0], values=[0.0, 1.0, 2.0], n=3, split="test fixture"
            ),
            threshold=1.5,
            threshold_rule="quantile:0.75",
        ),
        training=TrainingInfo(
            dataset="none (deploy test fixture)",
            seed=0,
            epochs=0,
            duration_s=0.0,
            architecture={"kind": "linear"},
            command="tests/deploy/conftest.py",
        ),
    )
    manifest.write(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("models")
    make_tiny_model(repo)
    return repo


@dataclass
class Proc:
    """A started process, where its output goes, and the port it serves."""

    popen: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)  # its own session: workers included
                self.popen.wait(5)


def wait_http(proc: Proc, path: str, timeout: float = START_TIMEOUT_S) -> None:
    """Poll ``path`` until it answers 200; fail with the process's output otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                pytest.fail(f"process exited with {proc.popen.returncode}:\n{proc.output()}")
            try:
                response = http.get(proc.url + path)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.1)
    pytest.fail(f"{path} not 200 after {timeout:.0f}s (last: {last}):\n{proc.output()}")


def service_env(model_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The container's environment (Dockerfile ENV), pointed at loopback and a test repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AESERVE_")}
    # The image puts its venv first on PATH; here the venv is the one running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        AESERVE_MODEL_DIR=str(model_dir),
        AESERVE_HOST="127.0.0.1",
        AESERVE_PORT=str(port),
        AESERVE_WORKERS="1",
        AESERVE_LOG_LEVEL="warning",
        AESERVE_GRPC_PORT="0",  # gRPC (default 8001) off: several services run side by side
    )
    env.update(extra)
    return env


StartService = Callable[..., Proc]


@pytest.fixture
def start_service(model_repo: Path, tmp_path: Path) -> Iterator[StartService]:
    """Run the container command (docker/entrypoint.sh) outside a container, wait for /readyz."""
    started: list[Proc] = []

    def start(
        *args: str, env: Mapping[str, str] | None = None, port: int | None = None, wait: bool = True
    ) -> Proc:
        """``args`` go to the entrypoint; ``port``: where it listens when ``args`` say so."""
        environ = service_env(model_repo, free_port(), **dict(env or {}))
        port = port or int(environ["AESERVE_PORT"])
        log = tmp_path / f"service-{len(started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                ["/bin/sh", str(ENTRYPOINT), *args],
                cwd=tmp_path,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(popen, log, port)
        started.append(proc)
        if wait:
            wait_http(proc, "/readyz")
        return proc

    yield start
    for proc in started:
        proc.stop()
