"""Drift in-process: the profile, the statistics, the rolling window, /metrics and the monitoring route."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.cli import main
from flaskserve.observability.drift.monitor import DriftMonitor
from flaskserve.observability.drift.profile import REFERENCE_FILE, profile_column
from flaskserve.observability.drift.statistics import band, jensen_shannon, kolmogorov_smirnov, psi
from flaskserve.observability.drift.window import (
    OUTSIDE,
    SLOTS,
    DriftWindow,
    RowSlots,
    SharedRowCounter,
    TimeSlots,
    WindowCounts,
)
from flaskserve.observability.monitoring import get_monitoring
from flaskserve.runtime import get_runtime
from flaskserve.settings import load_settings
from metrics_text import labels, samples


@pytest.fixture
def diabetes_repository(tmp_path: Path, diabetes_regressor: Any, iris_classifier: Any) -> Path:
    """Diabetes and iris, each with its training data as CSV beside the repository."""
    root = testing.write_repository(
        tmp_path / "models",
        {"diabetes": {"1": (diabetes_regressor, ".skops")}, "iris": {"1": (iris_classifier, ".skops")}},
    )
    training_rows().to_csv(tmp_path / "diabetes.csv", index=False)
    return root


def profile(model_dir: Path, data: Path) -> None:
    model_file = next((model_dir / "1").glob("model.*"))
    result = CliRunner().invoke(main, ["profile", str(model_file), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output


def diabetes_client(root: Path) -> FlaskClient:
    return create_app(load_settings(None, model_path=root)).test_client()


def training_rows() -> pd.DataFrame:
    """The diabetes data under the names the served regressor (fit on a bare array) gives its features."""
    from sklearn.datasets import load_diabetes

    data: pd.DataFrame = load_diabetes(as_frame=True).data
    return data.set_axis([f"x{i}" for i in range(data.shape[1])], axis=1)


def send(client: FlaskClient, rows: pd.DataFrame) -> None:
    # Sent 50 rows a request: the window counts rows, however they are grouped.
    for start in range(0, len(rows), 50):
        chunk = rows.iloc[start : start + 50]
        response = client.post("/models/diabetes/predict", json=chunk.to_dict("records"))
        assert response.status_code == 200, response.json


def psi_by_feature(client: FlaskClient) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    found = samples(text, "flaskserve_feature_drift_psi")
    return {dict(key)["feature"]: value for key, value in found.items() if dict(key)["role"] == "input"}


def test_the_training_data_itself_shows_no_drift(diabetes_repository: Path, tmp_path: Path) -> None:
    profile(diabetes_repository / "diabetes", tmp_path / "diabetes.csv")
    client = diabetes_client(diabetes_repository)
    send(client, training_rows())

    by_feature = psi_by_feature(client)
    assert len(by_feature) == 10
    assert all(value == pytest.approx(0.0, abs=1e-12) for value in by_feature.values())
    text = client.get("/metrics").get_data(as_text=True)
    assert samples(text, "flaskserve_drift_window_rows") == {labels(model="diabetes", version="1"): 442.0}


def test_one_feature_shifted_by_two_deviations_crosses_the_major_band_alone(
    diabetes_repository: Path, tmp_path: Path
) -> None:
    profile(diabetes_repository / "diabetes", tmp_path / "diabetes.csv")
    client = diabetes_client(diabetes_repository)
    training = training_rows()
    shifted = training.copy()
    # x2 is the body mass index.
    shifted["x2"] += 2 * shifted["x2"].std()
    send(client, shifted)

    by_feature = psi_by_feature(client)
    assert by_feature["x2"] > 0.25
    assert all(value < 0.1 for name, value in by_feature.items() if name != "x2")

    report = client.get("/models/diabetes/monitoring")
    assert report.status_code == 200
    version = report.json["versions"][0]
    assert version["profiled"] is True
    assert version["window_rows"] == 442
    bands = {f["feature"]: f["band"] for f in version["features"] if f["role"] == "input"}
    assert bands["x2"] == "major"
    assert {b for name, b in bands.items() if name != "x2"} == {"stable"}
    bmi = next(f for f in version["features"] if f["feature"] == "x2")
    assert bmi["out_of_range"] == pytest.approx(
        float((shifted["x2"] > training["x2"].max()).mean()), abs=1e-6
    )
    # The predictions move with bmi, which the model weighs heavily.
    output = next(f for f in version["features"] if f["role"] == "output:predict")
    assert output["psi"] > 0.1


def test_a_classifier_profiles_its_predicted_classes_as_categories(
    diabetes_repository: Path, tmp_path: Path
) -> None:
    frame, _ = testing.iris_frame()
    frame.to_csv(tmp_path / "iris.csv", index=False)
    profile(diabetes_repository / "iris", tmp_path / "iris.csv")
    reference = (diabetes_repository / "iris" / "1" / REFERENCE_FILE).read_bytes()
    assert b'"categorical"' in reference
    assert b'"setosa"' in reference
    client = diabetes_client(diabetes_repository)
    assert client.post("/models/iris/predict", json=frame.to_dict("records")).status_code == 200
    report = client.get("/models/iris/monitoring").json["versions"][0]
    assert all(f["psi"] == pytest.approx(0.0, abs=1e-12) for f in report["features"])


def test_a_model_without_a_profile_says_so(diabetes_repository: Path) -> None:
    client = diabetes_client(diabetes_repository)
    send(client, training_rows().iloc[:10])
    report = client.get("/models/diabetes/monitoring")
    assert report.status_code == 200
    assert report.json["versions"] == [{"version": "1", "profiled": False, "window_rows": 0, "features": []}]
    assert "flaskserve_feature_drift_psi{" not in client.get("/metrics").get_data(as_text=True)


def test_an_unknown_model_has_no_monitoring(client: FlaskClient) -> None:
    response = client.get("/models/nope/monitoring")
    assert response.status_code == 404
    assert response.json["code"] == "model_not_found"


def test_profile_names_the_missing_columns(diabetes_repository: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("x0,x1\n1,2\n")
    model_file = diabetes_repository / "diabetes" / "1" / "model.skops"
    result = CliRunner().invoke(main, ["profile", str(model_file), "--data", str(tmp_path / "bad.csv")])
    assert result.exit_code != 0
    assert "no column for x2, x3" in result.output


def test_profile_wants_one_model(diabetes_repository: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["profile", str(diabetes_repository), "--data", str(tmp_path / "diabetes.csv")]
    )
    assert result.exit_code != 0
    assert "holds 2 model versions" in result.output


def test_a_worker_counts_the_rows_it_holds_within_the_flush_interval_without_being_asked(
    diabetes_repository: Path, tmp_path: Path
) -> None:
    profile(diabetes_repository / "diabetes", tmp_path / "diabetes.csv")
    app = create_app(load_settings(None, model_path=diabetes_repository))
    send(app.test_client(), training_rows().iloc[:120])
    window = get_monitoring(app).drift.window

    # Read from the shared window itself, which (unlike a scrape) does not count what is held first.
    deadline = time.monotonic() + 10
    while window.read().get(("diabetes", "1"), WindowCounts()).rows < 120:
        assert time.monotonic() < deadline, "the held rows were not counted by the flush thread"
        time.sleep(0.05)
    assert window.read()[("diabetes", "1")].rows == 120


def test_rows_past_the_held_limit_are_dropped_and_counted_not_waited_for(
    diabetes_repository: Path, tmp_path: Path
) -> None:
    profile(diabetes_repository / "diabetes", tmp_path / "diabetes.csv")
    app = create_app(load_settings(None, model_path=diabetes_repository))
    model = get_runtime(app).registry.resolve("diabetes", None)
    dropped: list[int] = []
    # No flush thread in sight for an hour: what is held stays held until asked.
    monitor = DriftMonitor(
        get_runtime(app).registry,
        DriftWindow(TimeSlots(900.0)),
        dropped=dropped.append,
        flush_interval_s=3600.0,
        max_held_rows=25,
    )
    rows = training_rows().to_numpy()
    for start in (0, 10, 20):
        monitor.observe(model, rows[start : start + 10], {})

    assert dropped == [10]
    assert [version["window_rows"] for version in monitor.report("diabetes")] == [20]


def _rows_a_forked_worker_counts(monitor: DriftMonitor, model: Any, rows: Any, answer: Any) -> None:
    """In the child: the window's rows after a flush, and after one prediction of its own and a flush."""
    monitor.flush()
    before = monitor.window.read().get(("diabetes", "1"), WindowCounts()).rows
    monitor.observe(model, rows, {})
    monitor.flush()
    answer.send((before, monitor.window.read()[("diabetes", "1")].rows))


