"""FastAPI dependencies as ``Annotated`` aliases; the state lives on ``app.state``.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in the thread pool,
which costs a thread hop per request for a dictionary lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.dataplane.plane import DataPlane
from service.metrics import Metrics
from service.runtime.repository import LoadState, ModelRepository
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


async def get_load_state(request: Request) -> LoadState:
    plane: DataPlane = request.app.state.plane
    return plane.load


async def get_repository(request: Request) -> ModelRepository:
    """The loaded repository; 503 with Retry-After while models are still loading."""
    plane: DataPlane = request.app.state.plane
    return plane.repository


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
LoadStateDep = Annotated[LoadState, Depends(get_load_state)]
RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
PlaneDep = Annotated[DataPlane, Depends(get_plane)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
