"""The prediction lane answers as Flask does: the same statuses, headers, bodies, metrics and access lines.

Two apps are built from the same settings but ``fast_lane``; each request below
goes to both, and everything a client or an operator sees must match but the
request id and the timing. The requests cover what the lane serves itself and
what it hands to Flask, so a policy that one path forgets shows up as a difference.
"""

from __future__ import annotations

import logging
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from flaskserve.app import create_app
from flaskserve.security.keys import KeyStore
from flaskserve.settings import Settings

#: Access-line fields that differ between any two requests, whichever path served them.
_UNSTABLE_FIELDS = ("request_id", "latency_ms", "error_id")
_ACCESS_FIELDS = (
    "request_id",
    "client",
    "http_method",
    "path",
    "route",
    "protocol",
    "model",
    "version",
    "method",
    "status",
    "rows",
    "latency_ms",
    "cache_hit",
    "batch_rows",
    "error_id",
)
_STABLE_FIELDS = tuple(name for name in _ACCESS_FIELDS if name not in _UNSTABLE_FIELDS)
_ERROR_ID = re.compile(r"[0-9a-f]{16}")
JSON = "application/json"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@dataclass(frozen=True)
class Call:
    path: str
    json: Any = None
    data: bytes | str | None = None
    content_type: str | None = None
    key: str | None = "predict"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Keys:
    file: Path
    by_name: dict[str, str]


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    store = KeyStore.load(tmp_path / "keys.json")
    by_name = {
        "predict": store.create("predict", ["predict"]),
        "iris-only": store.create("iris-only", ["predict:iris"]),
        "reader": store.create("reader", ["read", "metrics"]),
    }
    store.save()
    return Keys(tmp_path / "keys.json", by_name)


@pytest.fixture
def pair(make_settings: Callable[..., Settings], keys: Keys) -> Callable[..., tuple[Flask, Flask]]:
    """Two apps built from ``overrides``, with the lane and without.

    Each counts rate limits in counters of its own, also in a shared storage: with a
    ``rate_limit_key_prefix``, the lane's app counts under ``PREFIX-lane``, the other
    under ``PREFIX-flask``, so that both start from the same fresh counters.
    """

    def build(**overrides: Any) -> tuple[Flask, Flask]:
        common: dict[str, Any] = {"keys_file": keys.file, "cache_size": 16, **overrides}
        apps = []
        for on, path in ((True, "lane"), (False, "flask")):
            own = dict(common)
            if "rate_limit_key_prefix" in own:
                own["rate_limit_key_prefix"] = f"{own['rate_limit_key_prefix']}-{path}"
            apps.append(create_app(make_settings(fast_lane=on, **own)))
        return apps[0], apps[1]

    return build


