"""A bounded load generator for the stack tests: threads posting one body through nginx.

Every client holds its own keep-alive connection to 127.0.0.1 (loopback only) and sends until it
is stopped, the whole load has sent ``max_requests`` or ``max_seconds`` have passed, whichever
comes first. Any answer but 200, and any connection error, is a failure.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadReport:
    sent: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": len(self.failures),
            "seconds": round(self.seconds, 1),
            "requests_per_s": round(self.rate, 1),
            "versions": dict(self.versions),
        }


class Load:
    """``with Load(port, path, body) as load: ...; report = load.report``."""

    def __init__(
        self,
        port: int,
        path: str,
        body: bytes,
        *,
        clients: int = 4,
        max_requests: int = 20_000,
        max_seconds: float = 180.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.port, self.path, self.body = port, path, body
        self.clients = clients
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self.report.seconds = time.monotonic() - self._started
        return self.report

    def _take_one(self) -> bool:
        with self._lock:
            if self.report.sent >= self.max_requests:
                return False
            self.report.sent += 1
            return True

    def _record(self, version: str | None, failure: str | None) -> None:
        with self._lock:
            if failure is None:
                self.report.ok += 1
                self.report.versions[str(version)] += 1
            else:
                self.report.failures.append(failure)

    def _client(self) -> None:
        deadline = self._started + self.max_seconds
        headers = self.headers
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self._stop.is_set() and time.monotonic() < deadline and self._take_one():
                try:
                    conn.request("POST", self.path, self.body, headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._record(None, f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    continue
                if response.status == 200:
                    self._record(json.loads(data).get("version"), None)
                else:
                    self._record(None, f"{response.status}: {data[:300]!r}")
        finally:
            conn.close()
