"""Debian's chromium under Playwright, for the browser tests and the README's screenshots.

Playwright's own browser downloads are not reachable here, so it drives the system chromium by
path (``scripts/sysdeps.sh`` installs it). Every page gets a guard: a request to any origin but
the server's is aborted and recorded, and console errors and page errors are recorded, so a
test can assert that a page needed nothing from outside and logged no error.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> Path | None:
    found = shutil.which("chromium")
    return Path(found) if found else (CHROMIUM if CHROMIUM.exists() else None)


@dataclass
class Guard:
    """What a page did that it should not have: other origins asked for, errors logged."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def console(msg: ConsoleMessage) -> None:
            # Chromium drops requests in flight when the machine's network interfaces change
            # (containers started by other jobs): not the page's doing; the app retries its GETs.
            if msg.type == "error" and "net::ERR_NETWORK_CHANGED" not in msg.text:
                self.errors.append(f"console: {msg.text}")

        page.on("console", console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

        def abort(r: Route) -> None:
            self.foreign.append(r.request.url)
            r.abort()

        # Only requests to other origins are routed (the pattern is matched in the browser):
        # routing the page's own requests would hold each one until Python next talks to the
        # browser, and slow the page down under test.
        page.route(re.compile(rf"^(?!{re.escape(self.origin)}/|data:|blob:)"), abort)

    def check(self) -> None:
        assert not self.foreign, f"requests to other origins: {self.foreign}"
        assert not self.errors, "\n".join(self.errors)


@contextmanager
def browser() -> Iterator[Browser]:
    path = chromium_path()
    assert path is not None, "chromium is not installed (make sysdeps)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(path), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def guarded_page(
    b: Browser, origin: str, width: int = 1280, height: int = 900
) -> Iterator[tuple[Page, Guard]]:
    context = b.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    guard = Guard(origin)
    guard.attach(page)
    try:
        yield page, guard
    finally:
        context.close()
