"""Model folders: where a new one goes, how it is swapped in, and the server's own check."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from aeserve.errors import UserError
from service.runtime.errors import ModelLoadError
from service.runtime.model import ModelRuntime
from service.runtime.repository import load_model
from service.runtime.sessions import OnnxOptions

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # service.manifest.Manifest.name


def model_version(encoder_sha: str, decoder_sha: str) -> str:
    """Short hash of both files' hashes, as ``training.pipeline.model_version`` (which imports
    torch, so it is not imported here; a test keeps the two equal)."""
    return hashlib.sha256(f"{encoder_sha}:{decoder_sha}".encode()).hexdigest()[:12]


def target(models: Path, name: str, force: bool) -> Path:
    """``models/name``, after checking the name and that nothing is replaced unasked."""
    if not NAME.match(name):
        raise UserError(
            f"model name {name!r}: use lowercase letters, digits, '.', '_' and '-', starting "
            "with a letter or digit"
        )
    if models.exists() and not models.is_dir():
        raise UserError(f"{models} is not a directory")
    out = models / name
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to replace it")
    return out


def safe_name(text: str) -> str:
    """A model name made from a file name: 'My Tx.csv' -> 'my-tx'."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name or "model"


def check_folder(path: Path) -> tuple[ModelRuntime | None, str]:
    """Load ``path`` exactly as the server's repository does: the runtime, or why not."""
    try:
        return load_model(path, OnnxOptions(), max_batch=1024), ""
    except ModelLoadError as exc:
        return None, str(exc)


def describe(runtime: ModelRuntime) -> str:
    m = runtime.manifest
    return (
        f"{m.name} {m.version}  {m.family}  {m.input.kind} {list(m.input.shape)} -> latent "
        f"{m.latent.dim}  score {m.score.kind}, threshold {m.score.threshold:.4g} "
        f"({m.score.threshold_rule})"
    )


def swap_in(work: Path, out: Path) -> None:
    """Replace ``out`` by ``work`` with two renames (the old folder stays whole until then)."""
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    work.rename(out)
    shutil.rmtree(old, ignore_errors=True)
