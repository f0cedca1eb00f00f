"""Turn model files into served models: trust check, load, signature, warm-up.

A file is read once: its digest, the trust decision and the model all come from
those bytes (:class:`~flaskserve.models.trust.ModelFile`), so a file replaced while
it loads is either served as the bytes that were judged or refused.

Loading happens once in the server's master process, before gunicorn forks its
workers, so the workers share the models' memory.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

from flaskserve.errors import ConfigError, ModelLoadError, UntrustedModel
from flaskserve.models import policy
from flaskserve.models.loaders import MAX_FEATURES, Loader, LoaderTable
from flaskserve.models.registry import ModelEntry, ModelRegistry, ModelState
from flaskserve.models.repository import ModelSource, scan
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import DEFAULT_MAX_TEXT_BYTES, infer_signature
from flaskserve.models.trust import ModelFile, TrustPolicy
from flaskserve.models.verification import verify
from flaskserve.settings import ModelSettings, Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger("flaskserve.models")


def silence_redundant_warnings() -> None:
    """Rows reach scikit-learn as bare arrays after flaskserve checked them by name.

    scikit-learn then warns, on every call, that the array has no feature names;
    the check it asks for has already been made, so the warning is noise.
    """
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)


def trust_policy(settings: Settings) -> TrustPolicy:
    return TrustPolicy.build(
        allow_pickle=settings.allow_pickle,
        trusted_sha256=settings.trusted_sha256,
        skops_trusted_types=settings.skops_trusted_types,
        allow_code=settings.allow_code,
    )


def settings_for(source: ModelSource, settings: Settings) -> ModelSettings:
    """Settings of one model: its ``model-settings.toml``, overridden by the operator's config."""
    values: dict[str, Any] = {}
    if source.settings_file is not None:
        try:
            values = tomllib.loads(source.settings_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ModelLoadError(
                f"model '{source.name}': its settings file is not valid TOML: {exc}"
            ) from exc
    configured = settings.models.get(source.name)
    if configured is not None:
        values.update(configured.model_dump(exclude_unset=True))
    try:
        return ModelSettings(**values)
    except ValueError as exc:
        raise ModelLoadError(f"model '{source.name}': invalid settings: {exc}") from exc


class LoadObserver(Protocol):
    """What loading reports, for metrics to count; the models layer knows nothing of Prometheus."""

    def model_loaded(self, model: str, version: str, seconds: float) -> None:
        """One model version loaded, was checked and warmed up, in ``seconds``."""

    def model_load_failed(self, model: str, version: str) -> None:
        """One model version failed to load (the error is raised to the caller)."""


def load_model(
    source: ModelSource,
    model_settings: ModelSettings,
    loaders: LoaderTable,
    trust: TrustPolicy,
    observer: LoadObserver | None = None,
    *,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> ServedModel:
    """Load one model version; ``max_text_bytes`` (``limits.max_string_bytes``) bounds each text.

    The time reported to ``observer`` is the model's own: importing its framework comes first and
    is logged apart, as it costs seconds once per process (scikit-learn) and nothing afterwards.
    """
    try:
        import_seconds = import_frameworks(loaders.for_path(source.path))
        started = time.perf_counter()
        model = _load_model(source, model_settings, loaders, trust, max_text_bytes, import_seconds)
    except Exception:
        if observer is not None:
            observer.model_load_failed(source.name, source.version)
        raise
    if observer is not None:
        observer.model_loaded(source.name, source.version, time.perf_counter() - started)
    return model


def _load_model(
    source: ModelSource,
    model_settings: ModelSettings,
    loaders: LoaderTable,
    trust: TrustPolicy,
    max_text_bytes: int,
    import_seconds: float = 0.0,
) -> ServedModel:
    display = f"model '{source.name}' version {source.version} ({source.path.name})"
    started = time.perf_counter()
    loader = loaders.for_path(source.path)
    try:
        file = ModelFile.read(source.path)
    except OSError as exc:
        raise ModelLoadError(f"{display} cannot be read: {exc.strerror or type(exc).__name__}") from exc
    sha256 = file.sha256
    try:
        loaded = loader.load(file, display_name=display, trust=trust)
    except UntrustedModel:
        # Audited with the digest, so the operator can pin exactly this file if it is trusted.
        log.warning(
            "model refused",
            extra={"model": source.name, "version": source.version, "sha256": sha256, "reason": "untrusted"},
        )
        raise
    # The bytes are the loader's business only: let them go before the warm-up.
    del file
    _check_width(loaded.model, display)
    signature = infer_signature(
        loaded.model,
        feature_names=model_settings.features,
        allow_missing=model_settings.allow_missing,
        input_kind=model_settings.input,
        max_text_bytes=max_text_bytes,
    )
    if model_settings.default_method not in signature.methods:
        raise ModelLoadError(
            f"{display}: default_method '{model_settings.default_method}' is not one of its methods "
            f"({', '.join(signature.methods)})"
        )
    model = ServedModel(
        name=source.name,
        version=source.version,
        estimator=loaded.model,
        signature=signature,
        platform=loaded.platform,
        sha256=sha256,
        source=source.path,
        settings=model_settings,
        kernels=loaded.kernels,
    )
    model = _warm_up(model)
    log.info(
        "model loaded",
        extra={
            "model": source.name,
            "version": source.version,
            "sha256": sha256,
            "platform": loaded.platform,
            "features": signature.n_features,
            "load_ms": round((time.perf_counter() - started) * 1000, 1),
            "import_ms": round(import_seconds * 1000, 1),
        },
    )
    return model


def import_frameworks(loader: Loader) -> float:
    """Import the modules a loader names in ``frameworks``, and return the seconds it took.

    Already imported, they cost nothing. One that is missing is left for the loader to
    report, with the install line that brings it.
    """
    started = time.perf_counter()
    for module in getattr(loader, "frameworks", ()):
        try:
            importlib.import_module(module)
        except ImportError:
            break
    return time.perf_counter() - started


def _check_width(model: Any, display: str) -> None:
    """Refuse a model claiming more features than flaskserve serves, before names are made for them."""
    width = getattr(model, "n_features_in_", None)
    try:
        count = None if width is None else int(width)
    except (TypeError, ValueError, OverflowError):
        return  # not a count: signature inference says what is wrong
    if count is not None and count > MAX_FEATURES:
        raise ModelLoadError(
            f"{display} takes {count} features; flaskserve serves models of at most {MAX_FEATURES}"
        )


def _warm_up(model: ServedModel) -> ServedModel:
    """Call the model once on a row of zeros (an empty text), and learn whether it needs a DataFrame.

    A model fit on a DataFrame whose steps select columns by name fails on a bare
    array; it is then fed DataFrames. Any other model gets the faster bare array.

    The call runs with native thread pools held to one thread: it happens in the
    master before gunicorn forks, and a GNU OpenMP pool started in a parent
    (HistGradientBoosting, XGBoost, LightGBM) deadlocks the first parallel call in
    a forked child.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _probe_input_form(model)


def _probe_input_form(model: ServedModel) -> ServedModel:
    probe = model.signature.probe_input()
    try:
        model.call(model.default_method, probe)
        return model
    except Exception as array_error:
        # A text model takes its strings as they are; a DataFrame would not help it.
        if not model.signature.names_given or model.signature.is_text:
            log.warning(
                "warm-up call failed", extra={"model": model.name, "error": type(array_error).__name__}
            )
            return model
    framed = dataclasses.replace(model, wants_dataframe=True)
    try:
        framed.call(model.default_method, probe)
    except ImportError:
        return model
    except Exception as frame_error:
        log.warning("warm-up call failed", extra={"model": model.name, "error": type(frame_error).__name__})
        return model
    return framed


def load_registry(
    settings: Settings, loaders: LoaderTable, observer: LoadObserver | None = None
) -> ModelRegistry:
    """Load every model under ``settings.model_path``; any failure stops the server from starting."""
    if settings.model_path is None:
        raise ConfigError("no model given: pass a model file or a repository folder")
    silence_redundant_warnings()
    registry = ModelRegistry(default_model=settings.default_model)
    sources = _by_policy(scan(settings.model_path, loaders, single_name=settings.model_name), settings)
    trust = trust_policy(settings)
    for source in sources:
        registry.set_entry(ModelEntry(source.name, source.version, ModelState.LOADING))
        model = load_model(
            source,
            settings_for(source, settings),
            loaders,
            trust,
            observer,
            max_text_bytes=settings.limits.max_string_bytes,
        )
        # At start-up there is nothing to replace: only the sample request is checked.
        verify(model, None)
        registry.add(model)
    if settings.default_model is not None and settings.default_model not in registry.names():
        raise ConfigError(
            f"default_model '{settings.default_model}' is not among the served models: "
            f"{', '.join(registry.names())}"
        )
    return registry


def _by_policy(sources: list[ModelSource], settings: Settings) -> list[ModelSource]:
    """The sources each model's version policy serves (all of them unless its settings say otherwise)."""
    by_name: dict[str, list[ModelSource]] = {}
    for source in sources:
        by_name.setdefault(source.name, []).append(source)
    chosen: list[ModelSource] = []
    for versions in by_name.values():
        wanted = set(
            policy.select((s.version for s in versions), settings_for(versions[0], settings).versions)
        )
        chosen.extend(s for s in versions if s.version in wanted)
    return chosen


def repository_root(settings: Settings) -> Path | None:
    path = settings.model_path
    return path.resolve() if path is not None and path.is_dir() else None
