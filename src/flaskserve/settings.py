"""Typed settings with one precedence order: defaults < TOML file < ``FLASKSERVE_*`` env < flags.

Reading a setting never does I/O: :func:`load_settings` reads the file and the
environment once, and the resulting object is passed to everything that needs it.
Nested values come from the environment with ``__`` between levels, e.g.
``FLASKSERVE_LIMITS__MAX_ROWS=500``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from flaskserve.credentials import SecretUrl
from flaskserve.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_file_values: ContextVar[dict[str, Any] | None] = ContextVar("flaskserve_file_values", default=None)


def _check_rate_limit(text: str) -> str:
    """Refuse a rate limit that ``limits`` cannot parse when the settings load, not on the first request."""
    from limits import parse_many

    try:
        parse_many(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate limit: write COUNT/PERIOD, e.g. '100/minute' or '10/second;500/hour'"
        ) from None
    return text


RateLimitText = Annotated[str, AfterValidator(_check_rate_limit)]
"""A rate limit in the ``limits`` notation, checked when the settings load."""


def _check_version(text: str) -> str:
    """A version number as the repository's folders spell it, leading zeros dropped."""
    if not (text.isascii() and text.isdigit() and 1 <= len(text) <= 9):
        raise ValueError(f'{text[:20]!r} is not a version: write its number, e.g. "3"')
    return str(int(text))


