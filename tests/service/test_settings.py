"""Settings: AESERVE_* environment, validation that names the setting, the CLI's exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import ConfigError, Settings, load_settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, zoo_dir: Path) -> None:
    monkeypatch.setenv("AESERVE_MODEL_DIR", str(zoo_dir))
    monkeypatch.setenv("AESERVE_PORT", "9001")
    monkeypatch.setenv("AESERVE_MAX_BATCH", "7")
    monkeypatch.setenv("AESERVE_DEFAULT_MODEL", "table")
    monkeypatch.setenv("AESERVE_CORS_ORIGINS", "http://a.example, http://b.example")
    s = load_settings()
    assert (s.model_dir, s.port, s.max_batch, s.default_model) == (zoo_dir, 9001, 7, "table")
    assert s.cors_origins == ["http://a.example", "http://b.example"]
    assert (s.host, s.workers, s.log_level) == ("0.0.0.0", 1, "info")
    monkeypatch.setenv("AESERVE_CORS_ORIGINS", '["*"]')
    assert load_settings().cors_origins == ["*"]


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("AESERVE_PORT", "70000", "AESERVE_PORT"),
        ("AESERVE_PORT", "http", "AESERVE_PORT"),
        ("AESERVE_MAX_BATCH", "0", "AESERVE_MAX_BATCH"),
        ("AESERVE_LOG_LEVEL", "loud", "AESERVE_LOG_LEVEL"),
        ("AESERVE_ONNX_INTRA_OP_THREADS", "-1", "AESERVE_ONNX_INTRA_OP_THREADS"),
        ("AESERVE_MODEL_DIR", "/does/not/exist", "does not exist"),
        ("AESERVE_DEFAULT_MODEL", "missing", "AESERVE_DEFAULT_MODEL='missing'"),
        ("AESERVE_DEFAULT_MODEL", "Bad Name", "AESERVE_DEFAULT_MODEL"),
    ],
)
def test_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, zoo_dir: Path, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv("AESERVE_MODEL_DIR", str(zoo_dir))
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match="invalid setting") as info:
        load_settings()
    assert needle in str(info.value)


def test_cli_refuses_to_start_on_a_bad_setting(tmp_path: Path) -> None:
    env = {"AESERVE_MODEL_DIR": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "service", "--port", "8999"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "AESERVE_MODEL_DIR" in proc.stderr and "does not exist" in proc.stderr


def test_settings_object_is_validated_directly(zoo_dir: Path) -> None:
    assert Settings(model_dir=zoo_dir, max_samples=3).max_samples == 3
