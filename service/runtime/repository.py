"""The model repository: every ``<model_dir>/<name>/`` loaded into a :class:`ModelRuntime`.

A model that cannot be served (bad manifest, checksum mismatch, ONNX that does not load,
shapes that disagree with the manifest) is refused with one log line and listed in
:attr:`ModelRepository.failed` with the reason; the others serve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from service.runtime.errors import ModelLoadError, ModelNotFound, NotReady
from service.runtime.manifest import MANIFEST_FILE, Manifest, sha256_file
from service.runtime.model import ModelRuntime
from service.runtime.sessions import OnnxOptions, open_session

logger = logging.getLogger(__name__)


@dataclass
class ModelRepository:
    """Loaded models by name, failed ones with their reason, and the default model."""

    model_dir: Path
    models: dict[str, ModelRuntime] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    default_name: str | None = None

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        options: OnnxOptions | None = None,
        max_batch: int = 1024,
        default_model: str | None = None,
    ) -> ModelRepository:
        """Load every model directory under ``model_dir`` (sorted by name)."""
        options = options or OnnxOptions()
        repo = cls(model_dir)
        for path in sorted(p for p in model_dir.iterdir() if p.is_dir()):
            if path.name.startswith((".", "_")):
                continue
            try:
                runtime = load_model(path, options, max_batch)
            except ModelLoadError as exc:
                repo.failed[path.name] = str(exc)
                logger.error("model %s refused: %s", path.name, exc)
                continue
            repo.models[runtime.name] = runtime
            logger.info(
                "model %s %s loaded (%s, %s %s, latent %d)",
                runtime.name,
                runtime.version,
                runtime.manifest.family,
                runtime.kind,
                list(runtime.shape),
                runtime.latent_dim,
            )
        if default_model is not None:
            repo.default_name = default_model
            if default_model not in repo.models:
                logger.error("default model %s is not loaded", default_model)
        elif repo.models:
            repo.default_name = next(iter(repo.models))
        return repo

    def get(self, name: str | None) -> ModelRuntime:
        """The named model, or the default one; 404 naming the loaded models otherwise."""
        key = name if name is not None else self.default_name
        if key is not None and key in self.models:
            return self.models[key]
        known = ", ".join(self.models) or "none"
        if key is None:
            raise ModelNotFound(f"no model given and no default model; loaded models: {known}")
        if key in self.failed:
            raise ModelNotFound(
                f"model '{key}' failed to load ({self.failed[key]}); loaded models: {known}"
            )
        raise ModelNotFound(f"unknown model '{key}'; loaded models: {known}")

    def denoisers(self) -> list[str]:
        return [name for name, rt in self.models.items() if rt.denoiser]


def load_model(path: Path, options: OnnxOptions, max_batch: int) -> ModelRuntime:
    """Load and verify one model directory, or raise ModelLoadError with the reason."""
    if not (path / MANIFEST_FILE).is_file():
        raise ModelLoadError(f"no {MANIFEST_FILE}")
    try:
        manifest = Manifest.read(path)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "model.json"
        raise ModelLoadError(
            f"invalid {MANIFEST_FILE} ({exc.error_count()} error(s)); {where}: {first['msg']}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {MANIFEST_FILE}: {exc}") from exc
    if manifest.name != path.name:
        raise ModelLoadError(
            f"manifest name '{manifest.name}' differs from its directory name '{path.name}'"
        )
    sessions = []
    for which, info in (("encoder", manifest.files.encoder), ("decoder", manifest.files.decoder)):
        file = (path / info.path).resolve()
        if not file.is_relative_to(path.resolve()):
            raise ModelLoadError(f"{which} path '{info.path}' leaves the model directory")
        if not file.is_file():
            raise ModelLoadError(f"{which} file '{info.path}' is missing")
        digest = sha256_file(file)
        if digest != info.sha256:
            raise ModelLoadError(
                f"{which} file '{info.path}' has sha256 {digest[:12]}…, manifest says "
                f"{info.sha256[:12]}… (checksum mismatch)"
            )
        try:
            sessions.append(open_session(file, options))
        except Exception as exc:  # onnxruntime's load errors have no common public type
            raise ModelLoadError(
                f"{which} '{info.path}' does not load in onnxruntime: {exc}"
            ) from exc
    runtime = ModelRuntime(manifest, sessions[0], sessions[1], model_dir=path, max_batch=max_batch)
    runtime.verify()
    return runtime


class LoadState:
    """Readiness: the repository once loading is done, or why it is not ready."""

    def __init__(self) -> None:
        self.repository: ModelRepository | None = None
        self.error: str | None = None

    def require(self) -> ModelRepository:
        if self.repository is None:
            if self.error is not None:
                raise NotReady(f"model loading failed: {self.error}")
            raise NotReady("models are still loading; retry shortly")
        return self.repository