def test_a_forked_worker_counts_its_own_rows_not_those_its_parent_held(
    diabetes_repository: Path, tmp_path: Path
) -> None:
    import multiprocessing

    profile(diabetes_repository / "diabetes", tmp_path / "diabetes.csv")
    app = create_app(load_settings(None, model_path=diabetes_repository))
    registry = get_runtime(app).registry
    model = registry.resolve("diabetes", None)
    monitor = DriftMonitor(registry, DriftWindow(TimeSlots(900.0)), flush_interval_s=3600.0)
    rows = training_rows().to_numpy()
    monitor.observe(model, rows[:10], {})

    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_rows_a_forked_worker_counts, args=(monitor, model, rows[:3], send))
    child.start()
    child.join(30)

    assert child.exitcode == 0
    assert receive.recv() == (0, 3)
    monitor.flush()
    assert monitor.window.read()[("diabetes", "1")].rows == 10


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def count_rows(window: DriftWindow, version: str, cells: list[tuple[str, int]]) -> None:
    """Count ``rows`` rows of feature ``x`` into bin ``b`` for each ``(b, rows)``, each row into its slot."""
    for position, rows in cells:
        slots = window.slots.take("m", version, rows)
        for slot in np.unique(slots).tolist():
            taken = int(np.count_nonzero(slots == slot))
            window.add("m", version, slot, taken, [(("input", "x", position), taken)])


