"""Service configuration: one pydantic-settings class, every field from ``AESERVE_<NAME>``.

A bad value stops startup: :func:`load_settings` turns pydantic's error into a
:class:`ConfigError` whose message names the environment variable and says why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "AESERVE_"
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# AESERVE_KSERVE=true: KServe's custom-runtime contract, where nothing else is set.
KSERVE_DEFAULTS = {"port": 8080, "grpc_port": 9000, "model_dir": "/mnt/models"}
_TRUE = ("1", "true", "yes", "on")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


class Settings(BaseSettings):
    """Everything the service can be told; each field is read from ``AESERVE_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        protected_namespaces=(),
        validate_default=True,
    )

    model_dir: Path = Path("models")
    """The model repository: one sub-directory per model (``model.json`` + ONNX files)."""

    default_model: str | None = None
    """Model used when a request names none. Unset: the first loaded model by name."""

    host: str = "0.0.0.0"
    """Interface uvicorn binds to (``python -m service``)."""

    port: int = Field(8000, ge=1, le=65535)
    """TCP port uvicorn listens on."""

    workers: int = Field(1, ge=1, le=64)
    """uvicorn worker processes; each loads every model."""

    log_level: LogLevel = "info"
    """Log level of uvicorn and the ``service`` loggers."""

    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413."""

    max_batch: int = Field(1024, ge=1)
    """Most samples (rows, images, records or latents) in one request; more get 422."""

    max_samples: int = Field(256, ge=1)
    """Largest ``n`` accepted by ``/sample``."""

    onnx_intra_op_threads: int = Field(1, ge=0, le=256)
    """onnxruntime threads inside one operator (0: onnxruntime picks, usually all cores).
    1 suits many concurrent small requests; raise it for large batches."""

    onnx_inter_op_threads: int = Field(1, ge=0, le=256)
    """onnxruntime threads across independent operators (0: onnxruntime picks)."""

    onnx_spinning: bool = False
    """Let onnxruntime's pool threads spin while idle (lower latency with several intra-op
    threads, but a spinning thread burns a core the event loop could use)."""

    onnx_arena: bool = True
    """onnxruntime's CPU memory arena: reuses buffers between runs."""

    keep_large_blocks: bool = True
    """Tell glibc's allocator to keep freed blocks up to 64 MB for reuse instead of returning
    each to the system (service/memory.py): large requests stop page-faulting fresh memory.
    The process then holds its peak memory."""

    batching: bool = True
    """Dynamic micro-batching: one inference worker per model gathers concurrent requests into
    one ONNX call. Off: each request runs its own call in the thread pool."""

    batch_max_size: int = Field(64, ge=1, le=65536)
    """Most samples per batched ONNX call; a request with more samples runs alone."""

    batch_max_wait_us: int = Field(500, ge=0, le=1_000_000)
    """Longest a request waits for others to join its batch, in microseconds (0: never wait; the
    worker still takes whatever is queued). Waiting stops early when no new request arrives."""

    batch_queue_limit: int = Field(4096, ge=1)
    """Most samples queued per model; beyond it requests get 503 with Retry-After."""

    batch_inline_max_us: int = Field(5000, ge=0, le=1_000_000)
    """Models whose forward pass on a full batch (``batch_max_size`` samples, timed at load)
    takes at most this many microseconds run their batches inline on the event loop (and take
    the express lane): the hand-off to the inference thread costs more than their calls, and
    the loop waits at most this long for a batch. Past this long of batches in one turn of the
    loop, a model's remaining batches wait for the next turn (0: always hand off)."""

    fast_path: bool = True
    """The express lane (``service/http/express.py``, under ``python -m service``) for the
    inference POSTs it can take: the same operations, policy and answers without the ASGI cycle.
    Off: every request takes the ASGI path."""

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """API keys as comma-separated ``key:scope`` pairs (scopes ``infer``, ``admin``; an admin
    key may also infer). With any key configured (here or in ``api_keys_file``) every
    inference and model request needs ``Authorization: Bearer KEY`` (or ``X-API-Key``)."""

    api_keys_file: Path | None = None
    """A file of API keys that holds no secret: one ``scope sha256-hex-of-key`` per line
    (``#`` comments and blank lines ignored)."""

    metrics_need_key: bool = False
    """With API keys on, ``/metrics`` also needs a key (``infer`` scope); off: it stays open
    for the Prometheus scrape."""

    model_watch_s: float = Field(0.0, ge=0.0, le=3600.0)
    """Watch the model repository every this many seconds and load, reload or unload the
    models whose folders changed (0: off; ``POST /v2/repository/models/{m}/load`` still
    works with an admin key)."""

    access_log: bool = False
    """uvicorn's per-request access log (costs throughput; the metrics count requests anyway)."""

    # -- Limits against slow, greedy and hostile clients (issue 18). The connection limits are
    # applied by the protocol ``python -m service`` runs (service/http/express.py).

    header_timeout_s: float = Field(10.0, gt=0, le=3600)
    """Longest a client may take to send a request's head (request line and headers), in
    seconds; then 408 and the connection is closed."""

    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    """Longest a client may take to send a request's body once its head is in, in seconds;
    then 408 (or, once the app answers, a closed connection)."""

    keep_alive_s: float = Field(5.0, gt=0, le=3600)
    """An idle connection (a new one that sends nothing, or between requests) is closed after
    this many seconds."""

    max_header_bytes: int = Field(16 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Largest request head (request line and headers) in bytes; larger ones get 431."""

    max_connections: int = Field(4096, ge=1)
    """Most open connections per process; beyond it a new connection gets 503 with Retry-After
    and is closed."""

    max_decoded_pixels: int = Field(4096 * 4096, ge=1)
    """Most image pixels one request may decode, summed over its images and read from each
    image's header before it is decompressed; more get 422."""

    max_queue_wait_ms: float = Field(250.0, gt=0)
    """Longest a request may wait in a model's queue, in milliseconds: a request that would
    wait longer gets 503 with Retry-After instead (on every path)."""

    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line (``python -m service``), the access log's with
    request id, method, path, status, latency, model and version as fields (service/logs.py)."""

    tracing: bool = False
    """OpenTelemetry spans (parse, queue wait, inference, encode) with the request id, exported
    over OTLP/HTTP (``OTEL_EXPORTER_OTLP_ENDPOINT``); needs ``pip install '.[tracing]'``. The
    express lane is off while tracing is on."""

    drift_window: int = Field(2048, ge=10, le=1_000_000)
    """Scored samples per model in the sliding window whose calibration deciles give the
    ``aeserve_score_drift_psi`` and ``aeserve_score_drift_ks`` gauges (service/drift.py)."""

    shutdown_grace_s: float = Field(20.0, gt=0, le=3600)
    """On SIGTERM the server stops accepting, finishes the requests in progress (answering them
    with ``Connection: close``) and exits within this many seconds."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed by CORS, comma-separated or a JSON list (``*`` for any); empty: CORS off."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _key_scopes(cls, value: list[str]) -> list[str]:
        for pair in value:
            key, _, scope = pair.rpartition(":")
            if not key or scope not in ("infer", "admin"):
                raise ValueError("each API key must be 'key:infer' or 'key:admin'")
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _keys_file_reads(cls, value: Path | None) -> Path | None:
        if value is not None:
            if not value.is_file():
                raise ValueError(f"API keys file '{value}' does not exist")
            read_keys_file(value)
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return value

    @field_validator("model_dir")
    @classmethod
    def _model_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"model directory '{value}' does not exist or is not a directory")
        return value

    @field_validator("default_model")
    @classmethod
    def _default_model_name(cls, value: str | None) -> str | None:
        if value is not None and not _MODEL_NAME.match(value):
            raise ValueError(f"'{value}' is not a model name (lower-case letters, digits, ._-)")
        return value or None

    @model_validator(mode="after")
    def _default_model_present(self) -> Settings:
        if self.default_model is not None and not (self.model_dir / self.default_model).is_dir():
            raise ValueError(
                f"AESERVE_DEFAULT_MODEL='{self.default_model}' names no model directory "
                f"in '{self.model_dir}'"
            )
        return self

    # -- the Open Inference Protocol (issue 13) -------------------------------------------------

    grpc_port: int = Field(8001, ge=0, le=65535)
    """Port of the gRPC Open Inference Protocol service (``inference.GRPCInferenceService``),
    started with the app by ``python -m service``; 0: no gRPC. KServe mode: 9000."""

    grpc_host: str | None = None
    """Interface the gRPC service binds to; unset: the same as ``host``."""

    kserve: bool = False
    """KServe's custom-runtime contract: HTTP on 8080, gRPC on 9000 and models from
    ``/mnt/models``, each unless set explicitly; readiness on ``/v2/health/ready``."""

    @model_validator(mode="before")
    @classmethod
    def _kserve_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and str(data.get("kserve", "")).lower() in _TRUE:
            for key, value in KSERVE_DEFAULTS.items():
                data.setdefault(key, value)
        return data


def read_keys_file(path: Path) -> list[tuple[bytes, str]]:
    """An API keys file: ``scope sha256-hex`` lines -> (digest, scope); ValueError naming the
    first bad line."""
    entries = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if (
            len(parts) != 2
            or parts[0] not in ("infer", "admin")
            or len(parts[1]) != 64
            or any(c not in "0123456789abcdef" for c in parts[1].lower())
        ):
            raise ValueError(
                f"{path.name} line {number}: expected 'infer|admin <sha256 hex of the key>' "
                "(e.g. printf %s KEY | sha256sum)"
            )
        entries.append((bytes.fromhex(parts[1]), parts[0]))
    return entries


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings` from the environment (and ``overrides``), or raise ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad setting: ``AESERVE_PORT=70000: Input should be ...``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        name = f"{ENV_PREFIX}{loc.upper()}" if loc else "settings"
        value = err.get("input")
        shown = "" if loc == "" or isinstance(value, dict) else f"={value!r}"
        lines.append(f"invalid setting {name}{shown}: {err['msg']}")
    return "; ".join(lines)
