"""Errors: the service's problem+json answers, and giving up on the network."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A 4xx/5xx answer (RFC 9457 problem+json): ``status``, ``detail`` (what to fix),
    ``request_id`` (quote it when reporting), the whole ``problem`` document."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.problem = problem or {}
        self.request_id: str | None = self.problem.get("request_id")


class TransportError(Exception):
    """The service could not be reached (after the retries)."""