def test_the_window_forgets_rows_older_than_its_length() -> None:
    clock = FakeClock()
    window = DriftWindow(TimeSlots(100.0, clock=clock))
    # Two rows: one in bin 1, one in the last bin and beyond the training maximum.
    slot = int(window.slots.take("m", "1", 2)[0])
    window.add(
        "m",
        "1",
        slot,
        2,
        [(("input", "x", "1"), 1), (("input", "x", "11"), 1), (("input", "x", OUTSIDE), 1)],
    )
    assert window.read()[("m", "1")].rows == 2
    assert window.read()[("m", "1")].outside[("input", "x")] == 1
    assert window.read()[("m", "1")].counts("input", "x", 12).tolist() == [0, 1] + [0] * 9 + [1]

    clock.now += 100.0 * (SLOTS - 1) / SLOTS
    count_rows(window, "1", [("1", 1)])
    assert window.read()[("m", "1")].rows == 3

    clock.now += 100.0 / SLOTS
    assert window.read()[("m", "1")].rows == 1
    clock.now += 100.0
    assert ("m", "1") not in window.read()


def test_a_row_window_holds_the_last_n_rows_whatever_the_time() -> None:
    window = DriftWindow(RowSlots(100, SharedRowCounter()))
    count_rows(window, "1", [("1", 1)] * 95)
    assert window.read()[("m", "1")].rows == 95
    # 3 requests of 5 rows: the window moves on by whole slots of 10 rows, keeping 90 to 100 of the last.
    count_rows(window, "1", [("2", 5)] * 3)
    found = window.read()[("m", "1")]
    assert found.rows == 90 + 110 % 10
    assert found.counts("input", "x", 3).tolist() == [0, 75, 15]
    # Each row takes its own slot: 17 rows at once from position 110 fill slot 11 and 7 rows of slot 12.
    count_rows(window, "1", [("2", 17)])
    found = window.read()[("m", "1")]
    assert found.rows == 97
    assert found.counts("input", "x", 3).tolist() == [0, 65, 32]
    # Another version has its own count.
    count_rows(window, "2", [("1", 1)])
    assert window.read()[("m", "2")].rows == 1


