"""A thin client for aeserve's REST API: sync (:class:`Client`) and async (:class:`AsyncClient`),
typed results, numpy in and out (``.npy`` on the wire for large batches), the API key, retries
that honour ``503 Retry-After``, and problem+json errors raised as :class:`ApiError`.

    from aeserve_client import Client
    with Client("http://localhost:8000", api_key="...") as client:
        result = client.reconstruct(images, model="mnist")   # images: ndarray [N, 28, 28]
        result.outputs, result.scores
"""

from aeserve_client.client import AsyncClient, Client
from aeserve_client.errors import ApiError, TransportError
from aeserve_client.results import (
    AnomalyScores,
    Decoded,
    Denoised,
    Encoded,
    Reconstruction,
    Samples,
)

__all__ = [
    "AnomalyScores",
    "ApiError",
    "AsyncClient",
    "Client",
    "Decoded",
    "Denoised",
    "Encoded",
    "Reconstruction",
    "Samples",
    "TransportError",
]
__version__ = "0.1.0"
