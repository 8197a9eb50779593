"""An app that wants an API key on inference requests (a request hook, as issue 12's keys will
be): ``uvicorn --factory tests.clients.keyed_app:create``. The key is ``$AESERVE_TEST_KEY``."""

from __future__ import annotations

import os

from fastapi import FastAPI

from service.http.app import create_app
from service.http.policy import RequestHead
from service.runtime.errors import Unauthenticated


def require_key(head: RequestHead) -> None:
    if head.path.startswith(("/models", "/readyz", "/healthz", "/metrics")):
        return
    if head.header(b"authorization") != f"Bearer {os.environ['AESERVE_TEST_KEY']}".encode():
        raise Unauthenticated("send Authorization: Bearer KEY")


def create() -> FastAPI:
    return create_app(express=True, hooks=[require_key])
