"""The inference log in-process: records, redaction, the file and CloudEvents sinks, drops and recovery.

The PostgreSQL sink under a real two-worker server is in tests/e2e/test_inference_log_postgres.py.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from flask import Flask

from flaskserve.app import create_app
from flaskserve.errors import ConfigError
from flaskserve.observability.inference_log.record import InferenceRecord, RequestFacts, redacted_value
from flaskserve.observability.inference_log.sinks.cloudevents import REQUEST_EVENT, RESPONSE_EVENT
from flaskserve.observability.inference_log.writer import LogWriter
from flaskserve.observability.monitoring import Monitoring
from flaskserve.settings import Settings
from live_server import served_in_thread
from metrics_text import labels, samples

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def read_lines(directory: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.iterdir()):
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines.extend(orjson.loads(line) for line in raw.splitlines())
    return lines


def logged_app(make_settings: Callable[..., Settings], url: str, **models: Any) -> Flask:
    return create_app(make_settings(inference_log=url, models=models))


def test_each_prediction_is_written_once_with_its_inputs_and_outputs(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = logged_app(make_settings, f"file://{tmp_path / 'log'}")
    client = app.test_client()
    answer = client.post("/models/iris/predict", json=IRIS_ROW, headers={"X-Request-ID": "req-1"})
    assert answer.status_code == 200
    refused = client.post("/models/iris/predict", json={"sepal_length": 1}, headers={"X-Request-ID": "req-2"})
    assert refused.status_code == 400
    client.get("/v2/health/ready")
    Monitoring.flush(app)

    first, second = read_lines(tmp_path / "log")
    assert first["request_id"] == "req-1"
    assert (first["model"], first["version"], first["protocol"], first["method"]) == (
        "iris",
        "2",
        "simple",
        "predict",
    )
    assert first["status"] == 200
    assert first["latency_ms"] > 0
    assert first["inputs"] == [IRIS_ROW]
    assert first["outputs"] == {"predict": [answer.json["prediction"]]}
    # A request refused after its model was found is logged too, without inputs or outputs.
    assert (second["request_id"], second["status"], second["inputs"], second["outputs"]) == (
        "req-2",
        400,
        None,
        None,
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert samples(text, "flaskserve_inference_log_written_total") == {labels(): 2.0}


def test_named_features_are_hashed_or_dropped(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    app = logged_app(
        make_settings,
        f"file://{tmp_path / 'log'}",
        iris={"log_redact": {"sepal_width": "hash", "petal_width": "drop"}},
    )
    assert app.test_client().post("/models/iris/predict", json=IRIS_ROW).status_code == 200
    Monitoring.flush(app)

    (line,) = read_lines(tmp_path / "log")
    assert line["inputs"] == [{"sepal_length": 5.1, "sepal_width": redacted_value(3.5), "petal_length": 1.4}]
    assert "3.5" not in orjson.dumps(line).decode()


def test_a_sample_rate_of_zero_logs_nothing(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    app = logged_app(make_settings, f"file://{tmp_path / 'log'}", iris={"log_sample_rate": 0.0})
    client = app.test_client()
    for _ in range(5):
        assert client.post("/models/iris/predict", json=IRIS_ROW).status_code == 200
    assert client.post("/models/linear/predict", json={"x": 1, "y": 2}).status_code == 200
    Monitoring.flush(app)
    assert [line["model"] for line in read_lines(tmp_path / "log")] == ["linear"]


def test_files_are_rotated_by_size_and_gzipped(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = logged_app(make_settings, f"file://{tmp_path / 'log'}?max_bytes=1000&gzip=1")
    client = app.test_client()
    for number in range(30):
        response = client.post("/models/iris/predict", json=IRIS_ROW, headers={"X-Request-ID": f"r{number}"})
        assert response.status_code == 200
    Monitoring.flush(app)

    rotated = sorted(p.name for p in (tmp_path / "log").glob("*.jsonl.gz"))
    assert rotated
    assert all(path.stat().st_size < 2000 for path in (tmp_path / "log").glob("*.jsonl"))
    assert sorted(line["request_id"] for line in read_lines(tmp_path / "log")) == sorted(
        f"r{number}" for number in range(30)
    )


def test_an_unknown_scheme_is_refused_at_start(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="unknown scheme 'ftp://'"):
        create_app(make_settings(inference_log="ftp://example.com/"))


@pytest.fixture
def event_sink() -> Iterator[tuple[str, list[tuple[dict[str, str], Any]]]]:
    """A real HTTP server that keeps every event posted to it."""
    received: list[tuple[dict[str, str], Any]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_CE_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        received.append((headers, orjson.loads(body)))
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]

    with served_in_thread(app) as address:
        yield f"http://{address}/events", received


def test_cloudevents_are_sent_in_binary_mode_as_kserve_sends_them(
    make_settings: Callable[..., Settings], event_sink: tuple[str, list[tuple[dict[str, str], Any]]]
) -> None:
    url, received = event_sink
    app = logged_app(make_settings, url)
    answer = app.test_client().post("/models/iris/predict", json=IRIS_ROW, headers={"X-Request-ID": "ev-1"})
    assert answer.status_code == 200
    Monitoring.flush(app)

    (request_headers, request_body), (response_headers, response_body) = received
    assert request_headers["ce-type"] == REQUEST_EVENT
    assert response_headers["ce-type"] == RESPONSE_EVENT
    assert request_headers["ce-id"] == response_headers["ce-id"] == "ev-1"
    assert request_headers["ce-specversion"] == "1.0"
    assert request_headers["ce-inferenceservicename"] == "iris"
    assert request_headers["content-type"] == "application/json"
    assert request_body == {"instances": [IRIS_ROW]}
    assert response_body == {"predictions": [answer.json["prediction"]]}


def record(number: int) -> InferenceRecord:
    return InferenceRecord(
        time=time.time(),
        request_id=str(number),
        model="m",
        version="1",
        protocol="simple",
        method="predict",
        status=200,
        latency_ms=1.0,
    )


class FlakySink:
    """Refuses while ``down`` is set, like a database that is not there; keeps what it is given."""

    down = threading.Event()
    kept: list[str] = []

    def write(self, records: Sequence[InferenceRecord]) -> None:
        if self.down.is_set():
            raise ConnectionRefusedError("connection refused")
        self.kept.extend(r.request_id for r in records)

    def close(self) -> None:
        pass


def test_a_sink_that_is_down_drops_and_counts_then_writing_resumes() -> None:
    drops: dict[str, int] = {}
    FlakySink.down.set()
    FlakySink.kept = []
    writer = LogWriter(
        FlakySink,
        dropped=lambda reason, n: drops.__setitem__(reason, drops.get(reason, 0) + n),
        written=lambda n: None,
        flush_interval_s=0.05,
    )
    for number in range(3):
        writer.submit(record(number))
    deadline = time.monotonic() + 5
    while drops.get("sink_error", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert drops == {"sink_error": 3}

    FlakySink.down.clear()
    writer.submit(record(99))
    writer.close()
    assert FlakySink.kept == ["99"]


def test_a_full_queue_drops_instead_of_waiting() -> None:
    release = threading.Event()

    class StuckSink:
        def write(self, records: Sequence[InferenceRecord]) -> None:
            release.wait(5)

        def close(self) -> None:
            pass

    drops: dict[str, int] = {}
    writer = LogWriter(
        StuckSink,
        dropped=lambda reason, n: drops.__setitem__(reason, drops.get(reason, 0) + n),
        written=lambda n: None,
        queue_size=10,
        batch_size=1,
        flush_interval_s=0.01,
    )
    started = time.monotonic()
    for number in range(100):
        writer.submit(record(number))
    assert time.monotonic() - started < 1.0
    release.set()
    writer.close()
    # One batch is held by the stuck sink, ten wait in the queue, the rest are dropped.
    assert 100 - 11 <= drops["queue_full"] <= 100 - 10


class KeepingSink:
    """Keeps every record it is given, and the thread that gave it."""

    def __init__(self) -> None:
        self.records: list[InferenceRecord] = []
        self.threads: set[str] = set()

    def write(self, records: Sequence[InferenceRecord]) -> None:
        self.threads.add(threading.current_thread().name)
        self.records.extend(records)

    def close(self) -> None:
        pass


MATRIX = np.array([[5.1, 3.5], [np.nan, 3.0]])
ANSWERS = {"predict": np.array([0, 2]), "predict_proba": np.array([[0.9, 0.1], [0.2, 0.8]])}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        pytest.param(
            RequestFacts(
                time=1_700_000_000.25,
                ended=10.0123456,
                started=10.0,
                request_id="req-1",
                model="iris",
                version="2",
                protocol="simple",
                method="predict",
                status=200,
                key_name="reader",
                feature_names=("sepal_length", "sepal_width"),
                inputs=MATRIX,
                outputs=ANSWERS,
                redactions={"sepal_width": "hash"},
            ),
            InferenceRecord(
                time=1_700_000_000.25,
                request_id="req-1",
                model="iris",
                version="2",
                protocol="simple",
                method="predict",
                status=200,
                latency_ms=round((10.0123456 - 10.0) * 1000, 3),
                key_name="reader",
                feature_names=("sepal_length", "sepal_width"),
                inputs=MATRIX,
                outputs=ANSWERS,
                redactions={"sepal_width": "hash"},
            ),
            id="an answered prediction, its arrays by reference and its redactions",
        ),
        pytest.param(
            RequestFacts(
                time=1_700_000_001.5,
                ended=3.25,
                started=3.0,
                request_id="req-2",
                model="iris",
                version=None,
                protocol="v2",
                method=None,
                status=400,
                key_name=None,
                feature_names=(),
                inputs=None,
                outputs=None,
                redactions={},
            ),
            InferenceRecord(
                time=1_700_000_001.5,
                request_id="req-2",
                model="iris",
                version="",
                protocol="v2",
                method="",
                status=400,
                latency_ms=250.0,
            ),
            id="a request refused before its version and method were known",
        ),
        pytest.param(
            RequestFacts(
                time=1_700_000_002.0,
                ended=7.5,
                started=None,
                request_id="",
                model="linear",
                version="1",
                protocol="simple",
                method="predict",
                status=500,
                key_name=None,
                feature_names=(),
                inputs=None,
                outputs=None,
                redactions={},
            ),
            InferenceRecord(
                time=1_700_000_002.0,
                request_id="",
                model="linear",
                version="1",
                protocol="simple",
                method="predict",
                status=500,
                latency_ms=0.0,
            ),
            id="a request nothing timed",
        ),
    ],
)
def test_the_writer_builds_the_record_the_request_would_have_built(
    facts: RequestFacts, expected: InferenceRecord
) -> None:
    sink = KeepingSink()
    writer = LogWriter(lambda: sink, dropped=lambda reason, n: None, written=lambda n: None)
    writer.submit(facts)
    writer.close()

    (built,) = sink.records
    assert sink.threads == {"flaskserve-inference-log"}
    assert built == expected
    # Every sink serialises the record through these: the same record, the same bytes.
    assert orjson.dumps(built.document()) == orjson.dumps(expected.document())
    assert built.inputs is facts.inputs
    assert built.outputs is facts.outputs


def test_a_whole_batch_is_written_without_waiting_for_the_interval() -> None:
    sink = KeepingSink()
    writer = LogWriter(
        lambda: sink,
        dropped=lambda reason, n: None,
        written=lambda n: None,
        batch_size=3,
        flush_interval_s=600,
    )
    for number in range(3):
        writer.submit(record(number))
    # Long before the interval is up, and with nothing closing the writer.
    deadline = time.monotonic() + 5
    while len(sink.records) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.request_id for r in sink.records] == ["0", "1", "2"]

    writer.submit(record(3))
    writer.close()
    assert [r.request_id for r in sink.records] == ["0", "1", "2", "3"]
