"""Rate limits under gunicorn: counted exactly across two workers through Redis, and Redis going away."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests

from live_server import RunningServer, free_port

pytestmark = pytest.mark.e2e

BODY = {"x": 1, "y": 2}


def fresh_post(server: RunningServer, path: str, key: str) -> requests.Response:
    """A request on a new connection each time, so that both workers take some."""
    return requests.post(
        server.url + path,
        json=BODY,
        headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        timeout=10,
    )


def test_limits_hold_across_workers_when_counted_in_redis(
    start_server: Callable[..., RunningServer],
    make_key: Callable[..., str],
    keys_file: Path,
    redis_storage: tuple[str, str, redis.Redis],
) -> None:
    storage, prefix, client = redis_storage
    abuser, bystander = make_key("abuser"), make_key("bystander")
    server = start_server(
        "--keys-file",
        str(keys_file),
        "--rate-limit",
        "10/minute",
        "--rate-limit-storage",
        storage,
        env={"FLASKSERVE_RATE_LIMIT_KEY_PREFIX": prefix},
        workers=2,
    )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: fresh_post(server, "/predict", abuser), range(30)))

    assert Counter(r.status_code for r in responses) == {200: 10, 429: 20}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "10"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert fresh_post(server, "/predict", bystander).status_code == 200
    assert server.get("/livez").status_code == 200
    assert list(client.scan_iter(match=f"*{prefix}*")), "the counters should live in Redis"


def test_with_redis_down_the_refuse_policy_answers_503_and_the_server_stays_up(
    start_server: Callable[..., RunningServer], make_key: Callable[..., str], keys_file: Path
) -> None:
    key = make_key("client")
    server = start_server(
        "--keys-file",
        str(keys_file),
        "--rate-limit",
        "10/minute",
        "--rate-limit-storage",
        f"redis://127.0.0.1:{free_port()}/0",
        "--rate-limit-fallback",
        "refuse",
        workers=1,
    )

    statuses = [fresh_post(server, "/predict", key).status_code for _ in range(3)]

    assert statuses == [503, 503, 503]
    assert server.get("/readyz").status_code == 200
