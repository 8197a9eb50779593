"""The sync and async clients: they send the calls of ``calls.py`` with the API key, retry
what may be retried, and raise ApiError for error answers. The operations are defined once
(``calls.py``); each client method is one line over them."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import httpx

from aeserve_client import calls
from aeserve_client.calls import Call
from aeserve_client.errors import ApiError, TransportError
from aeserve_client.results import (
    AnomalyScores,
    Decoded,
    Denoised,
    Encoded,
    Reconstruction,
    Samples,
)

T = TypeVar("T")


class _Retry:
    """When to try again: a 503 (after its Retry-After, at most ``max_wait`` seconds) or a
    connection that failed, up to ``retries`` more attempts with exponential backoff."""

    def __init__(self, retries: int, backoff: float, max_wait: float) -> None:
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait

    def wait(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before the next attempt, or None: do not retry."""
        if attempt >= self.retries:
            return None
        delay = self.backoff * float(2**attempt)
        if response is not None:
            if response.status_code != 503:
                return None
            after = response.headers.get("retry-after", "")
            if after.isdigit():
                delay = float(after)
        return min(delay, self.max_wait)


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_retry_wait: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.retry = _Retry(retries, backoff, max_retry_wait)

    def _request(self, call: Call[Any]) -> dict[str, Any]:
        return {
            "method": call.method,
            "url": call.path,
            "json": call.json,
            "content": call.content,
            "params": dict(call.params) or None,
            "headers": dict(call.headers),
        }


class Client(_Base):
    """The sync client (``with Client(url) as c: c.reconstruct(x)``)."""

    def __init__(
        self, base_url: str, *, transport: httpx.BaseTransport | None = None, **options: Any
    ) -> None:
        super().__init__(base_url, **options)
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=self.headers,
            timeout=self.timeout,
            trust_env=False,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def run(self, call: Call[T]) -> T:
        """Send one call (retrying as configured) and read its answer."""
        attempt = 0
        while True:
            try:
                response: httpx.Response | None = self.http.request(**self._request(call))
            except httpx.TransportError as exc:
                response, failure = None, exc
            if response is not None and response.status_code != 503:
                return calls.result(call, response)
            wait = self.retry.wait(attempt, response)
            if wait is None:
                if response is not None:
                    return calls.result(call, response)
                raise TransportError(str(failure)) from failure
            time.sleep(wait)
            attempt += 1

    def encode(self, inputs: Any, model: str | None = None, **options: Any) -> Encoded:
        return self.run(calls.encode(inputs, model, **options))

    def decode(self, latents: Any, model: str | None = None, **options: Any) -> Decoded:
        return self.run(calls.decode(latents, model, **options))

    def reconstruct(self, inputs: Any, model: str | None = None, **options: Any) -> Reconstruction:
        return self.run(calls.reconstruct(inputs, model, **options))

    def denoise(self, inputs: Any, model: str | None = None, **options: Any) -> Denoised:
        return self.run(calls.denoise(inputs, model, **options))

    def sample(self, n: int = 1, model: str | None = None, **options: Any) -> Samples:
        return self.run(calls.sample(n, model, **options))

    def anomaly_score(
        self, inputs: Any = None, model: str | None = None, **options: Any
    ) -> AnomalyScores:
        return self.run(calls.anomaly_score(inputs, model, **options))

    def models(self) -> dict[str, Any]:
        return self.run(calls.models())

    def model(self, name: str) -> dict[str, Any]:
        return self.run(calls.model(name))

    def ready(self) -> bool:
        try:
            return self.run(calls.ready())
        except (ApiError, TransportError):
            return False


class AsyncClient(_Base):
    """The async client (``async with AsyncClient(url) as c: await c.reconstruct(x)``)."""

    def __init__(
        self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> None:
        super().__init__(base_url, **options)
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            timeout=self.timeout,
            trust_env=False,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def run(self, call: Call[T]) -> T:
        """Send one call (retrying as configured) and read its answer."""
        attempt = 0
        while True:
            try:
                response: httpx.Response | None = await self.http.request(**self._request(call))
            except httpx.TransportError as exc:
                response, failure = None, exc
            if response is not None and response.status_code != 503:
                return calls.result(call, response)
            wait = self.retry.wait(attempt, response)
            if wait is None:
                if response is not None:
                    return calls.result(call, response)
                raise TransportError(str(failure)) from failure
            await asyncio.sleep(wait)
            attempt += 1

    async def encode(self, inputs: Any, model: str | None = None, **options: Any) -> Encoded:
        return await self.run(calls.encode(inputs, model, **options))

    async def decode(self, latents: Any, model: str | None = None, **options: Any) -> Decoded:
        return await self.run(calls.decode(latents, model, **options))

    async def reconstruct(
        self, inputs: Any, model: str | None = None, **options: Any
    ) -> Reconstruction:
        return await self.run(calls.reconstruct(inputs, model, **options))

    async def denoise(self, inputs: Any, model: str | None = None, **options: Any) -> Denoised:
        return await self.run(calls.denoise(inputs, model, **options))

    async def sample(self, n: int = 1, model: str | None = None, **options: Any) -> Samples:
        return await self.run(calls.sample(n, model, **options))

    async def anomaly_score(
        self, inputs: Any = None, model: str | None = None, **options: Any
    ) -> AnomalyScores:
        return await self.run(calls.anomaly_score(inputs, model, **options))

    async def models(self) -> dict[str, Any]:
        return await self.run(calls.models())

    async def model(self, name: str) -> dict[str, Any]:
        return await self.run(calls.model(name))

    async def ready(self) -> bool:
        try:
            return await self.run(calls.ready())
        except (ApiError, TransportError):
            return False
