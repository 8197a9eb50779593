#!/usr/bin/env python3
"""Container health check: exit 0 when the local service answers ``GET /readyz`` with 200.

Standard library only (the slim image has no curl). Reads the port from ``AESERVE_PORT`` as the
service does; ``AESERVE_HEALTHCHECK_URL`` overrides the whole URL.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def readyz_url() -> str:
    url = os.environ.get("AESERVE_HEALTHCHECK_URL")
    if url:
        return url
    host = os.environ.get("AESERVE_HOST", "0.0.0.0")
    # A wildcard bind answers on loopback; a specific address must be asked directly.
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{os.environ.get('AESERVE_PORT', '8000')}/readyz"


def main() -> int:
    url = readyz_url()
    try:
        with urllib.request.urlopen(url, timeout=2.5) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:  # 503 while models load
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