@pytest.fixture
def access_lines(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    with caplog.at_level(logging.INFO, logger="flaskserve.access"):
        yield caplog.records


def _send(app: Flask, call: Call, keys: Keys) -> tuple[int, list[tuple[str, str]], str]:
    headers = dict(call.headers)
    if call.key is not None:
        headers["Authorization"] = f"Bearer {keys.by_name.get(call.key, call.key)}"
    response = app.test_client().post(
        call.path, json=call.json, data=call.data, content_type=call.content_type, headers=headers
    )
    shown = sorted(
        (name, _ERROR_ID.sub("<id>", value))
        for name, value in response.headers.items()
        if name not in ("Date", "X-Request-ID") or call.headers.get(name)
    )
    return response.status_code, shown, _ERROR_ID.sub("<id>", response.get_data(as_text=True))


def _access(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    lines = [r for r in records if r.name == "flaskserve.access"]
    return [
        {
            name: getattr(r, name)
            for name in _ACCESS_FIELDS
            if name not in _UNSTABLE_FIELDS and hasattr(r, name)
        }
        | {"level": r.levelname}
        for r in lines
    ]


def _counts(app: Flask, keys: Keys) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every counter and histogram count of ``/metrics``: what does not depend on timing."""
    text = app.test_client().get("/metrics", headers={"X-API-Key": keys.by_name["reader"]}).get_data(True)
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "histogram"):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_total", "_count")):
                found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


CALLS = [
    pytest.param(Call("/predict", json={"x": 1, "y": 2}), id="one row"),
    pytest.param(Call("/predict", json={"x": 1, "y": 2}), id="one row again: a cache hit"),
    pytest.param(Call("/predict", json=[{"x": 1, "y": 2}, {"x": 3, "y": 4}]), id="two rows"),
    pytest.param(
        Call("/predict", json={"x": 1, "y": 2}, headers={"X-Request-ID": "client-chosen.1"}),
        id="client request id",
    ),
    pytest.param(Call("/models/linear/predict", json={"instances": [[1, 2]]}), id="named model"),
    pytest.param(Call("/models/iris/versions/2/predict", json={"instances": [IRIS_ROW]}), id="versioned"),
    pytest.param(Call("/models/linear/explain", json={"x": 1, "y": 2}), id="explain"),
    pytest.param(
        Call(
            "/v2/models/iris/versions/1/infer",
            json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]},
        ),
        id="v2 versioned",
    ),
    pytest.param(
        Call(
            "/v2/models/linear/infer",
            json={"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]},
        ),
        id="v2",
    ),
    pytest.param(Call("/v1/models/linear:predict", json={"instances": [[1, 2]]}), id="v1"),
    pytest.param(
        Call("/v1/models/iris/versions/1:predict", json={"instances": [IRIS_ROW]}), id="v1 versioned"
    ),
    pytest.param(
        Call("/invocations", json={"instances": [[1, 2]]}, headers={"X-Model-Name": "linear"}), id="mlflow"
    ),
    pytest.param(Call("/invocations", data="x,y\n1,2\n", content_type="text/csv"), id="mlflow csv"),
    pytest.param(Call("/predict", data="{not json", content_type="application/json"), id="bad json"),
    pytest.param(Call("/predict", data="x=1", content_type="text/plain"), id="wrong media type"),
    pytest.param(
        Call("/predict", data=b"[" + b"1," * 3000 + b"1]", content_type="application/json"), id="too large"
    ),
    pytest.param(Call("/predict", data=b"", content_type="application/json"), id="empty body"),
    pytest.param(Call("/models/nope/predict", json={"x": 1, "y": 2}), id="unknown model"),
    pytest.param(
        Call("/models/iris/versions/9/predict", json={"instances": [IRIS_ROW]}), id="unknown version"
    ),
    pytest.param(Call("/models/exploding/predict", json={"instances": [[-1, 2]]}), id="model raises"),
    pytest.param(Call("/predict", json={"x": 1, "y": 2}, key=None), id="no key"),
    pytest.param(Call("/predict", json={"x": 1, "y": 2}, key="not-a-key"), id="wrong key"),
    pytest.param(Call("/predict", json={"x": 1, "y": 2}, key="iris-only"), id="key for another model"),
    pytest.param(
        Call("/models/iris/predict", json={"instances": [IRIS_ROW]}, key="iris-only"), id="key for it"
    ),
    pytest.param(Call("/predict", json={"x": 1, "y": 2}, key="reader"), id="key without predict scope"),
    pytest.param(Call("/predict?verbose=1", json={"x": 1, "y": 2}), id="query string: Flask's"),
    pytest.param(Call("/predict/", json={"x": 1, "y": 2}), id="trailing slash: Flask's"),
    pytest.param(Call("/v2/repository/index", json={}, key="reader"), id="not a prediction route"),
]


@pytest.mark.parametrize("call", CALLS)
def test_each_request_is_answered_and_recorded_the_same_by_both_paths(
    pair: Callable[..., tuple[Flask, Flask]],
    keys: Keys,
    access_lines: list[logging.LogRecord],
    call: Call,
) -> None:
    lane, flask = pair(limits={"max_body_bytes": 4096})
    # Twice each, so that a cached answer is compared too.
    first = [_send(lane, call, keys), _send(lane, call, keys)]
    lane_lines = _access(access_lines)
    access_lines.clear()
    second = [_send(flask, call, keys), _send(flask, call, keys)]

    assert first == second
    assert lane_lines == _access(access_lines)
    assert _counts(lane, keys) == _counts(flask, keys)


def test_every_call_above_meets_both_paths(pair: Callable[..., tuple[Flask, Flask]], keys: Keys) -> None:
    """The varied set is varied: answers from 200 through 401, 403, 404, 413, 415 and 500."""
    lane, _ = pair(limits={"max_body_bytes": 4096})
    statuses = {_send(lane, param.values[0], keys)[0] for param in CALLS}  # type: ignore[arg-type]

    assert {200, 400, 401, 403, 404, 413, 415, 500} <= statuses


def test_rate_limited_requests_are_answered_the_same(
    pair: Callable[..., tuple[Flask, Flask]], keys: Keys
) -> None:
    lane, flask = pair(rate_limit="2/minute")
    call = Call("/predict", json={"x": 1, "y": 2})

    answers = [[_send(app, call, keys) for _ in range(3)] for app in (lane, flask)]

    assert [status for status, _, _ in answers[0]] == [200, 200, 429]
    assert answers[0] == answers[1]


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test uses in the machine's Redis; its counters are deleted afterwards."""
    prefix = f"lane-parity-{uuid.uuid4().hex}"
    yield prefix
    store = redis.Redis.from_url(REDIS_URL)
    for key in store.scan_iter(match=f"*{prefix}*"):
        store.delete(key)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _answers(app: Flask, calls: list[Call], keys: Keys) -> list[tuple[int, list[tuple[str, str]], str]]:
    return [_send(app, call, keys) for call in calls]


ONE_ROW = Call("/predict", json={"x": 1, "y": 2})
IRIS = Call("/models/iris/predict", json={"instances": [IRIS_ROW]})


def test_rate_limits_counted_in_redis_are_answered_the_same(
    pair: Callable[..., tuple[Flask, Flask]],
    keys: Keys,
    access_lines: list[logging.LogRecord],
    redis_prefix: str,
) -> None:
    lane, flask = pair(
        rate_limit="2/minute", rate_limit_storage=REDIS_URL, rate_limit_key_prefix=redis_prefix
    )
    calls = [ONE_ROW, ONE_ROW, ONE_ROW, IRIS, Call("/predict", json={"x": 1, "y": 2}, key="iris-only")]

    answers = _answers(lane, calls, keys)
    lane_lines = _access(access_lines)
    access_lines.clear()

    assert [status for status, _, _ in answers] == [200, 200, 429, 200, 403]
    assert answers == _answers(flask, calls, keys)
    assert lane_lines == _access(access_lines)
    assert _counts(lane, keys) == _counts(flask, keys)
    counters = redis.Redis.from_url(REDIS_URL).keys(f"*{redis_prefix}-lane*")
    assert len(counters) == 2, "one counter per model for the key"


def test_each_key_and_each_model_limit_are_counted_the_same(
    pair: Callable[..., tuple[Flask, Flask]], keys: Keys
) -> None:
    lane, flask = pair(rate_limit="3/minute", models={"iris": {"rate_limit": "1/minute"}})
    calls = [IRIS, IRIS, Call("/models/iris/predict", json={"instances": [IRIS_ROW]}, key="iris-only")]
    calls += [ONE_ROW] * 4

    answers = _answers(lane, calls, keys)

    assert [status for status, _, _ in answers] == [200, 429, 200, 200, 200, 200, 429]
    assert answers == _answers(flask, calls, keys)


@pytest.mark.parametrize(
    ("fallback", "statuses"),
    [
        pytest.param("memory", [200, 200, 429], id="counted in memory"),
        pytest.param("refuse", [503, 503, 503], id="refused"),
    ],
)
def test_unreachable_counters_are_answered_the_same(
    pair: Callable[..., tuple[Flask, Flask]], keys: Keys, fallback: str, statuses: list[int]
) -> None:
    lane, flask = pair(
        rate_limit="2/minute",
        rate_limit_storage=f"redis://127.0.0.1:{_closed_port()}/0",
        rate_limit_fallback=fallback,
    )

    answers = _answers(lane, [ONE_ROW] * 3, keys)

    assert [status for status, _, _ in answers] == statuses
    assert answers == _answers(flask, [ONE_ROW] * 3, keys)


SITE = "https://app.example"


@pytest.mark.parametrize("origins", [[SITE], ["*"]], ids=["one origin", "any origin"])
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(Call("/predict", json={"x": 1, "y": 2}, headers={"Origin": SITE}), id="allowed"),
        pytest.param(
            Call("/predict", json={"x": 1, "y": 2}, headers={"Origin": "https://other.example"}), id="other"
        ),
        pytest.param(Call("/predict", json={"x": 1, "y": 2}), id="no origin"),
        pytest.param(
            Call("/predict", json={"x": 1, "y": 2}, key=None, headers={"Origin": SITE}), id="refused"
        ),
    ],
)
def test_cross_origin_calls_are_answered_the_same(
    pair: Callable[..., tuple[Flask, Flask]], keys: Keys, origins: list[str], call: Call
) -> None:
    lane, flask = pair(cors_origins=origins, rate_limit="1/minute")

    answers = [_answers(app, [call, call], keys) for app in (lane, flask)]

    assert answers[0] == answers[1]
    assert [status for status, _, _ in answers[0]] in ([200, 429], [401, 401])


def test_a_page_of_an_allowed_origin_may_read_the_answer_and_the_refusal(
    pair: Callable[..., tuple[Flask, Flask]], keys: Keys
) -> None:
    lane, _ = pair(cors_origins=[SITE], rate_limit="1/minute")
    call = Call("/predict", json={"x": 1, "y": 2}, headers={"Origin": SITE})

    answers = [dict(headers) for _, headers, _ in _answers(lane, [call, call], keys)]

    for headers in answers:
        assert headers["Access-Control-Allow-Origin"] == SITE
        assert "RateLimit-Remaining" in headers["Access-Control-Expose-Headers"]
        assert headers["Vary"] == "Origin"
    assert answers[1]["Retry-After"]
