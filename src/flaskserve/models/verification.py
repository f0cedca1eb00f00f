"""The checks a model version passes before it takes traffic, after it loaded and warmed up.

Two, both from the model's settings (``[verify]`` in its ``model-settings.toml``):

- its **signature** against the version it replaces (the newest one served): a
  difference is logged as a warning every time, and refused when the model asks for
  ``require_same_signature`` (clients built against the old inputs would break);
- a **sample request** (``sample``), which must be answered, and answered with
  ``expected`` within ``tolerance`` when that is given: a model file that loads but
  answers nonsense (a wrong export, a truncated training run) never serves.

A failed check raises :class:`~flaskserve.errors.ModelLoadError`, the error every
other load failure raises, so callers handle one kind of failure.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from flaskserve.errors import FlaskserveError, ModelLoadError
from flaskserve.models.served import ServedModel

__all__ = ["verify"]

log = logging.getLogger("flaskserve.models")


def verify(model: ServedModel, previous: ServedModel | None) -> None:
    """Raise :class:`ModelLoadError` unless ``model`` may replace ``previous`` (``None``: nothing to)."""
    _check_signature(model, previous)
    _check_sample(model)


def _check_signature(model: ServedModel, previous: ServedModel | None) -> None:
    if previous is None:
        return
    before, after = previous.signature.describe(), model.signature.describe()
    if before == after:
        return
    changed = sorted(key for key in after if after[key] != before.get(key))
    refused = model.settings.verify.require_same_signature
    log.warning(
        "MODEL SIGNATURE CHANGED: clients of the version it replaces may break",
        extra={
            "model": model.name,
            "version": model.version,
            "replaces_version": previous.version,
            "changed": changed,
            "refused": refused,
        },
    )
    if refused:
        raise ModelLoadError(
            f"model '{model.name}' version {model.version} changes its signature ({', '.join(changed)}) "
            f"from version {previous.version}, and its settings ask for require_same_signature"
        )


def _check_sample(model: ServedModel) -> None:
    check = model.settings.verify
    if check.sample is None:
        return
    display = f"model '{model.name}' version {model.version}"
    try:
        if all(isinstance(row, dict) for row in check.sample):
            matrix = model.signature.matrix_from_records(check.sample)
        else:
            matrix = model.signature.matrix_from_rows(check.sample)
    except FlaskserveError as exc:
        raise ModelLoadError(f"{display}: its sample request does not fit it: {exc.message}") from exc
    try:
        answer = model.call(model.default_method, matrix)
    except Exception as exc:
        raise ModelLoadError(
            f"{display} failed its sample request: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    if check.expected is not None and not _matches(answer, check.expected, check.tolerance):
        raise ModelLoadError(
            f"{display} answered its sample request with {_shown(answer)}; expected {_shown(check.expected)} "
            f"(tolerance {check.tolerance:g})"
        )


def _matches(answer: np.ndarray[Any, Any], expected: list[Any], tolerance: float) -> bool:
    wanted = np.asarray(expected)
    if wanted.shape != answer.shape:
        return False
    if np.issubdtype(wanted.dtype, np.number) and np.issubdtype(answer.dtype, np.number):
        return bool(np.allclose(answer.astype(float), wanted.astype(float), atol=tolerance, rtol=0))
    return bool(answer.tolist() == wanted.tolist())


def _shown(values: Any) -> str:
    text = str(np.asarray(values).tolist())
    return text if len(text) <= 120 else text[:117] + "..."
