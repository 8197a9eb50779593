"""One live server over the shipped zoo (``models/``) and one chromium for the browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.live_server import REPO, free_port_in, live_server
from tests.web.browser import browser

# Loopback ports this suite may use (shared machines: each suite keeps to its own range);
# AESERVE_TEST_WEB_PORTS=LOW-HIGH moves it.
_low, _, _high = os.environ.get("AESERVE_TEST_WEB_PORTS", "19000-19999").partition("-")
PORTS = (int(_low), int(_high))


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    with live_server(
        REPO / "models", port=free_port_in(*PORTS), AESERVE_DEFAULT_MODEL="font"
    ) as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with browser() as b:
        yield b
