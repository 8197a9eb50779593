"""The baseline: a plain FastAPI + pydantic service of the same ONNX models, as one would write it.

Request bodies validated by pydantic (``list[list[float]]``, ``list[dict[str, float]]``), a sync
endpoint (FastAPI runs it in the thread pool), one onnxruntime call per request, a response model.
Started by the benchmark with ``uvicorn bench.baseline:create_app --factory``; it reads the model
directory from ``BENCH_MODEL_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

from bench.models import IMAGE_MODEL, TABULAR_MODEL
from service.runtime.manifest import Manifest


class ReconstructRequest(BaseModel):
    inputs: list[list[float]]


class ReconstructResponse(BaseModel):
    outputs: list[list[float]]
    scores: list[float]


class AnomalyRequest(BaseModel):
    records: list[dict[str, float]]


class AnomalyResponse(BaseModel):
    scores: list[float]
    is_anomaly: list[bool]


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def create_app() -> FastAPI:
    root = Path(os.environ.get("BENCH_MODEL_DIR", "."))
    image = (
        _session(root / IMAGE_MODEL / "encoder.onnx"),
        _session(root / IMAGE_MODEL / "decoder.onnx"),
    )
    table = (
        _session(root / TABULAR_MODEL / "encoder.onnx"),
        _session(root / TABULAR_MODEL / "decoder.onnx"),
    )
    manifest = Manifest.read(root / TABULAR_MODEL)
    assert manifest.input.features is not None and manifest.input.scaler is not None
    features = manifest.input.features
    mean = np.asarray(manifest.input.scaler.mean, dtype=np.float32)
    std = np.asarray(manifest.input.scaler.std, dtype=np.float32)
    threshold = manifest.score.threshold
    app = FastAPI()

    @app.post("/reconstruct", response_model=ReconstructResponse)
    def reconstruct(req: ReconstructRequest) -> dict[str, object]:
        x = np.asarray(req.inputs, dtype=np.float32).reshape(-1, 28, 28)
        z = image[0].run(None, {"x": x})[0]
        x_hat = image[1].run(None, {"z": z})[0]
        scores = ((x - x_hat) ** 2).reshape(len(x), -1).mean(axis=1)
        return {"outputs": x_hat.reshape(len(x), -1).tolist(), "scores": scores.tolist()}

    @app.post("/anomaly-score", response_model=AnomalyResponse)
    def anomaly(req: AnomalyRequest) -> dict[str, object]:
        raw = np.asarray([[r[f] for f in features] for r in req.records], dtype=np.float32)
        x = (raw - mean) / std
        x_hat = table[1].run(None, {"z": table[0].run(None, {"x": x})[0]})[0]
        scores = ((x - x_hat) ** 2).mean(axis=1)
        return {"scores": scores.tolist(), "is_anomaly": (scores > threshold).tolist()}

    return app
