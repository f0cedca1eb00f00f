"""Fuzzing the API over HTTP: a real two-worker server against the OpenAPI document it serves.

Schemathesis reads ``/openapi.json`` from a ``flaskserve serve`` with two workers
and sends every operation requests made from it, in three phases:

1. **coverage** — Schemathesis' own deterministic cases (boundary values, each
   constraint broken in turn, missing bodies, methods the document does not
   list), run by its command line;
2. **fuzzing** — for every operation, ``EXAMPLES`` random cases valid by the
   document (positive) and ``EXAMPLES`` invalid by it (negative);
3. **stateful** — scenarios that follow the document's links: load a model,
   predict with it, unload it, load it again...

Every answer must be no 5xx and must keep to the document: status, media type,
headers, body schema, the ``Allow`` header, rejection of invalid requests. The
one built-in check left out is "schema-valid data is accepted": a body of the
right shape still needs the model's own features, and gets a 400 that names them.

Two facts of the repository extension are checked beside the document, because
two workers must agree on them: once a scenario has unloaded a model, no worker
answers a request for it with a success until it is loaded again; and server
readiness answers 503 (``{"ready": false}``, as documented) only while the
scenario has unloaded every model. Outside a scenario, a model the fuzzer
unloads is loaded again before the next case.

CI sends a few examples per operation; ``make fuzz-api`` sets
``FLASKSERVE_API_FUZZ_EXAMPLES=1000`` and prints the figures that
``docs/reliability.md`` quotes. The model ``exploding`` of the test repository
fails on purpose, so the fuzzed server serves the other three.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.errors import FailureGroup

from flaskserve import testing
from flaskserve.lifecycle.journal import Journal, JournalEntry
from live_server import RunningServer

#: Examples per operation and generation mode; ``make fuzz-api`` runs 1000.
EXAMPLES = int(os.environ.get("FLASKSERVE_API_FUZZ_EXAMPLES", "4"))
#: Stateful scenarios, each up to ``SCENARIO_STEPS`` linked calls.
SCENARIOS = max(3, EXAMPLES // 4)
SCENARIO_STEPS = 10
#: A request that takes longer is a failure: long enough for a machine shared with other work.
REQUEST_TIMEOUT_S = 30.0
COVERAGE_TIMEOUT_S = 300.0

REPOSITORY = "/v2/repository/models/{name}"
SERVER_READINESS = frozenset({"/v2/health/ready", "/readyz", "/health", "/ping"})
#: Operations whose success says nothing about whether the model they name is served (a pin loads
#: the version it names; an unpin of a model without a pin changes nothing).
NAME_IS_NOT_SERVED_MODEL = frozenset(
    {f"{REPOSITORY}/load", f"{REPOSITORY}/unload", f"{REPOSITORY}/pin", f"{REPOSITORY}/unpin"}
)
#: The built-in check left out everywhere (see the module docstring).
LEFT_OUT = "positive_data_acceptance"


@dataclass
class Tally:
    """What the fuzzer sent and what came back, for the failure message and the printed figures."""

    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    coverage_cases: int = 0
    scenarios: int = 0
    #: Server readiness answered 503 while a scenario had unloaded every model (documented, not a fault).
    not_ready: int = 0
    no_negative_cases: list[str] = field(default_factory=list)

    def record(self, label: str, status: int) -> None:
        self.examples[label] += 1
        self.statuses[status] += 1

    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def summary(self, operations: int, seconds: float) -> str:
        classes = Counter({f"{status // 100}xx": 0 for status in self.statuses})
        for status, count in self.statuses.items():
            classes[f"{status // 100}xx"] += count
        short = sorted((count, label) for label, count in self.examples.items() if count < EXAMPLES)
        lines = [
            f"operations: {operations}",
            f"coverage phase: {self.coverage_cases} cases",
            f"fuzzing and stateful: {sum(self.examples.values())} cases "
            f"({EXAMPLES} per operation and mode asked), {self.scenarios} scenarios",
            "answers: " + ", ".join(f"{name} {count}" for name, count in sorted(classes.items())),
            f"5xx: {self.server_errors()} (server readiness with every model unloaded: {self.not_ready})",
            f"failures: {len(self.failures)}",
            f"duration: {seconds:.0f} s",
            f"operations with no invalid input to send: {len(self.no_negative_cases)}",
            f"operations whose inputs ran out before {EXAMPLES} cases: {len(short)}",
            *(f"  {count:>6}  {label}" for count, label in short),
        ]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def fuzz_repository(
    tmp_path_factory: pytest.TempPathFactory,
    iris_classifier: Any,
    iris_pipeline: Any,
    diabetes_regressor: Any,
    linear_xy: Any,
) -> Path:
    return testing.write_repository(
        tmp_path_factory.mktemp("fuzz-repository"),
        {
            "iris": {"1": (iris_classifier, ".skops"), "2": (iris_pipeline, ".skops")},
            "diabetes": {"1": (diabetes_regressor, ".skops")},
            "linear": {"1": (linear_xy, ".skops")},
        },
    )


@pytest.fixture
def fuzzed_server(start_server: Callable[..., RunningServer], fuzz_repository: Path) -> RunningServer:
    return start_server(model_path=fuzz_repository, workers=2)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as client:
        yield client


def _fuzz_settings(max_examples: int, **extra: Any) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def _failure(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


class Models:
    """The models the server serves, as the fuzzer changed them; loads again what it unloaded."""

    def __init__(self, server: RunningServer, names: list[str]) -> None:
        self.server = server
        self.all = frozenset(names)
        self.served = set(names)

    def note(self, case: Any, status: int) -> None:
        name = case.path_parameters.get("name") if case.path_parameters else None
        if status != 200 or name not in self.all:
            return
        if case.operation.path == f"{REPOSITORY}/unload":
            self.served.discard(name)
        elif case.operation.path in (f"{REPOSITORY}/load", f"{REPOSITORY}/pin"):
            self.served.add(name)

    def restore(self, *, all_of_them: bool = False) -> None:
        for name in sorted(self.all if all_of_them else self.all - self.served):
            answer = self.server.post(f"/v2/repository/models/{name}/load")
            assert answer.status_code == 200, f"could not load {name!r} again: {answer.text}"
            self.served.add(name)


def _model_names(document: dict[str, Any]) -> list[str]:
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    [name] = [p for p in infer["parameters"] if p["name"] == "name"]
    return list(name["schema"]["enum"])


def coverage_phase(server: RunningServer, models: Models, workdir: Path, tally: Tally) -> None:
    """Schemathesis' deterministic cases, by its command line; unload goes last: it changes what is served."""
    selections = {"every operation but unload": "--exclude-path-regex", "unload": "--include-path-regex"}
    for number, (what, option) in enumerate(selections.items()):
        report = workdir / f"coverage-{number}.json"
        command = [
            *(sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json"),
            *("--phases", "examples,coverage", "--exclude-checks", LEFT_OUT, option, "/unload$"),
            *("--workers", "1", "--no-color", "--report", "json", "--report-json-path", str(report)),
        ]
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=COVERAGE_TIMEOUT_S, check=False, cwd=workdir
        )
        found = json.loads(report.read_text()) if report.exists() else {}
        tally.coverage_cases += found.get("test_cases", {}).get("generated", 0)
        if run.returncode != 0 or found.get("failures") or found.get("errors") or not found:
            tally.failures[f"coverage phase, {what}"] = run.stdout[-6000:] + run.stderr[-2000:]
    models.restore(all_of_them=True)


