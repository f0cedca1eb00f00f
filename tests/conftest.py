"""Fixtures shared by the whole suite: models trained once, then settings → app → client.

Every process a test starts must be gone when the run ends: the run adopts the
orphans of its descendants (a server's workers whose master died), and the last
teardown fails with the command line of any process still running.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.settings import Settings, load_settings
from live_server import adopt_orphans, descendants, kill_all, wait_until_gone

#: How long the processes still running when the last test ends get to exit on their own.
SURVIVOR_GRACE_S = 5.0
#: Test modules that run twice: with the prediction lane in front of Flask, and with every request
#: through Flask. They send prediction requests and check what the lane shares with Flask (keys and
#: scopes, errors, bodies, headers, request ids, metrics, access and inference logs); the rest of
#: their folders never reach the lane, and running them twice would cost CI minutes for nothing.
BOTH_LANES = frozenset(
    {
        "api/test_cache_header.py",
        "api/test_cache_replay.py",
        "api/test_errors.py",
        "api/test_mlflow.py",
        "api/test_protocol_agreement.py",
        "api/test_simple.py",
        "api/test_v1.py",
        "api/test_v2.py",
        "observability/test_inference_log.py",
        "observability/test_logging.py",
        "observability/test_metrics.py",
        "observability/test_request_id.py",
        "security/test_auth.py",
        "security/test_headers.py",
        "security/test_ratelimit.py",
        "security/test_routes.py",
        "security/test_scopes.py",
        "web/test_bodies.py",
    }
)
_TESTS = Path(__file__).parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test of :data:`BOTH_LANES` with ``fast_lane`` on and off."""
    module = metafunc.definition.path.relative_to(_TESTS).as_posix()
    if module in BOTH_LANES:
        metafunc.parametrize(
            "fast_lane", [pytest.param(True, id="lane"), pytest.param(False, id="flask")], indirect=True
        )


@pytest.fixture(autouse=True)
def fast_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the apps a test builds serve predictions in the lane (the ``fast_lane`` setting)."""
    on: bool | None = getattr(request, "param", None)
    if on is None:
        # Outside the folders above, the setting is left to the test.
        return True
    monkeypatch.setenv("FLASKSERVE_FAST_LANE", "true" if on else "false")
    return on


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_run() -> Iterator[None]:
    """Fail the run (at its last teardown) if a process the tests started is still running; kill it."""
    adopt_orphans()
    yield
    if not Path("/proc").is_dir():
        return
    survivors = wait_until_gone(descendants(os.getpid()), SURVIVOR_GRACE_S)
    if survivors:
        kill_all(survivors)
        lines = "\n".join(f"  {pid}: {command}" for pid, command in sorted(survivors.items()))
        pytest.fail(f"processes the tests started were still running after the run:\n{lines}", pytrace=False)


@pytest.fixture(scope="session")
def iris_classifier() -> Any:
    return testing.train_iris_classifier()


@pytest.fixture(scope="session")
def iris_pipeline() -> Any:
    return testing.train_iris_pipeline()


@pytest.fixture(scope="session")
def diabetes_regressor() -> Any:
    return testing.train_diabetes_regressor()


@pytest.fixture(scope="session")
def linear_xy() -> Any:
    return testing.train_linear_xy()


#: The intents data set of the chat example, written for this project: utterance, intent.
INTENTS_CSV = Path(__file__).resolve().parents[1] / "examples" / "intents" / "intents.csv"


@pytest.fixture(scope="session")
def intents_data() -> tuple[list[str], list[str]]:
    """The chat example's utterances and their intents (8 intents, 25 utterances each)."""
    import csv

    with INTENTS_CSV.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return [row["text"] for row in rows], [row["intent"] for row in rows]


@pytest.fixture(scope="session")
def intents_model(intents_data: tuple[list[str], list[str]]) -> Any:
    """A text model: TF-IDF + LogisticRegression over the intents, a Pipeline led by a vectorizer."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, intents = intents_data
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2)),
        LogisticRegression(C=10, solver="saga", max_iter=2000, random_state=0),
    )
    return model.fit(texts, intents)


@pytest.fixture(scope="session")
def repository(
    tmp_path_factory: pytest.TempPathFactory,
    iris_classifier: Any,
    iris_pipeline: Any,
    diabetes_regressor: Any,
    linear_xy: Any,
) -> Path:
    """A repository of four models; iris has two versions (v2 is the pipeline with integer classes)."""
    return testing.write_repository(
        tmp_path_factory.mktemp("repository"),
        {
            "iris": {"1": (iris_classifier, ".skops"), "2": (iris_pipeline, ".skops")},
            "diabetes": {"1": (diabetes_regressor, ".skops")},
            "linear": {"1": (linear_xy, ".skops")},
            "exploding": {"1": (testing.ExplodingRegressor(), ".joblib")},
        },
    )


@pytest.fixture
def make_settings(repository: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"model_path": repository, "allow_pickle": True, "default_model": "linear"}
        values.update(overrides)
        return load_settings(None, **values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
