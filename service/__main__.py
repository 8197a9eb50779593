"""``python -m service [--host H] [--port P] [--workers W] [--grpc-port G] [--kserve]``: uvicorn
with the app factory (HTTP, and the Open Inference Protocol over gRPC on its own port).

Every setting comes from ``AESERVE_*`` environment variables; the flags override host, port and
workers. A bad setting exits with status 2 and a message naming it.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from service.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", help="bind address (AESERVE_HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="TCP port (AESERVE_PORT, default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (AESERVE_WORKERS, 1)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port (AESERVE_GRPC_PORT, 8001; 0: off)")
    parser.add_argument(
        "--kserve",
        action="store_true",
        default=None,
        help="KServe's contract: HTTP 8080, gRPC 9000, models from /mnt/models (AESERVE_KSERVE)",
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"aeserve: {exc}", file=sys.stderr)
        return 2
    # The app factory reads its settings from the environment (in every worker process):
    # the flags go there too.
    for name, value in overrides.items():
        os.environ[f"AESERVE_{name.upper()}"] = str(value)
    uvicorn.run(
        # The app with the express lane (service/http/express.py) on uvicorn's protocol.
        "service.http.app:create_express_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level, settings.log_format),
        # The access log is the service's own (AESERVE_ACCESS_LOG, every path, express lane
        # included: service/http/policy.py), not uvicorn's.
        access_log=False,
        http="service.http.express:ExpressProtocol",
        # Idle keep-alive and the graceful-shutdown bound (service/http/limits.py).
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]
    )
    return 0


def log_config(level: str, fmt: str = "text") -> dict[str, Any]:
    """uvicorn's logging config plus the ``service`` loggers on the same handler (``json``:
    every line a JSON object, service/logs.py)."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    if fmt == "json":
        for name in ("default", "access"):
            config["formatters"][name] = {"()": "service.logs.JsonFormatter"}
    config["loggers"]["service"] = {
        "handlers": ["default"],
        "level": "DEBUG" if level == "trace" else level.upper(),
        "propagate": False,
    }
    return config


if __name__ == "__main__":
    raise SystemExit(main())