def fuzzing_phase(api: Any, models: Models, session: requests.Session, tally: Tally) -> None:
    """Every operation, ``EXAMPLES`` positive and ``EXAMPLES`` negative cases each; failures are tallied."""
    for result in api.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if operation.body or any(True for _ in operation.iter_parameters()):
            modes.append(GenerationMode.NEGATIVE)
        else:
            tally.no_negative_cases.append(operation.label)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @_fuzz_settings(EXAMPLES)
            def exercise(case: Any) -> None:
                response = case.call(session=session, timeout=REQUEST_TIMEOUT_S)
                tally.record(case.operation.label, response.status_code)
                models.note(case, response.status_code)
                # What an unload took away is back before anything else runs.
                models.restore()
                case.validate_response(response, excluded_checks=[positive_data_acceptance])

            try:
                exercise()
            except Unsatisfiable:
                # Every parameter takes any string (GET /docs/static/{filename}): nothing is invalid.
                tally.no_negative_cases.append(operation.label)
            except (Exception, FailureGroup) as exc:
                tally.failures[f"{operation.label} ({mode.value})"] = _failure(exc)
            models.restore()


def stateful_phase(api: Any, models: Models, tally: Tally) -> None:
    """Linked calls (load → infer → unload → load...), checked as above and for the two workers' agreement."""

    class Scenario(api.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            tally.scenarios += 1
            models.restore()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"timeout": REQUEST_TIMEOUT_S}

        def after_call(self, response: Any, case: Any) -> None:
            tally.record(case.operation.label, response.status_code)

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            path = case.operation.path
            excluded = [positive_data_acceptance]
            if path in SERVER_READINESS and response.status_code == 503 and not models.served:
                tally.not_ready += 1
                excluded.append(not_a_server_error)
            name = case.path_parameters.get("name") if case.path_parameters else None
            if name in models.all and name not in models.served and path not in NAME_IS_NOT_SERVED_MODEL:
                assert response.status_code >= 400, (
                    f"{case.operation.label} answered {response.status_code} for {name!r}, "
                    "which this scenario unloaded"
                )
            models.note(case, response.status_code)
            case.validate_response(response, excluded_checks=excluded, transport_kwargs=kwargs or None)

        def teardown(self) -> None:
            models.restore()

    try:
        Scenario.run(settings=_fuzz_settings(SCENARIOS, stateful_step_count=SCENARIO_STEPS))
    except (Exception, FailureGroup) as exc:
        tally.failures["stateful scenarios"] = _failure(exc)
    models.restore()


