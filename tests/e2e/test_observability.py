"""Metrics and logs of a real two-worker server: sums over workers, request ids end to end."""

from __future__ import annotations

import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from live_server import RunningServer
from metrics_text import labels, samples

pytestmark = pytest.mark.e2e

ROW = {"x": 1.0, "y": 2.0}
OK_LINEAR = labels(model="linear", version="1", protocol="simple", method="predict", status="200")


def _scrape(server: RunningServer) -> str:
    # A new connection, so that either worker may answer.
    return requests.get(server.url + "/metrics", timeout=10, headers={"Connection": "close"}).text


def _count(text: str, name: str, key: frozenset[tuple[str, str]]) -> float:
    return samples(text, name).get(key, 0.0)


def _spread_requests(server: RunningServer, *, minimum: int) -> int:
    """Send predictions until both workers have answered some of them; return how many were sent."""
    tag = uuid.uuid4().hex[:8]

    def predict(number: int) -> requests.Response:
        # A new connection per request, so that either worker may accept it.
        headers = {"Connection": "close", "X-Request-ID": f"{tag}-{number}"}
        return requests.post(server.url + "/models/linear/predict", json=ROW, timeout=10, headers=headers)

    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while True:
            responses = list(pool.map(predict, range(sent, sent + 20)))
            assert [r.status_code for r in responses] == [200] * len(responses)
            sent += len(responses)
            pids = {
                record["pid"]
                for record in server.log_records()
                if record.get("logger") == "flaskserve.access"
                and str(record.get("request_id", "")).startswith(tag)
            }
            if len(pids) == 2 and sent >= minimum:
                return sent
            assert sent < 1000, "gunicorn never gave a request to the second worker"


def test_metrics_sum_requests_over_both_workers(shared_server: RunningServer) -> None:
    before = _scrape(shared_server)
    sent = _spread_requests(shared_server, minimum=40)

    # Whichever worker answers the scrape, it reports every worker's requests.
    for _ in range(6):
        after = _scrape(shared_server)
        for name, key in [
            ("flaskserve_requests_total", OK_LINEAR),
            ("flaskserve_request_duration_seconds_count", labels(model="linear", protocol="simple")),
            (
                "flaskserve_model_inference_seconds_count",
                labels(model="linear", version="1", method="predict"),
            ),
        ]:
            assert _count(after, name, key) - _count(before, name, key) == sent, name
        # Only the scrape itself is in flight.
        assert samples(after, "flaskserve_requests_in_flight")[labels()] == 1


def test_histogram_buckets_are_cumulative_and_end_with_the_count(shared_server: RunningServer) -> None:
    _spread_requests(shared_server, minimum=20)
    text = _scrape(shared_server)
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "flaskserve_request_duration_seconds"
    ]
    linear = [s for s in family.samples if s.labels.get("model") == "linear"]
    buckets = [(float(s.labels["le"]), s.value) for s in linear if s.name.endswith("_bucket")]
    bounds = [bound for bound, _ in buckets]
    counts = [count for _, count in buckets]
    total = next(s.value for s in linear if s.name.endswith("_count"))
    seconds = next(s.value for s in linear if s.name.endswith("_sum"))
    assert bounds == sorted(bounds)
    assert bounds[0] <= 0.001
    assert bounds[-1] == float("inf")
    assert counts == sorted(counts)
    assert counts[-1] == total
    # Predictions on a two-feature linear model take well under a second each.
    assert 0 < seconds < total


def test_unknown_model_names_share_one_label(shared_server: RunningServer) -> None:
    unknown = labels(model="unknown", version="", protocol="simple", method="", status="404")
    before = _count(_scrape(shared_server), "flaskserve_requests_total", unknown)
    for name in ("nope", "also-not-here", "x" * 100):
        assert shared_server.post(f"/models/{name}/predict", json=ROW).status_code == 404
    text = _scrape(shared_server)
    models = {dict(key).get("model") for key in samples(text, "flaskserve_requests_total")}
    assert models.isdisjoint({"nope", "also-not-here", "x" * 100})
    assert _count(text, "flaskserve_requests_total", unknown) - before == 3


def test_every_log_line_is_json_and_carries_the_request_id(shared_server: RunningServer) -> None:
    given = shared_server.post("/predict", json=ROW, headers={"X-Request-ID": "trace-me.42"})
    failed = shared_server.post("/models/exploding/predict", json={"x0": -1.0, "x1": 1.0})
    assert given.headers["X-Request-ID"] == "trace-me.42"
    assert failed.status_code == 500
    assert "Traceback" not in failed.text

    # Every line, gunicorn's included, parses as JSON. A request's access line is its last.
    access = {(r, "flaskserve.access") for r in ("trace-me.42", failed.headers["X-Request-ID"])}
    records = shared_server.log_records_once(
        lambda lines: access <= {(r.get("request_id"), r["logger"]) for r in lines}
    )
    assert any(r["logger"].startswith("gunicorn") for r in records)
    (mine,) = [r for r in records if r.get("request_id") == "trace-me.42"]
    assert (mine["logger"], mine["model"], mine["status"], mine["rows"]) == (
        "flaskserve.access",
        "linear",
        200,
        1,
    )

    of_failure = [r for r in records if r.get("request_id") == failed.headers["X-Request-ID"]]
    assert sorted(r["logger"] for r in of_failure) == ["flaskserve.access", "flaskserve.inference"]
    for record in of_failure:
        assert record["error_id"] == failed.headers["X-Error-Id"]
    (raised,) = [r for r in of_failure if r["logger"] == "flaskserve.inference"]
    assert "negative input reached the model" in raised["traceback"]


def test_a_dead_workers_counts_stay_its_gauges_go_and_the_directory_goes_at_exit(
    server: RunningServer,
) -> None:
    sent = _spread_requests(server, minimum=20)
    (directory,) = server.tmp_dir.glob("flaskserve-metrics-*")
    victim = next(r["pid"] for r in server.log_records() if r["logger"] == "flaskserve.access")
    assert list(directory.glob(f"gauge_livesum_{victim}.db"))

    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while list(directory.glob(f"gauge_livesum_{victim}.db")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(directory.glob(f"gauge_livesum_{victim}.db"))
    assert samples(_scrape(server), "flaskserve_requests_total")[OK_LINEAR] == sent

    assert server.stop() == 0
    assert not directory.exists()
