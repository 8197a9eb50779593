"""Connection limits against slow, greedy and hostile clients (``AESERVE_*`` settings).

The protocol ``python -m service`` runs (:class:`service.http.express.ExpressProtocol`) enforces
them for every request, whichever path answers it: a head must arrive within
``header_timeout_s`` and stay within ``max_header_bytes`` (431), a body within
``body_timeout_s`` (408), an idle connection is closed after ``keep_alive_s``, and beyond
``max_connections`` open connections a new one gets 503 with Retry-After and is closed. Served
another way (``uvicorn --factory``), uvicorn's own options apply instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.settings import Settings


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may take (see the module docstring)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 4096

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
        )
