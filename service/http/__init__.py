"""The HTTP layer: the only place that knows FastAPI, Starlette or uvicorn.

The app factory (``app``), the policy every request passes (``policy``: request ids, admission,
request hooks, metrics, access log) and its ASGI middleware (``middleware``), problem+json
rendering (``problems``), reading requests and writing answers (``requests``, ``responses``),
the routes (``routes/``: one per registered operation, models, health), OpenAPI (``openapi``)
and the express lane on uvicorn's protocol (``express``).

May import every other layer of ``service``; nothing imports it but ``service.__main__``.
"""
