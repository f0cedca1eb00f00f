"""The hot path: call a served model on a validated matrix, isolating its failures.

Everything here takes plain arguments (a model, a method name, a matrix) so that
any protocol, the batcher and the cache compose around the same call. A model
that raises fails only the request(s) it was called for: the exception is
logged with an error id, and the client receives that id, never the traceback.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from flaskserve.errors import FlaskserveError, LimitExceeded, PredictionFailed
from flaskserve.inference.observer import InferenceObserver, NullObserver
from flaskserve.models.served import ServedModel

log = logging.getLogger("flaskserve.inference")


@dataclass(frozen=True)
class Prediction:
    """A model's answer for the rows of one request."""

    values: npt.NDArray[Any]
    cache_hit: bool = False
    #: Rows in the model call that produced this answer (more than the request's when batched).
    batch_rows: int = 0


def call_isolated(
    model: ServedModel, method: str, matrix: npt.NDArray[Any], observer: InferenceObserver | None = None
) -> npt.NDArray[Any]:
    """Call the model; turn any exception it raises into a :class:`PredictionFailed` with an error id."""
    started = time.perf_counter()
    try:
        values = model.call(method, matrix)
    except FlaskserveError:
        raise
    except Exception:
        error_id = uuid.uuid4().hex[:16]
        log.exception(
            "model raised",
            extra={"error_id": error_id, "model": model.name, "version": model.version, "method": method},
        )
        raise PredictionFailed(
            f"model '{model.name}' failed on this input (error id {error_id})", error_id=error_id
        ) from None
    finally:
        if observer is not None:
            observer.model_called(
                model.name, model.version, method, int(matrix.shape[0]), time.perf_counter() - started
            )
    if values.ndim == 0 or values.shape[0] != matrix.shape[0]:
        error_id = uuid.uuid4().hex[:16]
        log.error(
            "model returned a wrong number of rows",
            extra={"error_id": error_id, "model": model.name, "rows_in": matrix.shape[0]},
        )
        raise PredictionFailed(
            f"model '{model.name}' returned an answer of the wrong length (error id {error_id})",
            error_id=error_id,
        )
    return values


class InferenceService:
    """Runs predictions for every protocol; one per app."""

    def __init__(self, *, max_rows: int, observer: InferenceObserver | None = None) -> None:
        self.max_rows = max_rows
        self.observer: InferenceObserver = observer or NullObserver()

    def predict(self, model: ServedModel, method: str, matrix: npt.NDArray[Any]) -> Prediction:
        model.check_method(method)
        rows = int(matrix.shape[0])
        if rows > self.max_rows:
            raise LimitExceeded(
                f"the request has {rows} rows; at most {self.max_rows} are accepted per request"
            )
        values = call_isolated(model, method, matrix, self.observer)
        return Prediction(values=values, batch_rows=rows)
