"""The uvicorn internals the express lane relies on, pinned (service/http/express.py).

The lane subclasses uvicorn's ``HttpToolsProtocol``: the methods it overrides or calls, the
attributes it reads, ``RequestResponseCycle``'s constructor and ``STATUS_LINE``. Any of them
renamed or changed by a uvicorn upgrade fails here, in CI, not in production; pyproject.toml
pins the range this list was checked against.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from service.http.express import ExpressProtocol

# Methods of HttpToolsProtocol the lane overrides (and calls through super()).
OVERRIDDEN = (
    "on_headers_complete",
    "_start_asgi_task",
    "on_body",
    "on_message_complete",
    "connection_lost",
    "_unset_keepalive_if_required",
    "on_response_complete",
    # connection limits and draining (service/http/limits.py)
    "connection_made",
    "data_received",
    "on_message_begin",
    "shutdown",
)
# Methods it calls that it does not override.
CALLED = (
    "timeout_keep_alive_handler",
    # data_received is uvicorn's own plus the limits: what it calls of uvicorn's
    "_should_upgrade",
    "handle_websocket_upgrade",
    "_unsupported_upgrade_warning",
    "send_400_response",
)
# Instance attributes it reads or sets.
ATTRIBUTES = (
    "access_log",
    "access_logger",
    "app",
    "connections",
    "cycle",
    "expect_100_continue",
    "flow",
    "headers",
    "limit_concurrency",
    "logger",
    "loop",
    "parser",
    "pipeline",
    "root_path",
    "scope",
    "server_state",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
    "transport",
    "url",
)
# RequestResponseCycle(...) keyword arguments (express_decline builds one).
CYCLE_PARAMETERS = {
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "expect_100_continue",
    "keep_alive",
    "on_response",
}
# RequestResponseCycle attributes the lane reads or sets.
CYCLE_ATTRIBUTES = (
    "body",
    "more_body",
    "disconnected",
    "keep_alive",
    "response_complete",
    "response_started",
    "message_event",
    "waiting_for_100_continue",
)


@pytest.mark.parametrize("name", OVERRIDDEN + CALLED)
def test_the_methods_the_lane_relies_on_exist(name: str) -> None:
    assert callable(getattr(HttpToolsProtocol, name, None)), name
    if name in OVERRIDDEN:
        assert name in vars(ExpressProtocol), name


def test_the_attributes_the_lane_relies_on_are_set_by_uvicorn() -> None:
    config = Config(app=lambda scope, receive, send: None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = HttpToolsProtocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    missing = [name for name in ATTRIBUTES if not hasattr(protocol, name)]
    # url, scope, headers and cycle appear per request (set in on_message_begin / on_url).
    assert set(missing) <= {"url", "scope", "headers", "cycle"}, missing
    source = inspect.getsource(HttpToolsProtocol)
    for name in ("url", "scope", "headers", "cycle"):
        assert f"self.{name} = " in source, name


def test_the_request_cycle_is_built_as_the_lane_builds_it() -> None:
    parameters = set(inspect.signature(RequestResponseCycle.__init__).parameters) - {"self"}
    assert parameters == CYCLE_PARAMETERS
    source = inspect.getsource(RequestResponseCycle)
    for name in CYCLE_ATTRIBUTES:
        assert f"self.{name}" in source, name


def test_status_lines_are_preformatted() -> None:
    assert httptools_impl.STATUS_LINE[200] == b"HTTP/1.1 200 OK\r\n"


def test_data_received_is_uvicorns_own_plus_the_limits() -> None:
    """ExpressProtocol.data_received repeats uvicorn's (to answer a refused head with its own
    status, not uvicorn's 400): uvicorn's must still be these steps."""
    source = inspect.getsource(HttpToolsProtocol.data_received)
    for step in (
        "self._unset_keepalive_if_required()",
        "self.parser.feed_data(data)",
        "except httptools.HttpParserError:",
        "self.send_400_response(msg)",
        "except httptools.HttpParserUpgrade:",
        "self.handle_websocket_upgrade()",
    ):
        assert step in source, step


def test_shutdown_closes_idle_connections_and_ends_keep_alive_on_busy_ones() -> None:
    """What uvicorn's graceful shutdown does per connection, which ExpressProtocol.shutdown
    replaces (idle ones wait briefly for a request already on its way)."""
    source = inspect.getsource(HttpToolsProtocol.shutdown)
    assert "self.transport.close()" in source and "self.cycle.keep_alive = False" in source
