"""The inference log and drift under a real two-worker server, writing to the machine's real PostgreSQL
(and to files, for the window of the last rows and the flush on a graceful stop).

Each test makes a database of its own (dropped at the end) on 127.0.0.1:5432, which
``.ci/services`` starts where none runs. The faults are real: the database is made to
refuse connections and the server's connections are terminated with ``pg_terminate_backend``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import psycopg
import pytest
import requests
from click.testing import CliRunner

from flaskserve import testing
from flaskserve.cli import main
from flaskserve.observability.drift.profile import ReferenceProfile
from flaskserve.observability.drift.statistics import psi
from live_server import RunningServer
from metrics_text import labels, samples

pytestmark = pytest.mark.e2e

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
#: Concurrent clients of the load run, each on fresh connections, so that both workers answer.
THREADS = 8


def admin(statement: str) -> None:
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)


def query(database: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(f"{POSTGRES}/{database}", connect_timeout=5) as connection:
        return connection.execute(statement).fetchall()


@pytest.fixture
def database() -> Iterator[str]:
    name = f"flaskserve_test_{uuid.uuid4().hex[:12]}"
    admin(f"CREATE DATABASE {name}")
    yield name
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def profiled_iris(tmp_path: Path, iris_classifier: Any) -> Path:
    """A repository of iris alone, with its reference profile made from the training data."""
    root = testing.write_repository(tmp_path / "models", {"iris": {"1": (iris_classifier, ".skops")}})
    frame, _ = testing.iris_frame()
    frame.to_csv(tmp_path / "iris.csv", index=False)
    result = CliRunner().invoke(
        main, ["profile", str(root / "iris" / "1" / "model.skops"), "--data", str(tmp_path / "iris.csv")]
    )
    assert result.exit_code == 0, result.output
    return root


def send_rows(server: RunningServer, rows: list[dict[str, float]], tag: str) -> list[int]:
    """One request per row, from several threads on fresh connections, so both workers get some."""

    def predict(number: int) -> int:
        headers = {"Connection": "close", "X-Request-ID": f"{tag}-{number}"}
        response = requests.post(
            server.url + "/models/iris/predict", json=rows[number], timeout=10, headers=headers
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(predict, range(len(rows))))


def workers_that_answered(server: RunningServer, tag: str) -> set[int]:
    """The pids in the tagged requests' access lines, once two workers wrote some (or after a wait)."""

    def pids(records: list[dict[str, Any]]) -> set[int]:
        return {
            record["pid"]
            for record in records
            if record.get("logger") == "flaskserve.access"
            and str(record.get("request_id", "")).startswith(tag)
        }

    return pids(server.log_records_once(lambda records: len(pids(records)) >= 2))


def scrape(server: RunningServer) -> str:
    return requests.get(server.url + "/metrics", timeout=10, headers={"Connection": "close"}).text


def rows_counted(server: RunningServer) -> float:
    """Rows the workers have counted into the drift window (each counts what it holds every half second)."""
    return samples(scrape(server), "flaskserve_drift_rows_counted_total").get(labels(), 0.0)


def wait_until_counted(server: RunningServer, rows: int) -> None:
    """Wait until both workers have counted ``rows`` rows in all: a scrape counts only the answering one's."""
    wait_for(lambda: rows_counted(server) == rows, 10, f"{rows} rows were counted into the drift window")


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s"
        time.sleep(0.2)


def test_every_request_is_logged_once_and_drift_is_summed_over_both_workers(
    start_server: Callable[..., RunningServer], profiled_iris: Path, database: str
) -> None:
    server = start_server(
        "--default-model", "iris", "--inference-log", f"{POSTGRES}/{database}", model_path=profiled_iris
    )
    frame, _ = testing.iris_frame()
    shifted: pd.DataFrame = frame.copy()
    shifted["petal_length"] += 2 * frame["petal_length"].std()
    tag = uuid.uuid4().hex[:8]

    statuses = send_rows(server, shifted.to_dict("records"), tag)

    assert statuses == [200] * len(frame)
    assert len(workers_that_answered(server, tag)) == 2
    wait_until_counted(server, len(frame))
    text = scrape(server)
    assert samples(text, "flaskserve_drift_window_rows") == {labels(model="iris", version="1"): len(frame)}
    psi = {
        dict(key)["feature"]: value
        for key, value in samples(text, "flaskserve_feature_drift_psi").items()
        if dict(key)["role"] == "input"
    }
    assert psi["petal_length"] > 0.25
    # The other features are the training data itself, summed exactly over both workers.
    assert [psi[name] for name in ("sepal_length", "sepal_width", "petal_width")] == pytest.approx(
        [0.0, 0.0, 0.0], abs=1e-12
    )
    assert server.get("/models/iris/monitoring").json()["versions"][0]["window_rows"] == len(frame)

    assert server.stop() == 0  # a graceful stop flushes what the workers still hold
    logged = query(database, "SELECT request_id, model, status, inputs FROM inference_log")
    assert sorted(row[0] for row in logged) == sorted(f"{tag}-{n}" for n in range(len(frame)))
    assert {(row[1], row[2]) for row in logged} == {("iris", 200)}
    by_id = {row[0]: row[3] for row in logged}
    assert by_id[f"{tag}-0"] == [pytest.approx(shifted.iloc[0].to_dict())]
    assert query(database, "SELECT count(*) FROM pg_indexes WHERE tablename = 'inference_log'") == [(2,)]


