"""The HTTP sink: each record as two CloudEvents in binary mode, the way KServe's logger sends them.

A request event (``org.kubeflow.serving.inference.request``) carries the inputs
as ``{"instances": [...]}``, a response event
(``org.kubeflow.serving.inference.response``) the outputs as
``{"predictions": [...]}`` (or one list per method when several were asked for);
both share the request id as ``ce-id``, so a sink pairs them as it pairs
KServe's. The context attributes are HTTP headers (``ce-specversion``,
``ce-type``, ``ce-source``, ``ce-id``, ``ce-time``) plus KServe's extensions
``ce-inferenceservicename`` (the model), ``ce-component`` and ``ce-endpoint``;
the data is the body, ``application/json``. A response other than 2xx fails
the batch.
"""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from flaskserve.observability.inference_log.record import InferenceRecord

__all__ = ["REQUEST_EVENT", "RESPONSE_EVENT", "CloudEventsSink", "events"]

REQUEST_EVENT = "org.kubeflow.serving.inference.request"
RESPONSE_EVENT = "org.kubeflow.serving.inference.response"
SOURCE = "flaskserve"
TIMEOUT_S = 5.0


def events(record: InferenceRecord) -> list[tuple[dict[str, str], bytes]]:
    """The request and response events of ``record``: headers and body of each POST."""
    common = {
        "ce-specversion": "1.0",
        "ce-source": f"{SOURCE}/models/{record.model}/versions/{record.version}",
        "ce-id": record.request_id,
        "ce-time": record.timestamp.isoformat().replace("+00:00", "Z"),
        "ce-inferenceservicename": record.model,
        "ce-component": "predictor",
        "ce-endpoint": record.version,
        "content-type": "application/json",
    }
    outputs = record.output_lists()
    predictions: Any = outputs
    if outputs is not None and len(outputs) == 1:
        predictions = next(iter(outputs.values()))
    response: dict[str, Any] = {"predictions": predictions}
    return [
        ({**common, "ce-type": REQUEST_EVENT}, orjson.dumps({"instances": record.input_rows()})),
        ({**common, "ce-type": RESPONSE_EVENT}, orjson.dumps(response)),
    ]


class CloudEventsSink:
    """POSTs events over one kept-alive connection, reopened by the writer after a failure."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname or "localhost"
        connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._connection = connection(host, parts.port, timeout=TIMEOUT_S)

    def write(self, records: Sequence[InferenceRecord]) -> None:
        for record in records:
            for headers, body in events(record):
                self._connection.request("POST", self._path, body=body, headers=headers)
                answer = self._connection.getresponse()
                answer.read()
                if not 200 <= answer.status < 300:
                    raise OSError(f"the event sink answered {answer.status} {answer.reason}")

    def close(self) -> None:
        self._connection.close()