def _advance_many(directory: str, times: int) -> list[int]:
    counter = SharedRowCounter(directory)
    return [counter.advance("m", "1", 2) for _ in range(times)]


def test_processes_advance_one_row_count_without_losing_or_repeating_a_position(tmp_path: Path) -> None:
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        positions = pool.starmap(_advance_many, [(str(tmp_path), 500), (str(tmp_path), 500)])

    taken = sorted(positions[0] + positions[1])
    assert taken == list(range(0, 2000, 2))
    assert SharedRowCounter(str(tmp_path)).count("m", "1") == 2000


def test_a_value_on_an_edge_falls_in_the_same_bin_when_profiled_and_when_served() -> None:
    values = np.array([1.0, 2.0, 2.0, 3.0, 4.0, np.nan])
    feature = profile_column("x", values)
    counts, _ = feature.count(values)
    assert counts[0] == 1
    assert np.allclose(counts / counts.sum(), feature.proportions)
    # One value at a time (the one-row path) lands where the whole column did.
    one_by_one = np.bincount([feature.bin_of(v)[0] for v in values.tolist()], minlength=feature.bins)
    assert one_by_one.tolist() == counts.tolist()


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        pytest.param([25, 25, 25, 25], "stable", id="same shares"),
        pytest.param([40, 30, 20, 10], "moderate", id="tilted"),
        pytest.param([0, 0, 10, 90], "major", id="moved to one end"),
    ],
)
def test_psi_bands(served: list[int], expected: str) -> None:
    assert band(psi([0.25, 0.25, 0.25, 0.25], served)) == expected


def test_equal_distributions_are_at_distance_zero_and_disjoint_ones_at_one() -> None:
    assert psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert jensen_shannon([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-7)
    assert jensen_shannon([0, 1, 0], [0, 0, 1]) == pytest.approx(1.0)
    # KS leaves out the first bin (missing values) and compares cumulative shares.
    assert kolmogorov_smirnov([5, 1, 0], [0, 0, 1]) == pytest.approx(1.0)


# -- text models ----------------------------------------------------------------


@pytest.fixture
def intents_repository(tmp_path: Path, intents_model: Any, intents_data: tuple[list[str], list[str]]) -> Path:
    """The intents text model, profiled on its training utterances."""
    root = testing.write_repository(tmp_path / "models", {"intents": {"1": (intents_model, ".skops")}})
    texts, _ = intents_data
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "intents.csv", index=False)
    profile(root / "intents", tmp_path / "intents.csv")
    return root


def text_psi(root: Path, texts: list[str]) -> dict[str, float]:
    client = create_app(load_settings(None, model_path=root)).test_client()
    # A few texts a request (the one-row path) and the rest in one batch: both count alike.
    for text in texts[:5]:
        assert client.post("/models/intents/predict", json={"text": text}).status_code == 200
    response = client.post("/models/intents/predict", json={"instances": texts[5:]})
    assert response.status_code == 200, response.json
    return psi_by_feature(client)


def test_a_text_model_profiles_length_and_vocabulary_hits_from_its_vectorizer(
    intents_repository: Path, intents_model: Any
) -> None:
    reference = orjson.loads((intents_repository / "intents" / "1" / REFERENCE_FILE).read_bytes())
    assert [f["name"] for f in reference["features"]] == ["text:length", "text:vocabulary_hits"]
    assert reference["text"]["vocabulary_source"] == "model"
    words = {term for term in intents_model[0].vocabulary_ if " " not in term}
    assert set(reference["text"]["vocabulary"]) == words
    assert set(reference["outputs"]["predict"]["categories"]) == set(intents_model.classes_)


