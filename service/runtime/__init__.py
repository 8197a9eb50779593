"""The runtime: what a served model is and every number it touches.

Holds the manifest schema (``manifest``), the model repository (``repository``), onnxruntime
sessions (``sessions``) and :class:`~service.runtime.model.ModelRuntime` (``model``: the one
``session.run`` call site, spaces, scaling, sampling), the score function shared with training
(``scoring``), raw tabular columns of user-fitted models (``columns``: categories, missing
cells), process memory settings (``memory``) and the domain errors (``errors``).

May import: numpy, onnxruntime, pydantic and itself. Never FastAPI, Starlette, uvicorn,
prometheus_client, torch, nor any other layer of ``service`` (import-linter checks it).
"""
