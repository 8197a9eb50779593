"""The model repository: every ``<model_dir>/<name>/`` loaded into a :class:`ModelRuntime`.

A model that cannot be served (bad manifest, checksum mismatch, ONNX that does not load,
shapes that disagree with the manifest) is refused with one log line and listed in
:attr:`ModelRepository.failed` with the reason; the others serve.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from service.runtime.errors import ModelLoadError, ModelNotFound, NotReady, clip
from service.runtime.manifest import MANIFEST_FILE, Manifest, content_version, sha256_file
from service.runtime.model import ModelRuntime
from service.runtime.reference import load_index
from service.runtime.sessions import OnnxOptions, open_session

logger = logging.getLogger(__name__)


@dataclass
class ModelRepository:
    """Loaded models by name (each with its versions), failed ones with their reason, and the
    default model.

    A model folder holds one version (``<name>/model.json``) or several side by side
    (``<name>/<version>/model.json``); the newest (by ``created_at``, then version) serves
    unless a request pins one. :meth:`reload` and :meth:`unload` change one model while the
    others serve: a new set of versions is loaded and checked completely, then swapped in with
    one assignment, so a request holds the version it started with until it is answered.
    """

    model_dir: Path
    models: dict[str, ModelRuntime] = field(default_factory=dict)  # the serving version
    versions: dict[str, dict[str, ModelRuntime]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    default_name: str | None = None
    options: OnnxOptions = field(default_factory=OnnxOptions)
    max_batch: int = 1024

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
        repo = cls(model_dir, options=options or OnnxOptions(), max_batch=max_batch)
        for path in sorted(p for p in model_dir.iterdir() if p.is_dir()):
            if path.name.startswith((".", "_")):
                continue
            try:
                repo.reload(path.name)
            except ModelLoadError:
                continue
        if default_model is not None:
            repo.default_name = default_model
            if default_model not in repo.models:
                logger.error("default model %s is not loaded", default_model)
        elif repo.models:
            repo.default_name = next(iter(repo.models))
        return repo

    def reload(self, name: str) -> dict[str, ModelRuntime]:
        """(Re)load every version of ``<model_dir>/<name>`` and swap them in; returns them.

        A folder that does not load is refused with ModelLoadError: a model that was serving
        keeps serving its old versions."""
        versions = self.read(name)
        self.install(name, versions)
        return versions

    def read(self, name: str) -> dict[str, ModelRuntime]:
        """Load and check every version of ``<model_dir>/<name>`` without serving them yet
        (blocking: ONNX sessions are opened and run). ModelLoadError with the reason."""
        try:
            return load_versions(self.model_dir / name, self.options, self.max_batch)
        except ModelLoadError as exc:
            if name in self.models:
                logger.error(
                    "model %s: the new files are refused, the loaded versions keep serving: %s",
                    name,
                    exc,
                )
            else:
                self.failed[name] = public_reason(str(exc))  # the log keeps the paths
                logger.error("model %s refused: %s", name, exc)
            raise

    def install(self, name: str, versions: dict[str, ModelRuntime]) -> dict[str, ModelRuntime]:
        """Serve ``versions`` of ``name`` (the newest by default); returns the versions they
        replace. One assignment each: a reader sees the old set or the new one, never a mix;
        requests in flight keep the runtime they hold."""
        newest = max(versions.values(), key=lambda rt: (rt.manifest.created_at, rt.version))
        old = self.versions.get(name, {})
        self.versions[name] = versions
        self.models[name] = newest
        self.failed.pop(name, None)
        for runtime in versions.values():
            logger.info(
                "model %s %s loaded (%s, %s %s, latent %d)%s",
                runtime.name,
                runtime.version,
                runtime.manifest.family,
                runtime.kind,
                list(runtime.shape),
                runtime.latent_dim,
                ", serving" if runtime is newest else "",
            )
        return old

    def unload(self, name: str) -> dict[str, ModelRuntime]:
        """Stop serving ``name``; its versions are returned (ModelNotFound if not loaded)."""
        if name not in self.models:
            raise ModelNotFound(
                f"model '{name}' is not loaded; loaded models: {', '.join(self.models) or 'none'}"
            )
        del self.models[name]
        self.failed.pop(name, None)
        return self.versions.pop(name)

    def get(self, name: str | None, version: str | None = None) -> ModelRuntime:
        """The named model (the pinned version, else the serving one), or the default model;
        404 naming the loaded models (or versions) otherwise."""
        key = name if name is not None else self.default_name
        if key is not None and key in self.models:
            if version is None:
                return self.models[key]
            runtime = self.versions[key].get(version)
            if runtime is not None:
                return runtime
            raise ModelNotFound(
                f"model '{key}' has no version '{version}'; versions: "
                f"{', '.join(sorted(self.versions[key]))}"
            )
        known = ", ".join(self.models) or "none"
        if key is None:
            raise ModelNotFound(f"no model given and no default model; loaded models: {known}")
        if key in self.failed:
            raise ModelNotFound(
                f"model '{key}' failed to load ({self.failed[key]}); loaded models: {known}"
            )
        raise ModelNotFound(f"unknown model '{clip(key)}'; loaded models: {known}")

    def runtimes(self) -> list[ModelRuntime]:
        """Every loaded version of every model."""
        return [rt for versions in self.versions.values() for rt in versions.values()]

    def denoisers(self) -> list[str]:
        return [name for name, rt in self.models.items() if rt.denoiser]


def load_versions(path: Path, options: OnnxOptions, max_batch: int) -> dict[str, ModelRuntime]:
    """Every version in a model folder: the folder itself (``model.json`` in it) or each of
    its sub-folders (``<version>/model.json``, the folder named as the version)."""
    if not path.is_dir():
        raise ModelLoadError(f"no model folder '{path.name}'")
    if (path / MANIFEST_FILE).is_file():
        runtime = load_model(path, options, max_batch)
        check_version(runtime.manifest)
        return {runtime.version: runtime}
    folders = sorted(p for p in path.iterdir() if p.is_dir() and (p / MANIFEST_FILE).is_file())
    if not folders:
        raise ModelLoadError(f"no {MANIFEST_FILE} (nor version folders holding one)")
    versions = {}
    for folder in folders:
        runtime = load_model(folder, options, max_batch, name=path.name)
        check_version(runtime.manifest)
        if runtime.version != folder.name:
            raise ModelLoadError(
                f"version folder '{folder.name}' holds version '{runtime.version}'; name the "
                "folder after the manifest's version"
            )
        versions[runtime.version] = runtime
    return versions


def load_model(
    path: Path, options: OnnxOptions, max_batch: int, *, name: str | None = None
) -> ModelRuntime:
    """Load and verify one model directory, or raise ModelLoadError with the reason.

    ``name``: the model's name when the directory is a version folder (else its own name)."""
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
    expected = name if name is not None else path.name
    if manifest.name != expected:
        raise ModelLoadError(
            f"manifest name '{manifest.name}' differs from its directory name '{expected}'"
        )
    sessions = []
    files = [("encoder", manifest.files.encoder), ("decoder", manifest.files.decoder)]
    if manifest.files.classifier is not None:
        files.append(("classifier", manifest.files.classifier))
    for which, info in files:
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
    runtime = ModelRuntime(
        manifest,
        sessions[0],
        sessions[1],
        classifier=sessions[2] if len(sessions) > 2 else None,
        reference=load_index(path, manifest.latent.dim, tuple(manifest.input.shape)),
        model_dir=path,
        max_batch=max_batch,
    )
    runtime.verify()
    return runtime


def check_version(manifest: Manifest) -> None:
    """Refuse a manifest whose ``version`` does not name its weights.

    The version is the content hash of the ONNX files (:func:`content_version`, what
    training writes), or a team's own version with that hash as its build metadata
    (``2.1.0+8a554d8e1afb``). The files were checked against the manifest's sha256 values at
    load, so new weights under an old version are refused. This proves the files match the
    manifest, not who wrote it: a team that needs that signs the model directory (e.g. a
    detached signature of model.json checked by the deployment before it is mounted).
    """
    expected = content_version(*(info.sha256 for info in manifest.files.all()))
    version = manifest.version
    if version != expected and not version.endswith("+" + expected):
        raise ModelLoadError(
            f"version '{clip(version)}' does not match the weights (their content version is "
            f"'{expected}'; use it, or '<your version>+{expected}')"
        )


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"]+/)+([^\s/'\"]*)")


def public_reason(reason: str) -> str:
    """A refusal reason as answers show it: absolute paths cut to their last part."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", reason)


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
