"""Rate limits in one process: what is counted together, the 429 and its headers, and storage failures."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.errors import ConfigError
from flaskserve.security.keys import KeyStore
from flaskserve.security.ratelimit import counts_per_worker
from flaskserve.settings import Settings

LINEAR = ("/models/linear/predict", {"x": 1, "y": 2})
DIABETES = ("/models/diabetes/predict", {"instances": [[0.0] * 10]})


@pytest.fixture
def limited(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[..., FlaskClient]:
    """A client of an app built with ``overrides``; without keys unless a test writes some."""

    def build(**overrides: Any) -> FlaskClient:
        overrides.setdefault("keys_file", tmp_path / "keys.json")
        return create_app(make_settings(**overrides)).test_client()

    return build


def predict(client: FlaskClient, route: tuple[str, Any] = LINEAR, **kwargs: Any) -> Any:
    return client.post(route[0], json=route[1], **kwargs)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_without_a_configured_limit_nothing_is_limited_or_announced(
    limited: Callable[..., FlaskClient],
) -> None:
    client = limited()

    responses = [predict(client) for _ in range(20)]

    assert {r.status_code for r in responses} == {200}
    assert "RateLimit-Limit" not in responses[-1].headers


def test_requests_over_the_limit_get_429_with_retry_after_and_ratelimit_headers(
    limited: Callable[..., FlaskClient],
) -> None:
    client = limited(rate_limit="3/minute")

    allowed = [predict(client) for _ in range(3)]
    refused = predict(client)

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["RateLimit-Remaining"] for r in allowed] == ["2", "1", "0"]
    assert allowed[0].headers["RateLimit-Limit"] == "3"
    assert allowed[0].headers["RateLimit-Policy"] == "3;w=60"
    assert 0 < int(allowed[0].headers["RateLimit-Reset"]) <= 60
    assert refused.status_code == 429
    assert refused.json is not None
    assert refused.json["code"] == "rate_limited"
    assert "3 per minute" in refused.json["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"


def test_each_model_has_its_own_budget(limited: Callable[..., FlaskClient]) -> None:
    client = limited(rate_limit="2/minute")
    for _ in range(2):
        predict(client)

    assert predict(client).status_code == 429
    assert predict(client, DIABETES).status_code == 200


def test_reading_metadata_does_not_spend_the_prediction_budget(limited: Callable[..., FlaskClient]) -> None:
    client = limited(rate_limit="2/minute")
    for _ in range(2):
        predict(client)

    assert predict(client).status_code == 429
    assert client.get("/models").status_code == 200


def test_a_model_can_set_its_own_limit(limited: Callable[..., FlaskClient]) -> None:
    client = limited(rate_limit="5/minute", models={"linear": {"rate_limit": "1/minute"}})

    assert [predict(client).status_code for _ in range(2)] == [200, 429]
    assert [predict(client, DIABETES).status_code for _ in range(5)] == [200] * 5


def test_a_model_limit_applies_without_a_server_wide_one(limited: Callable[..., FlaskClient]) -> None:
    client = limited(models={"linear": {"rate_limit": "1/minute"}})

    assert [predict(client).status_code for _ in range(2)] == [200, 429]
    assert [predict(client, DIABETES).status_code for _ in range(3)] == [200] * 3


def test_probes_and_metrics_are_never_limited(limited: Callable[..., FlaskClient]) -> None:
    client = limited(rate_limit="1/minute")

    statuses = [client.get(path).status_code for path in ("/livez", "/readyz", "/metrics") for _ in range(3)]

    assert statuses == [200] * 9


def test_each_key_has_its_own_budget(limited: Callable[..., FlaskClient], tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    alice, bob = store.create("alice", ["predict"]), store.create("bob", ["predict"])
    store.save()
    client = limited(rate_limit="1/minute")

    assert predict(client, headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    assert predict(client, headers={"Authorization": f"Bearer {alice}"}).status_code == 429
    assert predict(client, headers={"Authorization": f"Bearer {bob}"}).status_code == 200


def test_requests_without_a_valid_key_are_refused_before_they_are_counted(
    limited: Callable[..., FlaskClient], tmp_path: Path
) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key = store.create("alice", ["predict"])
    store.save()
    client = limited(rate_limit="1/minute")

    assert [predict(client).status_code for _ in range(3)] == [401] * 3
    assert predict(client, headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_anonymous_clients_are_counted_by_address(limited: Callable[..., FlaskClient]) -> None:
    client = limited(rate_limit="1/minute")

    def from_address(address: str) -> int:
        return int(predict(client, environ_base={"REMOTE_ADDR": address}).status_code)

    assert [from_address("192.0.2.1"), from_address("192.0.2.1"), from_address("192.0.2.2")] == [
        200,
        429,
        200,
    ]


def test_forwarded_addresses_are_ignored_unless_proxies_are_trusted(
    limited: Callable[..., FlaskClient],
) -> None:
    client = limited(rate_limit="1/minute")

    def spoofing(address: str) -> int:
        return int(predict(client, headers={"X-Forwarded-For": address}).status_code)

    assert [spoofing("192.0.2.1"), spoofing("192.0.2.2")] == [200, 429]


def test_a_trusted_proxy_hop_names_the_client(limited: Callable[..., FlaskClient]) -> None:
    client = limited(rate_limit="1/minute", trusted_proxies=1)

    def via_proxy(chain: str) -> int:
        return int(predict(client, headers={"X-Forwarded-For": chain}).status_code)

    # Only the last entry was written by the trusted proxy; what the client put before it is ignored.
    assert [via_proxy("10.0.0.9, 192.0.2.1"), via_proxy("10.0.0.8, 192.0.2.1"), via_proxy("192.0.2.2")] == [
        200,
        429,
        200,
    ]


def test_unreachable_storage_falls_back_to_counting_in_memory(limited: Callable[..., FlaskClient]) -> None:
    client = limited(rate_limit="2/minute", rate_limit_storage=f"redis://127.0.0.1:{closed_port()}/0")

    assert [predict(client).status_code for _ in range(3)] == [200, 200, 429]


def test_unreachable_storage_can_be_set_to_refuse_with_503(limited: Callable[..., FlaskClient]) -> None:
    client = limited(
        rate_limit="2/minute",
        rate_limit_storage=f"redis://127.0.0.1:{closed_port()}/0",
        rate_limit_fallback="refuse",
    )

    response = predict(client)

    assert response.status_code == 503
    assert response.json is not None
    assert response.json["code"] == "unavailable"
    assert response.headers["Retry-After"] == "5"
    assert client.get("/livez").status_code == 200


@pytest.mark.parametrize(
    ("fallback", "level", "what_happens"),
    [
        pytest.param(
            "memory",
            logging.WARNING,
            "each worker counts requests in its own memory (rate_limit_fallback = memory)",
            id="memory fallback",
        ),
        pytest.param(
            "refuse",
            logging.ERROR,
            "every rate-limited request is answered 503 (rate_limit_fallback = refuse)",
            id="refusal",
        ),
    ],
)
def test_unreachable_storage_is_reported_at_start_up_and_the_app_starts(
    limited: Callable[..., FlaskClient],
    caplog: pytest.LogCaptureFixture,
    fallback: str,
    level: int,
    what_happens: str,
) -> None:
    storage = f"redis://127.0.0.1:{closed_port()}/0"

    client = limited(rate_limit="2/minute", rate_limit_storage=storage, rate_limit_fallback=fallback)

    (reported,) = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert reported.levelno == level
    assert reported.getMessage() == (
        f"rate-limit storage {storage} cannot be reached: until it answers, {what_happens}"
    )
    assert client.get("/livez").status_code == 200


def test_reachable_or_local_storage_is_not_reported(
    limited: Callable[..., FlaskClient], caplog: pytest.LogCaptureFixture
) -> None:
    limited(rate_limit="2/minute", rate_limit_storage="memory://")

    assert not [r for r in caplog.records if "cannot be reached" in r.getMessage()]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"rate_limit": "lots"}, id="limit that does not parse"),
        pytest.param(
            {"models": {"linear": {"rate_limit": "1/fortnight"}}}, id="model limit that does not parse"
        ),
        pytest.param(
            {"rate_limit": "1/minute", "rate_limit_storage": "carrier-pigeon://x"}, id="unknown storage"
        ),
    ],
)
def test_bad_rate_limit_settings_stop_the_server_at_start(
    limited: Callable[..., FlaskClient], overrides: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        limited(**overrides)


@pytest.mark.parametrize(
    ("storage", "workers", "expected"),
    [
        pytest.param("memory://", 4, True, id="memory with several workers multiplies the limit"),
        pytest.param("memory://", 1, False, id="memory with one worker is exact"),
        pytest.param("redis://127.0.0.1:6379/0", 4, False, id="redis is shared"),
    ],
)
def test_the_startup_warning_is_given_when_workers_count_alone(
    make_settings: Callable[..., Settings], storage: str, workers: int, expected: bool
) -> None:
    settings = make_settings(rate_limit="10/second", rate_limit_storage=storage)

    assert counts_per_worker(settings, workers) is expected
