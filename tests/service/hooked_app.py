"""An app with a request hook, as a user builds one (tests/service/test_policy.py serves it).

The hook records every request it sees into ``$AESERVE_TEST_HOOK_LOG`` (one line: method, path,
request id) and refuses requests that carry ``x-deny``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from service.http.app import create_app
from service.http.policy import RequestHead
from service.runtime.errors import Forbidden


def record(head: RequestHead) -> None:
    with open(os.environ["AESERVE_TEST_HOOK_LOG"], "a") as log:
        log.write(f"{head.method} {head.path} {head.request_id}\n")
    if head.header(b"x-deny") is not None:
        raise Forbidden("denied by the test hook")


def create() -> FastAPI:
    """``uvicorn --factory tests.service.hooked_app:create --http
    service.http.express:ExpressProtocol``: the express lane on, with the hook."""
    return create_app(express=True, hooks=[record])