@pytest.mark.e2e
def test_no_server_error_and_no_answer_outside_the_document(
    fuzzed_server: RunningServer, session: requests.Session, tmp_path: Path
) -> None:
    started = time.monotonic()
    api = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")
    models = Models(fuzzed_server, _model_names(fuzzed_server.get("/openapi.json").json()))
    labels = {result.ok().label for result in api.get_all_operations()}
    tally = Tally()

    coverage_phase(fuzzed_server, models, tmp_path, tally)
    fuzzing_phase(api, models, session, tally)
    stateful_phase(api, models, tally)

    print(f"\nAPI fuzzing over HTTP, two workers:\n{tally.summary(len(labels), time.monotonic() - started)}")
    assert not tally.failures, "\n\n".join(f"{where}:\n{what}" for where, what in tally.failures.items())
    assert set(tally.examples) == labels
    assert len(labels) > 20
    assert tally.coverage_cases > len(labels)
    assert tally.server_errors() == tally.not_ready


# What the fuzzer found, pinned in process: each answer now keeps to the document.
@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", "/v2/models/iris?content_type=q", None, 400, id="metadata: unknown content_type"),
        pytest.param("GET", "/v2/models/iris?content_type=pd", None, 200, id="metadata: content_type pd"),
        pytest.param("POST", "/v2/repository/index", b"null", 400, id="index: a null body is no object"),
        pytest.param("POST", "/v2/repository/index", b"", 200, id="index: no body lists everything"),
        pytest.param("POST", "/v2/repository/index", b"\n", 400, id="index: a blank body is no JSON"),
        pytest.param("POST", "/v2/repository/models/iris/load", b"null", 400, id="load: null body"),
        pytest.param("POST", "/v2/repository/models/iris/unload", b"null", 400, id="unload: null body"),
        pytest.param("GET", "/v1/models/iris:predict", None, 405, id="v1: the verb is not part of a name"),
    ],
)
def test_answers_the_fuzzer_found_outside_the_document(
    client: FlaskClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else {}

    response = client.open(path, method=method, data=body, headers=headers)

    assert response.status_code == status, response.get_data(as_text=True)
    if status == 405:
        assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_optional_bodies_are_documented_as_optional(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    for path in ("/v2/repository/index", f"{REPOSITORY}/load", f"{REPOSITORY}/unload"):
        assert paths[path]["post"]["requestBody"]["required"] is False
    assert paths["/v2/models/{name}/infer"]["post"]["requestBody"]["required"] is True


def test_loading_and_unloading_link_to_what_follows(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    operation_ids = {item["operationId"] for methods in paths.values() for item in methods.values()}

    load = paths[f"{REPOSITORY}/load"]["post"]["responses"]["200"]["links"]
    unload = paths[f"{REPOSITORY}/unload"]["post"]["responses"]["200"]["links"]

    assert set(load) == {"infer", "metadata", "ready", "unload"}
    assert set(unload) == {"load", "ready"}
    for link in [*load.values(), *unload.values()]:
        assert link["operationId"] in operation_ids
        assert link["parameters"] == {"name": "$request.path.name"}


def test_a_long_journal_is_replayed_one_action_per_model(tmp_path: Path) -> None:
    """A replacement worker replays the whole journal: each model's last action, not all 1001 of them.

    A long fuzzing run leaves thousands of actions in the journal; a worker forked
    after about 1,400 of them used to spend 25 s loading a model for every one
    before its first answer.
    """
    path = tmp_path / "repository.journal"
    writer = Journal(path)
    for action in ["unload", "load"] * 500 + ["unload"]:
        with writer.exclusive(lambda entry: None) as append:
            append(action, "iris", {"1": "0" * 64} if action == "load" else None)
    with writer.exclusive(lambda entry: None) as append:
        append("load", "linear", {"1": "1" * 64})
    applied: list[JournalEntry] = []

    Journal(path).replay(applied.append)

    assert [(entry.action, entry.model, entry.seq) for entry in applied] == [
        ("unload", "iris", 1001),
        ("load", "linear", 1002),
    ]