def test_texts_from_the_training_set_show_no_drift(
    intents_repository: Path, intents_data: tuple[list[str], list[str]]
) -> None:
    texts, _ = intents_data
    sample = [texts[i] for i in np.random.default_rng(0).choice(len(texts), 120, replace=False)]
    by_feature = text_psi(intents_repository, sample)
    assert set(by_feature) == {"text:length", "text:vocabulary_hits"}
    assert all(value < 0.1 for value in by_feature.values()), by_feature


def test_much_longer_texts_drift_in_length(
    intents_repository: Path, intents_data: tuple[list[str], list[str]]
) -> None:
    texts, _ = intents_data
    # Four training messages run together: longer. (Their words are all known, more so than in new
    # messages, against which the training texts' hits are profiled: that measure may move too.)
    longer = [" ".join(texts[i : i + 4]) for i in range(0, 200, 4)] * 2
    by_feature = text_psi(intents_repository, longer)
    assert by_feature["text:length"] > 0.25


def test_new_messages_like_the_training_ones_do_not_drift_in_vocabulary_on_a_small_training_set(
    tmp_path: Path, intents_data: tuple[list[str], list[str]]
) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, intents = intents_data
    order = np.random.default_rng(0).permutation(len(texts))
    trained, new = order[:150], order[150:]
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000))
    model.fit([texts[i] for i in trained], [intents[i] for i in trained])
    root = testing.write_repository(tmp_path / "models", {"intents": {"1": (model, ".skops")}})
    pd.DataFrame({"text": [texts[i] for i in trained]}).to_csv(tmp_path / "intents.csv", index=False)
    profile(root / "intents", tmp_path / "intents.csv")

    # 50 messages the model never saw, written like the 150 it learnt from: half of them hold a word
    # none of the 150 has, as half of the 150 hold a word no other of them has.
    by_feature = text_psi(root, [texts[i] for i in new])
    assert by_feature["text:vocabulary_hits"] < 0.25, by_feature


def test_a_word_of_one_training_text_is_a_miss_in_that_text_and_a_hit_in_any_other() -> None:
    from flaskserve.observability.drift.text import profile_texts

    texts = ["the parcel is late", "where is the parcel", "late again"]
    profiled = profile_texts("message", texts, estimator=object())
    assert set(profiled.seen_once) == {"where", "again"}
    measured = profiled.measure(["where is the parcel", "where is it", "late again", "again late"])
    # Scored as profiled: the training text itself misses its own rare word...
    assert measured[:, 1].tolist()[0] == pytest.approx(3 / 4)
    assert measured[:, 1].tolist()[2] == pytest.approx(1 / 2)
    # ...which any other text has seen in training.
    assert measured[:, 1].tolist()[1] == pytest.approx(2 / 3)
    assert measured[:, 1].tolist()[3] == pytest.approx(1.0)


def test_words_outside_the_vocabulary_drift_in_vocabulary_hits(
    intents_repository: Path, intents_data: tuple[list[str], list[str]]
) -> None:
    texts, _ = intents_data
    # Each message with every other word replaced by one the model never saw: as long, half as known.
    foreign = [
        " ".join(word if i % 2 else f"zq{i}x{j}" for i, word in enumerate(text.split()))
        for j, text in enumerate(texts[:100])
    ]
    by_feature = text_psi(intents_repository, foreign)
    assert by_feature["text:vocabulary_hits"] > 0.25


def test_without_a_word_vectorizer_the_vocabulary_comes_from_the_training_texts() -> None:
    from flaskserve.observability.drift.text import profile_texts

    texts = ["the parcel is late", "where is the parcel", "late again", ""]
    profiled = profile_texts("message", texts, estimator=object())
    assert profiled.source == "data"
    assert set(profiled.vocabulary) == {"the", "parcel", "is", "late", "where", "again"}
    measured = profiled.measure(["the parcel", "the unknown words", ""])
    assert measured[:, 0].tolist() == [2.0, 3.0, 0.0]
    assert measured[:2, 1].tolist() == [1.0, pytest.approx(1 / 3)]
    assert np.isnan(measured[2, 1])
    # A text without tokens profiles as missing, at training as at serving.
    assert profiled.hits.proportions[0] == pytest.approx(0.25)
