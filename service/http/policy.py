"""What applies to every HTTP request, whichever path answers it.

Request ids, the body size limit, request hooks (the documented extension point: API keys,
tracing, audit), metrics and the access log are defined here once. Both ways a request can be
answered call this: the request-context middleware (``middleware.py``, every ASGI request) and
the express lane (``express.py``, which answers common inference POSTs from the protocol).

Extending: pass ``hooks=[...]`` to :func:`service.http.app.create_app`. A hook is called with
the :class:`RequestHead` of every request before it is served (express lane included) and
refuses it by raising a :class:`~service.runtime.errors.ServiceError` (rendered as problem+json
with the request id). An ordinary ASGI middleware added with ``app.add_middleware`` sees every
request too: the express lane turns itself off while one is installed (it cannot run ASGI
middleware), and says so in the log.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.metrics import Metrics
from service.runtime.errors import PayloadTooLarge

access_logger = logging.getLogger("service.access")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# The ASGI scope key under which the lane leaves a request it declined after admitting it (a
# RequestHead) or refusing it (the ServiceError): the middleware does not admit it again.
ADMITTED_KEY = "aeserve.admitted"


@dataclass(slots=True)
class RequestHead:
    """What a hook sees of a request: method, path, raw headers, request id, client."""

    method: str
    path: str
    headers: Sequence[tuple[bytes, bytes]]
    request_id: str
    client: tuple[str, int] | None = None

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (lower-case name), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


RequestHook = Callable[[RequestHead], None]


class RequestIds:
    """``X-Request-ID`` values: the client's when it is a safe token, else a new one.

    New ids are a random per-process prefix and a counter. uuid4() per request reads
    os.urandom, which releases the GIL and can then wait on the inference thread for it.
    """

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    def __call__(self, client_id: bytes | None) -> str:
        if client_id:
            text = client_id.decode("latin-1")
            if _CLIENT_ID.match(text):
                return text
        return f"{self._prefix}{next(self._counter):016x}"


class Policy:
    """The cross-cutting rules of one app (see the module docstring)."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        hooks: Sequence[RequestHook] = (),
        access_log: bool = False,
    ) -> None:
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.hooks = tuple(hooks)
        self.access_log = access_log
        self.request_ids = RequestIds()
        self.versions: dict[str, str] = {}  # model -> version, for the access log

    def head(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        client: tuple[str, int] | None = None,
    ) -> RequestHead:
        """The request's head, with its request id (the client's ``X-Request-ID`` if safe)."""
        client_id = None
        for name, value in headers:
            if name == b"x-request-id":
                client_id = value
                break
        return RequestHead(method, path, headers, self.request_ids(client_id), client)

    def admit(self, head: RequestHead) -> None:
        """Refuse the request (raise a ServiceError) if a declared body is over the limit or
        a hook refuses it."""
        length = head.header(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise PayloadTooLarge(too_large(self.max_body_bytes))
        for hook in self.hooks:
            hook(head)

    def finish(
        self, head: RequestHead, endpoint: str, model: str, status: int, seconds: float
    ) -> None:
        """Count one answered request (metrics) and log it (access log, when on)."""
        self.metrics.observe(endpoint, model, status, seconds)
        if self.access_log:
            self._log(head, status, seconds, model)

    def finish_many(
        self,
        heads: Sequence[RequestHead],
        endpoint: str,
        model: str,
        status: int,
        seconds: list[float],
    ) -> None:
        """:meth:`finish` for several requests of one endpoint, model and status at once."""
        self.metrics.observe_many(endpoint, model, status, seconds)
        if self.access_log:
            for head, s in zip(heads, seconds, strict=True):
                self._log(head, status, s, model)

    def _log(self, head: RequestHead, status: int, seconds: float, model: str = "") -> None:
        client = f"{head.client[0]}:{head.client[1]}" if head.client else "-"
        version = self.versions.get(model, "")
        access_logger.info(
            '%s "%s %s" %d %.2fms id=%s model=%s version=%s',
            client,
            head.method,
            head.path,
            status,
            seconds * 1000,
            head.request_id,
            model or "-",
            version or "-",
            extra={  # the fields of a JSON log line (AESERVE_LOG_FORMAT=json)
                "request_id": head.request_id,
                "method": head.method,
                "path": head.path,
                "status": status,
                "ms": round(seconds * 1000, 3),
                "model": model or None,
                "version": version or None,
                "client": client,
            },
        )


def too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (AESERVE_MAX_BODY_BYTES); send fewer samples"
