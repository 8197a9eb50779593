"""Domain errors: plain exceptions that carry an HTTP-neutral ``kind`` and a ``detail``.

The runtime, the codecs and the data plane raise these without knowing any protocol; the HTTP
layer maps each kind to a status once (``service/http/problems.py``), and so will any other
transport (the v2 protocol, gRPC).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Kind = Literal[
    "malformed",  # the request cannot be read (a body that is not JSON, a broken upload)
    "not_found",  # no such model (or file of a model)
    "too_large",  # the body is over the size limit
    "media_type",  # a content type the endpoint does not take
    "invalid",  # well-formed but unusable values: shape, range, non-finite, limits
    "unsupported",  # the model cannot do what was asked
    "unavailable",  # not ready, shutting down or overloaded: retry later
    "unauthenticated",  # no valid credentials
    "forbidden",  # credentials without the right to do this
]


class ServiceError(Exception):
    """A client-facing error: its ``kind`` and a ``detail`` that says what to fix.

    ``retry_after`` (seconds) tells the client when to try again; ``extra`` adds structured
    fields to the answer (e.g. the list of invalid fields).
    """

    kind: Kind = "invalid"

    def __init__(self, detail: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.extra = extra

    @property
    def headers(self) -> Mapping[str, str]:
        """Protocol-neutral hints as HTTP header values (Retry-After)."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class BadRequest(ServiceError):
    """Malformed request, e.g. a body that is not JSON."""

    kind = "malformed"


class ModelNotFound(ServiceError):
    """The named model is not loaded."""

    kind = "not_found"


class PayloadTooLarge(ServiceError):
    kind = "too_large"


class UnsupportedMediaType(ServiceError):
    kind = "media_type"


class InvalidInput(ServiceError):
    """Well-formed but unusable: wrong shape, non-finite numbers, out-of-range values, ..."""

    kind = "invalid"


class UnsupportedOperation(ServiceError):
    """The model cannot do what was asked (e.g. ``/denoise`` on a model that is no denoiser)."""

    kind = "unsupported"


class NotReady(ServiceError):
    """Models are still loading (or none loaded), or the service is shutting down."""

    kind = "unavailable"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, retry_after=1, **extra)


class Overloaded(NotReady):
    """A model's queue is full; the client should retry later."""


class Unauthenticated(ServiceError):
    """The request carries no valid credentials (a request hook refuses it)."""

    kind = "unauthenticated"


class Forbidden(ServiceError):
    """The credentials do not allow this request."""

    kind = "forbidden"


class ModelLoadError(Exception):
    """A model directory could not be served; the message is the reason shown in ``/models``."""


ECHO_LIMIT = 64  # characters of a client's value an answer repeats


def clip(value: object, limit: int = ECHO_LIMIT) -> str:
    """A client's value as an answer may echo it: at most ``limit`` characters."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def invalid_fields(errors: list[Any], what: str = "request") -> InvalidInput:
    """An InvalidInput for pydantic errors: the detail lists each bad field; ``errors`` keeps
    them structured."""
    cleaned = [
        {
            "loc": [p if isinstance(p, int) else clip(p) for p in e.get("loc", ())],
            "msg": clip(e.get("msg", ""), 4 * ECHO_LIMIT),
            "type": e.get("type", ""),
        }
        for e in errors
    ]
    parts = [f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in cleaned]
    return InvalidInput(f"invalid {what}: " + "; ".join(parts), errors=cleaned)
