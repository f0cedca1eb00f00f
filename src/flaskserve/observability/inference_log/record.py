"""One prediction's record, and its JSON form with the model's redactions applied.

A request hands over its facts only (:class:`RequestFacts`: one tuple of what it
already holds — names, status, timings, and the validated matrix and the
model's answers by reference), so that logging costs it an enqueue and nothing
more. The writer's thread builds the :class:`InferenceRecord` from them and
turns it into JSON, with features hashed or dropped.

The arrays are not copied: nothing writes into them once the prediction is
answered. The protocols decode each request into a matrix of its own, the model
(or the batcher, for its slice of a batched call) answers into new arrays, and
the prediction cache keeps a read-only copy of an answer and hands that out.

``inputs`` is a list of rows, each an object by feature name (the simple
protocol's shape); ``outputs`` maps each method asked for to its list of answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["InferenceRecord", "Redaction", "RequestFacts", "redacted_value"]

#: What to do with a feature's values: replace them by a digest, or leave the feature out.
Redaction = Literal["hash", "drop"]


def redacted_value(value: Any) -> str:
    """A stable digest of a value: equal inputs can still be matched, the value itself is not kept."""
    return "sha256:" + hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)).hexdigest()


@dataclass(frozen=True)
class InferenceRecord:
    """What one prediction request was about, asked and answered."""

    time: float
    request_id: str
    model: str
    version: str
    protocol: str
    method: str
    status: int
    latency_ms: float
    key_name: str | None = None
    feature_names: tuple[str, ...] = ()
    inputs: npt.NDArray[Any] | None = None
    outputs: Mapping[str, npt.NDArray[Any]] | None = None
    redactions: Mapping[str, Redaction] = field(default_factory=dict)

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.time, tz=timezone.utc)

    def input_rows(self) -> list[dict[str, Any]] | None:
        """The inputs as rows by feature name, redacted; ``None`` when the request never got that far."""
        if self.inputs is None:
            return None
        matrix = self.inputs if self.inputs.ndim == 2 else self.inputs.reshape(-1, 1)
        names = self.feature_names or tuple(f"x{i}" for i in range(matrix.shape[1]))
        rows = []
        for row in _plain(matrix):
            document: dict[str, Any] = {}
            for name, value in zip(names, row, strict=False):
                action = self.redactions.get(name)
                if action == "drop":
                    continue
                document[name] = redacted_value(value) if action == "hash" else value
            rows.append(document)
        return rows

    def output_lists(self) -> dict[str, Any] | None:
        if self.outputs is None:
            return None
        return {method: _plain(values) for method, values in self.outputs.items()}

    def document(self) -> dict[str, Any]:
        """The whole record as JSON-ready values, as the file sink writes it."""
        return {
            "time": self.timestamp.isoformat(),
            "request_id": self.request_id,
            "model": self.model,
            "version": self.version,
            "protocol": self.protocol,
            "method": self.method,
            "key_name": self.key_name,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "inputs": self.input_rows(),
            "outputs": self.output_lists(),
        }


class RequestFacts(NamedTuple):
    """What a request hands the writer, as it holds it: a tuple is the cheapest thing to make.

    ``inputs`` and ``outputs`` are ``None`` when the request failed before its model
    answered; ``started`` is ``None`` when nothing timed the request.
    """

    time: float
    ended: float
    started: float | None
    request_id: str
    model: str
    version: str | None
    protocol: str
    method: str | None
    status: int
    key_name: str | None
    feature_names: tuple[str, ...]
    inputs: npt.NDArray[Any] | None
    outputs: Mapping[str, npt.NDArray[Any]] | None
    redactions: Mapping[str, Redaction]

    def record(self) -> InferenceRecord:
        """The record of this request; built on the writer's thread."""
        return InferenceRecord(
            time=self.time,
            request_id=self.request_id,
            model=self.model,
            version=self.version or "",
            protocol=self.protocol,
            method=self.method or "",
            status=self.status,
            latency_ms=round((self.ended - self.started) * 1000, 3) if self.started is not None else 0.0,
            key_name=self.key_name,
            feature_names=self.feature_names,
            inputs=self.inputs,
            outputs=self.outputs,
            redactions=self.redactions,
        )


def _plain(values: npt.NDArray[Any]) -> Any:
    """Python values for JSON: NaN becomes null, numpy scalars plain numbers."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        kept: npt.NDArray[Any] = values.astype(object)
        kept[~np.isfinite(values)] = None
        return kept.tolist()
    return values.tolist()