class FeatureHint(BaseModel):
    """What the playground's form shows for one feature: ``[models.NAME.playground.features.FEATURE]``."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    """A sentence shown under the field."""
    min: float | None = None
    """Smallest sensible value (the field's lower bound)."""
    max: float | None = None
    """Largest sensible value (the field's upper bound)."""
    step: float | None = None
    """The field's increment, e.g. 1 for counts."""
    choices: list[float] | None = None
    """The values a categorical feature takes, shown as a select."""


class PlaygroundSettings(BaseModel):
    """How the playground (``/ui``) presents a model: ``[models.NAME.playground]``."""

    model_config = ConfigDict(extra="forbid")

    example: dict[str, float | str] | None = None
    """A realistic row by feature name, the form's starting values."""
    features: dict[str, FeatureHint] = Field(default_factory=dict)
    """Hints by feature name: ``description``, ``min``, ``max``, ``step``, ``choices`` (a select)."""
    widget: Literal["form", "drawing", "chat", "recommendations"] | None = None
    """The scenario widget above the form; a text model gets ``chat`` unless this says otherwise."""
    drawing_width: int = Field(default=8, ge=1, le=64)
    """Columns of a ``drawing`` widget's pixel grid: the features are its pixels, row by row."""
    drawing_height: int = Field(default=8, ge=1, le=64)
    """Rows of a ``drawing`` widget's pixel grid."""
    drawing_max_value: float = 255.0
    """The feature value of a fully inked pixel (blank is 0)."""


class VersionPolicy(BaseModel):
    """Which of a model's versions serve, as TF Serving chooses them: all (the default), the latest N, or a
    pinned list. Pinning a version is the rollback: unversioned requests go to the newest version served."""

    model_config = ConfigDict(extra="forbid")

    latest: int | None = Field(default=None, ge=1)
    """Serve only the newest N versions."""
    specific: list[str] | None = Field(default=None, min_length=1)
    """Serve exactly these versions (e.g. ``["3"]`` pins version 3)."""
    pin: Annotated[str, AfterValidator(_check_version)] | None = None
    """Serve this one version whatever ``latest`` or ``specific`` say (``flaskserve pin`` writes it,
    ``flaskserve unpin`` removes it, and the rule below it serves again)."""

    @model_validator(mode="after")
    def _one_rule(self) -> VersionPolicy:
        if self.latest is not None and self.specific is not None:
            raise ValueError("give either 'latest' or 'specific', not both")
        return self


class Verification(BaseModel):
    """What a new version must pass before it takes traffic, beyond loading and the warm-up call."""

    model_config = ConfigDict(extra="forbid")

    sample: list[Any] | None = None
    """Rows to predict with, as ``/predict`` takes them (``[{"x": 1, "y": 2}]`` or ``[[1, 2]]``)."""
    expected: list[Any] | None = None
    """The answers ``sample`` must give (numbers within ``tolerance``, anything else exactly)."""
    tolerance: float = Field(default=1e-6, ge=0)
    """Largest absolute difference from ``expected`` a numeric answer may show."""
    require_same_signature: bool = False
    """Refuse a version whose inputs, outputs or methods differ from the version it replaces."""


class ImageInput(BaseModel):
    """How an image model turns a PNG or JPEG into its feature row (``[models.NAME.image]``)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(ge=1, le=4096)
    """Width in pixels the image is resized to."""
    height: int = Field(ge=1, le=4096)
    """Height in pixels the image is resized to."""
    channels: Literal[1, 3] = 1
    """1: grayscale; 3: red, green and blue, interleaved per pixel. Rows are read top to bottom."""
    scale: float = Field(default=1.0, gt=0)
    """The feature value of a full-intensity pixel (16 for scikit-learn's digits); 0 is black."""
    invert: bool = False
    """Flip intensities first (255 - value), for models trained on light ink on a dark ground."""
    max_pixels: int = Field(default=16_777_216, ge=1)
    """Most pixels accepted (width * height before resizing), for all the images of one request
    together: a guard against decompression bombs."""


class ModelSettings(BaseModel):
    """Settings of one model, from ``[models.NAME]`` in the config or ``model-settings.toml`` beside it."""

    model_config = ConfigDict(extra="forbid")

    features: list[str] | None = None
    """Feature names in column order; overrides what the model file says (or gives names to x0..xN)."""
    default_method: str = "predict"
    """The method a request gets when it names none."""
    allow_missing: bool = False
    """Accept JSON null as NaN, for estimators that handle missing values."""
    input: Literal["table", "text"] | None = None
    """What the model takes: ``table`` (rows of numbers) or ``text`` (one string per row, under one
    feature named ``text`` or as ``features`` names it). Inferred when unset: a model that is, or starts
    with, a scikit-learn text vectorizer takes text."""
    max_batch_size: int | None = None
    """Overrides the server-wide ``max_batch_size`` for this model."""
    max_batch_delay_ms: float | None = None
    """Overrides the server-wide ``max_batch_delay_ms`` for this model."""
    cache_size: int | None = None
    """Overrides the server-wide ``cache_size`` for this model (0 turns its cache off)."""
    predict_timeout_s: float | None = Field(default=None, ge=0)
    """Overrides the server-wide ``predict_timeout_s`` for this model (0 turns its timeout off)."""
    rate_limit: RateLimitText | None = None
    """Overrides the server-wide ``rate_limit`` for this model's prediction routes."""
    playground: PlaygroundSettings = Field(default_factory=PlaygroundSettings)
    """How the playground page presents this model (example row, feature hints, scenario widget)."""
    versions: VersionPolicy = Field(default_factory=VersionPolicy)
    """Which versions serve: ``[versions]`` with ``latest = N`` or ``specific = ["2"]``; default all."""
    verify: Verification = Field(default_factory=Verification)
    """Checks a version must pass before it serves: ``[verify]`` (docs/operations.md)."""
    inference_log: SecretUrl | None = None
    """Overrides the server-wide ``inference_log`` sink for this model's records."""
    log_sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of this model's requests written to the inference log (0 logs none, 1 every one)."""
    log_redact: dict[str, Literal["hash", "drop"]] = Field(default_factory=dict)
    """Features kept out of the inference log by name: ``hash`` writes a SHA-256 digest of the
    value instead, ``drop`` leaves the feature out (docs/monitoring.md)."""
    image: ImageInput | None = None
    """Declares an image model: it also takes PNG or JPEG images (bodies and uploads, V1 ``b64`` rows,
    V2 ``BYTES`` tensors)."""


class RequestLimits(BaseModel):
    """What one request may cost; each is answered with a 4xx before any large allocation."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body (413 beyond it, chunked bodies included)."""
    max_json_depth: int = 32
    """Deepest nesting of JSON arrays and objects."""
    max_rows: int = 100_000
    """Most rows in one request."""
    max_tensor_elements: int = 10_000_000
    """Most elements one input tensor may declare through its shape."""
    max_inputs: int = 1024
    """Most inputs (or outputs) one V2 request may name."""
    max_string_bytes: int = 1024 * 1024
    """Longest string or BYTES element."""


class Settings(BaseSettings):
    """Everything that can be configured, with the default in force when nothing says otherwise."""

    model_config = SettingsConfigDict(
        env_prefix="FLASKSERVE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    model_path: Path | None = None
    """A model file, or a repository folder laid out as ``NAME/VERSION/model-file``."""
    model_name: str | None = None
    """Name of the model when ``model_path`` is one file (default: the file's stem; a file named
    ``model.*`` takes its folder's name, e.g. ``churn/model.py`` is ``churn``)."""
    default_model: str | None = None
    """The model that ``/predict`` and ``/invocations`` serve (default: the only one)."""
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    """Per-model settings by model name."""

    host: str = "127.0.0.1"
    """Address to listen on; a non-loopback one needs API keys (or ``insecure``)."""
    port: int = 5000
    """Port to listen on."""
    grpc_port: int | None = Field(default=None, ge=1, le=65535)
    """Port for the Open Inference Protocol over gRPC, on the same address and TLS (off unless set;
    needs ``pip install 'flaskserve[grpc]'``). Every worker serves it, sharing the port."""
    workers: int | None = None
    """gunicorn worker processes (default: one per CPU core)."""
    threads: int | None = None
    """Threads per worker (default: see the serving guide)."""
    header_timeout_s: float = Field(default=10.0, gt=0, le=60)
    """Seconds a client has to send a request's line and headers; a slower connection is closed, and
    until its headers are complete it holds no thread (docs/reliability.md)."""
    worker_connections: int = Field(default=1000, ge=1)
    """Connections one worker holds open at once (being read, answered or kept alive); further
    clients wait in the listen backlog."""
    body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Seconds a request body may go without a byte arriving; a slower client is answered 408 and
    closed. Under gunicorn a request holds no thread until its body is in (docs/reliability.md)."""
    body_min_rate: int = Field(default=500, ge=0)
    """Bytes a second a request body must average once it has had ``body_timeout_s``, as Apache's
    ``MinRate``: a 100 kB body may take 10 + 200 s, a few bytes a second get a 408 after about 10 s;
    0 turns the rate off. gunicorn only: granian has no such bound (docs/reliability.md)."""
    send_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Seconds an answer may wait for its client to take a byte of it before the connection is closed.
    gunicorn only: the part of an answer the socket cannot take at once waits in the event loop, not
    in a thread (docs/reliability.md)."""

    allow_pickle: bool = False
    """Trust pickle/joblib files under ``model_path``; they run code when they load."""
    trusted_sha256: list[str] = Field(default_factory=list)
    """SHA-256 digests of pickle/joblib and Python model files trusted one by one."""
    skops_trusted_types: list[str] = Field(default_factory=list)
    """Types skops may build beyond its safe set and the checked tree types, e.g. ``_operator.neg``."""
    allow_code: bool = False
    """Trust Python model files (``model.py``) under ``model_path``; they run code when they load."""

    max_batch_size: int = 1
    """Rows one batched model call may merge; 0 or 1 (the default) turns adaptive batching off."""
    max_batch_delay_ms: float = 2.0
    """Longest a request waits for others to join its batch; 0 never waits, merging only the
    requests that queued while the model was busy."""
    cache_size: int = 0
    """Prediction cache entries per model version; 0 turns the cache off."""
    cache_ttl_s: float | None = None
    """Seconds a cached prediction stays valid; none means until evicted."""
    cache_max_bytes: int | None = 64 * 1024 * 1024
    """Bytes of answers (and the replies kept beside them) the prediction cache of one model version may
    hold; none means no byte bound."""
    cache_storage: SecretUrl = "memory://"
    """Where cached predictions are shared: ``memory://`` (each process keeps its own) or
    ``redis://HOST:PORT/DB``, a second tier behind each process's own cache, shared by every worker and
    replica. Only models whose cache is on (``cache_size``) use it."""
    cache_storage_timeout_ms: float = Field(default=5.0, gt=0, le=1000)
    """Milliseconds one call to the shared cache may take; a slower or failed call is a miss, counted in
    ``flaskserve_cache_storage_errors_total``; after three in a row the shared cache is left alone for a
    second."""
    cache_storage_ttl_s: float = Field(default=3600.0, gt=0)
    """Seconds an answer stays in the shared cache."""
    cache_storage_max_entry_bytes: int = Field(default=1024 * 1024, ge=1)
    """Largest answer (encoded) stored in the shared cache; larger ones stay in the process's own."""
    cache_storage_key_prefix: str = "flaskserve"
    """Prefix of the shared cache's keys (``PREFIX:cache:…``), so that several deployments can share one
    Redis."""
    predict_timeout_s: float = Field(default=0.0, ge=0)
    """Seconds a model call may take before its request is answered 504 ``prediction_timeout``; 0 (the
    default) waits as long as the model takes. On, each call is handed to a thread of its own, which
    added 50 to 270 µs to a one-row request (docs/reliability.md), so it is off unless asked for; a
    model's own ``predict_timeout_s`` turns it on for that model alone."""
    fast_lane: bool = True
    """Serve the common prediction request (a POST to a prediction route with a JSON or other
    declared-length body) beside Flask rather than through it: the same key check, limits, protocols,
    metrics, logs and headers, in a fraction of the time. Anything unusual, and every other route, goes
    through Flask; off, every request does (docs/performance.md)."""
    max_stuck_predictions: int = Field(default=2, ge=1)
    """Model calls past ``predict_timeout_s`` still running in one worker before the worker asks to be
    replaced; it stops gracefully, finishing the requests it holds, and the server starts another."""
    watch: bool = False
    """Follow the repository folder while serving: new, changed and removed versions are verified and
    served (or retired) without a restart (docs/operations.md)."""
    watch_interval_s: float = Field(default=2.0, gt=0, le=3600)
    """Seconds between two looks at the repository folder and the key file."""
    drain_delay_s: float = Field(default=0.0, ge=0, le=300)
    """Seconds a server told to stop (``TERM``) goes on serving with readiness at 503 before its graceful
    stop begins, so that load balancers take the replica out first; set it to the time your endpoint
    removal takes to reach every proxy (Kubernetes: a few seconds). 0 (the default) stops at once: a
    server with no load balancer in front gains nothing from waiting (docs/operations.md)."""
    server: Literal["gunicorn", "granian"] = "gunicorn"
    """The WSGI server ``flaskserve serve`` runs: gunicorn, or granian (the ``granian`` extra)."""

    limits: RequestLimits = Field(default_factory=RequestLimits)
    """What one request may cost: ``[limits]`` in the config file."""

    keys_file: Path = Path("flaskserve-keys.json")
    """API key file (``flaskserve keys``); once it holds a key, every route but health checks needs one."""
    insecure: bool = False
    """Serve on a non-loopback address without API keys; refused otherwise, as anyone could call it."""
    tls_certfile: Path | None = None
    """PEM certificate (chain) to serve HTTPS with; needs ``tls_keyfile``."""
    tls_keyfile: Path | None = None
    """PEM private key of ``tls_certfile``."""
    tls_ca_certs: Path | None = None
    """CA certificates that client certificates must be signed by: turns on mutual TLS."""
    tls_self_signed: Path | None = None
    """Directory for a self-signed ``localhost`` certificate, created when missing; for development only."""
    rate_limit: RateLimitText | None = None
    """Requests each client (API key, or address when anonymous) may make per model and route class,
    e.g. ``100/minute`` or ``10/second;500/hour``; none means no limit. Probes and metrics are never
    limited."""
    rate_limit_storage: SecretUrl = "memory://"
    """Where rate-limit counters live: ``memory://`` (each worker counts alone) or ``redis://HOST:PORT/DB``
    (shared by every worker and replica)."""
    rate_limit_fallback: Literal["memory", "refuse"] = "memory"
    """When the rate-limit storage is unreachable: count in this worker's memory until it is back
    (``memory``), or answer 503 (``refuse``)."""
    rate_limit_key_prefix: str = "flaskserve"
    """Prefix of the counters' keys, so that several deployments can share one Redis."""
    trusted_proxies: int = Field(default=0, ge=0)
    """Reverse proxies in front of the server whose ``X-Forwarded-For`` entries are trusted; 0 trusts none."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins whose browser pages may call the API (``*`` for any); empty turns CORS off."""

    inference_log: SecretUrl | None = None
    """Where each prediction's record goes: ``postgresql://…``, ``file://DIR`` or ``http(s)://…``
    (CloudEvents); none turns the inference log off (docs/monitoring.md)."""
    inference_log_queue_size: int = Field(default=10_000, ge=1)
    """Records each worker holds for the inference log's sink; past it, records are dropped and counted."""
    drift_window_s: float = Field(default=900.0, gt=0)
    """Seconds of served rows compared with each model's reference profile (docs/monitoring.md)."""
    drift_window_rows: int | None = Field(default=None, ge=10)
    """When set, the drift window is each model version's last N rows over all workers instead of
    ``drift_window_s`` seconds (docs/monitoring.md)."""
    inference_log_flush_s: float = Field(default=0.5, gt=0)
    """Longest wait before a worker writes the inference log records it holds (or as soon as it holds 500)."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe log lines written: ``debug``, ``info``, ``warning`` or ``error``."""
    log_format: Literal["json", "text", "auto"] = "auto"
    """``auto`` writes text to a terminal and JSON elsewhere."""
    log_access_sample: float = Field(default=1.0, ge=0, le=1)
    """Share of successful (2xx) requests logged (0.1: one in ten, at random); others always are."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_source = InitSettingsSource(settings_cls, init_kwargs=_file_values.get() or {})
        return (init_settings, env_settings, file_source)

    def model_settings(self, name: str) -> ModelSettings:
        return self.models.get(name) or ModelSettings()

    def describe(self) -> dict[str, Any]:
        """The settings in force, as the startup log and ``flaskserve check`` print them.

        Credentials are redacted (:mod:`flaskserve.credentials`): this is meant to be shown.
        """
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class SettingsSource:
    """Where a server's settings came from — its config file and command-line flags — so that a ``HUP``
    reads them again in the same precedence (the environment is the process's own, unchanged)."""

    config_file: Path | None = None
    flags: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Settings:
        return load_settings(self.config_file, **self.flags)


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build settings from the config file, the environment and the flags given (``None`` = not given)."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file '{config_file}': {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file '{config_file}' is not valid TOML: {exc}") from exc
    given = {key: value for key, value in flags.items() if value is not None}
    token = _file_values.set(file_values)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from exc
    finally:
        _file_values.reset(token)


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        problems.append(f"{where}: {error['msg']}")
    return "invalid settings: " + "; ".join(problems)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
