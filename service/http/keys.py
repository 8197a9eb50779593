"""API keys: a request hook (``policy.py``) that every request passes, on every path.

Keys come from ``AESERVE_API_KEYS`` (``key:scope`` pairs) and ``AESERVE_API_KEYS_FILE`` (one
``scope sha256-hex`` per line, so the file holds no secret). Only SHA-256 digests are kept; a
presented key is hashed and compared with every digest in constant time. Scopes: ``infer``
(inference and model information) and ``admin`` (loading and unloading models; an admin key
may also infer). Health, the docs and the web app stay open; ``/metrics`` follows a setting.
No key is ever logged or counted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

from service.http.policy import RequestHead
from service.runtime.errors import Forbidden, Unauthenticated
from service.settings import read_keys_file

INFER = "infer"
ADMIN = "admin"
_BEARER = b"bearer "


class MissingKey(Unauthenticated):
    """No key, or an unknown one: 401 with ``WWW-Authenticate``."""

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="aeserve"'}


def digest(key: str | bytes) -> bytes:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


class ApiKeys:
    """The configured keys (as digests) and the hook that checks them."""

    def __init__(self, entries: Iterable[tuple[bytes, str]], *, metrics_need_key: bool) -> None:
        self.entries = [(d, scope) for d, scope in entries]
        self.metrics_need_key = metrics_need_key

    @classmethod
    def configured(
        cls, pairs: list[str], file: Path | None, *, metrics_need_key: bool = False
    ) -> ApiKeys | None:
        """The keys of the settings, or None when none is configured (keys off)."""
        entries = []
        for pair in pairs:
            key, _, scope = pair.rpartition(":")
            entries.append((digest(key), scope))
        if file is not None:
            entries.extend(read_keys_file(file))
        return cls(entries, metrics_need_key=metrics_need_key) if entries else None

    @property
    def admin(self) -> bool:
        """An admin key exists (the model-control endpoints are on)."""
        return any(scope == ADMIN for _, scope in self.entries)

    def scopes(self, key: bytes) -> set[str]:
        """The scopes of a presented key (empty: unknown). Every digest is compared, in
        constant time each, whether or not one matched already."""
        presented = digest(key)
        found: set[str] = set()
        for stored, scope in self.entries:
            if hmac.compare_digest(stored, presented):
                found.add(scope)
        if ADMIN in found:
            found.add(INFER)
        return found

    def __call__(self, head: RequestHead) -> None:
        needed = scope_of(head.method, head.path, metrics=self.metrics_need_key)
        if needed is None:
            return
        key = presented(head)
        if key is None:
            raise MissingKey(
                "this server needs an API key: send 'Authorization: Bearer KEY' (or X-API-Key)"
            )
        scopes = self.scopes(key)
        if not scopes:
            raise MissingKey("the API key is not valid")
        if needed not in scopes:
            raise Forbidden(f"the API key does not have the '{needed}' scope")


def presented(head: RequestHead) -> bytes | None:
    """The key a request presents: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = head.header(b"authorization")
    if auth is not None and auth[:7].lower() == _BEARER:
        return auth[7:].strip() or None
    key = head.header(b"x-api-key")
    return key.strip() or None if key is not None else None


_OPEN = ("/healthz", "/readyz", "/v2/health/", "/docs", "/redoc", "/openapi.json")
# The gRPC twins of /v2/health/live and /v2/health/ready: orchestrators and load balancers
# probe them without a key, as they do the HTTP ones.
_OPEN_GRPC = (
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
)


def scope_of(method: str, path: str, *, metrics: bool) -> str | None:
    """The scope a request needs, or None (open): model control needs ``admin``; inference,
    model information and the v2 protocol need ``infer``; health (gRPC's ServerLive and
    ServerReady too), docs, the web app and (by default) the metrics are open."""
    if path.startswith("/v2/repository/models/") and path.endswith(("/load", "/unload")):
        return ADMIN
    if path == "/metrics":
        return INFER if metrics else None
    if path.startswith(_OPEN) or path == "/v2/health" or path in _OPEN_GRPC:
        return None
    if method == "POST" or path.startswith(("/models", "/v2")):
        return INFER
    return None
