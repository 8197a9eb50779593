"""Structured logs (service/logs.py) and the access log's fields."""

from __future__ import annotations

import json
import logging

import pytest

from service.__main__ import log_config
from service.logs import JsonFormatter
from tests.service.conftest import ClientFactory, glyphs


def test_json_lines_carry_the_access_log_fields(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="service.access"),
        make_client(access_log=True) as client,
    ):
        r = client.post(
            "/reconstruct",
            json={"inputs": glyphs(1).tolist()},
            headers={"x-request-id": "abc-123"},
        )
        assert r.status_code == 200
    (record,) = [
        r for r in caplog.records if r.name == "service.access" and r.path == "/reconstruct"
    ]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "abc-123" and line["status"] == 200
    assert line["model"] == "glyph" and line["version"].startswith("1.0.0-test+")
    assert line["method"] == "POST" and line["ms"] > 0 and line["level"] == "info"
    assert "model=glyph version=1.0.0-test+" in line["message"]


def test_log_format_json_swaps_uvicorns_formatters() -> None:
    config = log_config("info", "json")
    assert config["formatters"]["default"] == {"()": "service.logs.JsonFormatter"}
    assert log_config("info")["formatters"]["default"]["()"] == "uvicorn.logging.DefaultFormatter"