def test_requests_stay_answered_while_the_database_refuses_and_logging_resumes_when_it_is_back(
    start_server: Callable[..., RunningServer], profiled_iris: Path, database: str
) -> None:
    server = start_server(
        "--default-model", "iris", "--inference-log", f"{POSTGRES}/{database}", model_path=profiled_iris
    )
    frame, _ = testing.iris_frame()
    rows = frame.iloc[:10].to_dict("records")

    def logged(tag: str) -> int:
        try:
            found = query(database, f"SELECT count(*) FROM inference_log WHERE request_id LIKE '{tag}-%'")
        except psycopg.errors.UndefinedTable:  # the first batch creates it
            return 0
        return int(found[0][0])

    def dropped() -> float:
        found = samples(scrape(server), "flaskserve_inference_log_dropped_total")
        return found.get(labels(reason="sink_error"), 0.0)

    before = uuid.uuid4().hex[:8]
    assert send_rows(server, rows, before) == [200] * len(rows)
    wait_for(lambda: logged(before) == len(rows), 10, "the first requests were logged")

    admin(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
    admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    during = uuid.uuid4().hex[:8]
    started = time.monotonic()
    assert send_rows(server, rows * 3, during) == [200] * len(rows) * 3
    assert time.monotonic() - started < 10
    wait_for(lambda: dropped() > 0, 15, "records were dropped and counted while the database refused")

    admin(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    after = uuid.uuid4().hex[:8]
    deadline = time.monotonic() + 20
    sent = 0
    # Keep predicting until the writers have reconnected (their pause grows to 5 s) and logged one.
    while logged(after) == 0:
        assert time.monotonic() < deadline, "logging did not resume once the database was back"
        assert send_rows(server, rows[:2], f"{after}-{sent}") == [200, 200]
        sent += 1
        time.sleep(0.5)


def test_a_window_of_the_last_rows_is_exact_across_workers_and_a_graceful_stop_flushes_the_log(
    start_server: Callable[..., RunningServer], profiled_iris: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "inference-log"
    server = start_server(
        "--default-model",
        "iris",
        "--inference-log",
        f"file://{sink}",
        model_path=profiled_iris,
        # Slots of 4 rows; and records are written only when a worker holds 500 of them, or stops.
        env={"FLASKSERVE_DRIFT_WINDOW_ROWS": "40", "FLASKSERVE_INFERENCE_LOG_FLUSH_S": "600"},
    )
    frame, _ = testing.iris_frame()
    training = frame.sample(40, random_state=1)
    shifted: pd.DataFrame = frame.sample(36, random_state=0).reset_index(drop=True)
    shifted["petal_length"] += 2 * frame["petal_length"].std()

    assert send_rows(server, training.to_dict("records"), "training") == [200] * 40
    wait_until_counted(server, 40)
    # 40 rows: the window is slots 1 to 10, rows 4 to 39, whichever worker counted them. The shifted
    # rows are sent once every training row is counted, so they take positions 40 to 75.
    assert server.get("/models/iris/monitoring").json()["versions"][0]["window_rows"] == 36
    assert send_rows(server, shifted.to_dict("records"), "shifted") == [200] * 36
    assert len(workers_that_answered(server, "shifted")) == 2
    wait_until_counted(server, 76)

    # 76 rows: slots 10 to 19, rows 40 to 75, that is the 36 shifted rows and nothing else.
    answer = server.get("/models/iris/monitoring").json()
    assert answer["window_last_rows"] == 40
    assert answer["versions"][0]["window_rows"] == 36
    reference = ReferenceProfile.read_beside(profiled_iris / "iris" / "1" / "model.skops")
    assert reference is not None
    expected = {
        f.name: psi(f.proportions, f.count(shifted[f.name].to_numpy())[0]) for f in reference.features
    }
    served = {
        dict(key)["feature"]: value
        for key, value in samples(scrape(server), "flaskserve_feature_drift_psi").items()
        if dict(key)["role"] == "input"
    }
    assert served == pytest.approx(expected, rel=1e-9)
    assert served["petal_length"] > 0.25

    assert sum(len(path.read_bytes()) for path in sink.glob("*.jsonl")) == 0  # all still queued
    assert server.stop() == 0
    files = list(sink.glob("inference-*.jsonl"))
    assert len(files) == 2  # one per worker
    logged = [orjson.loads(line)["request_id"] for path in files for line in path.read_bytes().splitlines()]
    expected_ids = [f"training-{n}" for n in range(40)] + [f"shifted-{n}" for n in range(36)]
    assert sorted(logged) == sorted(expected_ids)


def test_a_graceful_stop_under_granian_writes_every_queued_record(
    start_server: Callable[..., RunningServer], profiled_iris: Path, tmp_path: Path
) -> None:
    """granian's workers leave through ``os._exit``: the writer flushes before that, not at exit."""
    sink = tmp_path / "inference-log"
    server = start_server(
        "--server",
        "granian",
        "--default-model",
        "iris",
        "--inference-log",
        f"file://{sink}",
        model_path=profiled_iris,
        # Nothing is written before the stop: every record must come from the flush at exit.
        env={"FLASKSERVE_INFERENCE_LOG_FLUSH_S": "600"},
    )
    frame, _ = testing.iris_frame()
    rows = frame.sample(20, random_state=2).to_dict("records")

    assert send_rows(server, rows, "granian") == [200] * 20
    assert server.stop() == 0
    logged = [
        orjson.loads(line)["request_id"]
        for path in sink.glob("inference-*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    assert sorted(logged) == sorted(f"granian-{n}" for n in range(20))
