"""The data plane: the operations, defined once, and one batching scheduler per model.

``operations`` is the registry (encode, decode, reconstruct, denoise, sample, anomaly-score):
each operation's options and answer schemas (``schemas``), which models support it, the checks
of one request and its batch work on the runtime's public API; tabular answers live in
``tabular``. ``scheduler`` batches the jobs of every transport per model; ``plane`` is the
facade the transports call.

May import: ``service.codecs``, ``service.runtime``, ``service.metrics``, numpy and pydantic.
Never FastAPI, Starlette, uvicorn or ``service.http`` (import-linter checks it).
"""
