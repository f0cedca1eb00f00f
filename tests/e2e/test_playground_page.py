"""The playground (``/ui``) in a real headless Chromium, driven with Playwright, against ``flaskserve serve``.

The server runs two workers with API keys, so every test also walks the key
flow: the page loads as an empty shell, asks for a key, and keeps the key typed
into it in memory only. It serves the test repository's iris and the digits,
intents and wines examples, trained by their own ``train.py`` and configured
with their own ``flaskserve.toml`` (the playground settings included). The
browser, and the log of console errors (where Chromium reports CSP violations)
and page exceptions that fails a test, are described in ``chromium.py``.

``FLASKSERVE_SCREENSHOTS=DIR`` saves each page as ``DIR/playground-*.png``
(``make screenshots`` writes them into ``docs/images``).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page, Route, expect

from chromium import BrowserLog, BrowserPage, needs_chromium
from flaskserve import testing
from flaskserve.cli import main
from flaskserve.security.keys import KeyStore
from live_server import RunningServer, ServerLauncher
from scenarios.example_code import example_settings, load_example

pytestmark = [pytest.mark.e2e, needs_chromium]

IRIS_SETOSA = {"sepal_length": "5.1", "sepal_width": "3.5", "petal_length": "1.4", "petal_width": "0.2"}
PHONE = {"width": 390, "height": 844}


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("FLASKSERVE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"playground-{name}.png"), full_page=True)


def examples_settings(models: Path) -> dict[str, str]:
    """The examples' per-model settings and trusted types, from their ``flaskserve.toml``, as environment."""
    settings = [example_settings(name, models) for name in ("digits", "intents", "recommendations")]
    per_model = {name: s.models[name].model_dump(mode="json") for s in settings for name in s.models}
    trusted = [kind for s in settings for kind in s.skops_trusted_types]
    return {"FLASKSERVE_MODELS": json.dumps(per_model), "FLASKSERVE_SKOPS_TRUSTED_TYPES": json.dumps(trusted)}


class Playground:
    def __init__(self, server: RunningServer, key: str) -> None:
        self.server = server
        self.key = key

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def open(self, tab: BrowserPage, path: str) -> Page:
        """Open ``path``, see the page ask for a key, type it in and see the page load."""
        page = tab.page
        response = page.goto(self.server.url + path)
        assert response is not None
        assert response.status == 200
        # The page must work under the policy real users get, not a relaxed one.
        assert "default-src 'self'" in response.headers["content-security-policy"]
        expect(page.locator("#status")).to_contain_text("needs an API key")
        page.get_by_label("API key").fill(self.key)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#status")).not_to_contain_text("API key")
        return page

    def first_load(self, path: str) -> tuple[int, str]:
        """The refused load of a page opened without a key: a test expects it in the browser's log."""
        return 401, self.server.url + path


@pytest.fixture(scope="module")
def playground(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playground]:
    work = tmp_path_factory.mktemp("playground")
    models = work / "models"
    shutil.copytree(repository / "iris", models / "iris")
    # Iris version 1 gets a reference profile from its training data: its page shows drift.
    frame, _ = testing.iris_frame()
    frame.to_csv(work / "iris.csv", index=False)
    profiled = CliRunner().invoke(
        main, ["profile", str(models / "iris" / "1" / "model.skops"), "--data", str(work / "iris.csv")]
    )
    assert profiled.exit_code == 0, profiled.output
    for example in ("digits", "intents", "recommendations"):
        load_example(example, "train").main(["--out", str(models)])
    store = KeyStore(work / "keys.json")
    key = store.create("playground", ["read", "predict", "metrics"])
    store.save()
    launcher = ServerLauncher(repository, work)
    server = launcher.start(
        "--keys-file",
        str(store.path),
        "--default-model",
        "iris",
        "--allow-code",
        model_path=models,
        env=examples_settings(models),
    )
    yield Playground(server, key)
    launcher.stop_all()


def test_the_overview_shows_every_model_with_live_figures_summed_over_workers(
    playground: Playground, tab: BrowserPage
) -> None:
    page = playground.open(tab, "/ui")
    iris = page.locator('.card[data-model="iris"]')
    expect(page.locator(".card h2")).to_have_text(["digits", "intents", "iris", "wines"])
    expect(iris).to_contain_text("1 (READY), 2 (READY)")
    requests = iris.locator('tr[data-figure="Requests"] .figure-value')
    expect(requests).not_to_have_text("")
    before = int(requests.inner_text())

    for _ in range(6):
        row = {name: float(value) for name, value in IRIS_SETOSA.items()}
        assert (
            playground.server.post("/models/iris/predict", json=row, headers=playground.auth()).status_code
            == 200
        )

    # Two workers answered them; the card's next reading counts all six.
    expect(requests).to_have_text(str(before + 6), timeout=10_000)
    expect(iris.locator('tr[data-figure="p50 / p99"] .figure-value')).to_contain_text("ms")
    screenshot(page, "overview")
    assert playground.key not in page.url
    assert page.evaluate("() => [document.cookie, localStorage.length, sessionStorage.length]") == ["", 0, 0]
    assert tab.log.unexpected(playground.first_load("/models")) == []


def run_snippet(code: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run a snippet copied from the page in this process; what it printed."""
    capsys.readouterr()
    exec(compile(code, "snippet", "exec"), {})
    return capsys.readouterr().out.strip()


def test_the_iris_form_predicts_from_the_keyboard_and_shows_class_probabilities(
    playground: Playground,
    tab: BrowserPage,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = playground.open(tab, "/ui/models/iris/versions/1")
    for feature, value in IRIS_SETOSA.items():
        page.get_by_label(feature, exact=True).fill(value)

    page.get_by_label("petal_width", exact=True).press("Enter")

    expect(page.locator("#result .answer")).to_have_text("Top class: setosa")
    # Iris version 1 has a reference profile: the page shows the drift the prediction was counted into.
    expect(page.locator('#drift tr[data-drift-feature="petal_length"]')).to_be_visible()
    assert int(page.locator("#drift .drift-summary").get_attribute("data-rows") or "0") >= 1
    bars = page.locator("#result .bars li")
    expect(bars).to_have_count(3)
    probabilities = bars.evaluate_all("items => items.map(item => Number(item.dataset.value))")
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    curl = page.locator("#code-curl").inner_text()
    assert '"petal_length":1.4' in curl
    assert "$FLASKSERVE_API_KEY" in curl
    assert playground.key not in curl
    # The Python snippets, run as a user would paste them, ask for the same answer.
    monkeypatch.setenv("FLASKSERVE_API_KEY", playground.key)
    printed = run_snippet(page.locator("#code-python").inner_text(), capsys)
    assert max(ast.literal_eval(printed).items(), key=lambda item: item[1])[0] == "setosa"
    printed = run_snippet(page.locator("#code-tritonclient").inner_text(), capsys)
    probabilities = [float(v) for v in printed.replace("[", " ").replace("]", " ").split()]
    assert len(probabilities) == 3
    assert probabilities[0] == max(probabilities)  # setosa, the first class
    # Needs the explanation routes: with them the server calls iris explainable, and the bars must add up.
    explainable = playground.server.get("/models/iris", headers=playground.auth()).json().get("explainable")
    if explainable:
        check_explanation_adds_up(page, features=4)
    else:
        expect(page.locator("#explanation")).to_be_hidden()
    screenshot(page, "form")
    assert tab.log.unexpected(playground.first_load("/models/iris")) == []


def check_explanation_adds_up(page: Page, *, features: int) -> None:
    contributions = page.locator("#explanation .bars li")
    expect(contributions).to_have_count(features)
    total = page.locator("#explanation .explain-sum")
    values = contributions.evaluate_all("items => items.map(item => Number(item.dataset.value))")
    base, value = (
        float(total.get_attribute("data-base") or "nan"),
        float(total.get_attribute("data-value") or "nan"),
    )
    assert base + sum(values) == pytest.approx(value, abs=1e-6)


def test_the_explanation_view_draws_the_contract_answer(playground: Playground, tab: BrowserPage) -> None:
    """The explanation routes are faked here, to the contract, so the view is checked on its own."""
    page = tab.page
    answer = {
        "model_name": "iris",
        "model_version": "1",
        "explainer": "linear",
        "scale": "log_odds",
        "explanations": [
            {
                "output": "setosa",
                "base_value": -0.5,
                "value": 4.25,
                "contributions": {
                    "sepal_length": 0.25,
                    "sepal_width": 1.0,
                    "petal_length": 4.0,
                    "petal_width": -0.5,
                },
            }
        ],
    }

    def explainable(route: Route) -> None:
        described = route.fetch()
        route.fulfill(response=described, json={**described.json(), "explainable": True})

    page.route(playground.server.url + "/models/iris", explainable)
    page.route(
        playground.server.url + "/models/iris/versions/1/explain", lambda route: route.fulfill(json=answer)
    )
    page = playground.open(tab, "/ui/models/iris/versions/1")

    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#explanation h3")).to_have_text("Why setosa")
    labels = page.locator("#explanation .bars li .bar-label")
    expect(labels).to_have_text(["petal_length", "sepal_width", "petal_width", "sepal_length"])
    expect(page.locator("#explanation .bars li .bar.negative")).to_have_count(1)
    expect(page.locator("#explanation .explain-sum")).to_contain_text("= 4.25 (log_odds, linear)")
    check_explanation_adds_up(page, features=4)
    assert tab.log.unexpected(playground.first_load("/models/iris")) == []


def test_a_csv_batch_shows_each_row_with_its_answer_or_error_and_downloads(
    playground: Playground, tab: BrowserPage, tmp_path: Path
) -> None:
    page = playground.open(tab, "/ui/models/iris/versions/1")
    upload = tmp_path / "flowers.csv"
    upload.write_text(
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.3,3.3,abc,2.5\n6.7,3.1,5.6,2.4\n"
    )

    page.get_by_label("CSV file with a header row naming the features").set_input_files(str(upload))

    rows = page.locator("#batch-result tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_have_class("refused")
    expect(rows.nth(1)).to_contain_text("abc")
    screenshot(page, "batch")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [row["prediction"] for row in table] == ["setosa", "", "virginica"]
    assert [bool(row["error"]) for row in table] == [False, True, False]
    # The whole batch is refused once, then the bad row alone.
    predict = playground.server.url + "/models/iris/versions/1/predict?method=predict_proba"
    assert tab.log.unexpected(playground.first_load("/models/iris"), (400, predict), (400, predict)) == []


def test_a_digit_drawn_on_the_canvas_is_recognised(playground: Playground, tab: BrowserPage) -> None:
    page = playground.open(tab, "/ui/models/digits")
    pad = page.get_by_role("img", name="Drawing pad, 8 by 8 pixels", exact=False)
    box = pad.bounding_box()
    assert box is not None

    # A stroke down the middle: a one. The digits example declares an image input, so the pad
    # sends its drawing as a PNG (the server reads it with its image decoder), not its pixel values.
    with page.expect_request(lambda r: r.method == "POST" and "/predict" in r.url) as sent:
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.12)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.9, steps=12)
        page.mouse.up()

    assert sent.value.headers["content-type"] == "image/png"
    expect(page.locator("#result .answer")).to_have_text("Top class: 1")
    expect(page.locator("#drift")).to_be_visible()  # the example ships its training profile
    screenshot(page, "drawing")

    # From the keyboard: the cursor starts at the centre (4, 4); three rows up, ink, and predict.
    page.get_by_role("button", name="Clear").click()
    pad.focus()
    for key in ("ArrowUp", "ArrowUp", "ArrowUp", "Space", "Enter"):
        page.keyboard.press(key)
    expect(page.get_by_label("pixel_1_4", exact=True)).to_have_value("16")
    expect(page.get_by_label("pixel_4_4", exact=True)).to_have_value("0")
    expect(page.locator("#result .answer")).to_contain_text("Top class:")
    assert tab.log.unexpected(playground.first_load("/models/digits")) == []


def test_the_intents_model_answers_in_the_chat_box(playground: Playground, tab: BrowserPage) -> None:
    page = playground.open(tab, "/ui/models/intents")

    page.get_by_label("Message").fill("where has my parcel got to")
    page.get_by_label("Message").press("Enter")

    expect(page.locator(".chat-log .from-model")).to_have_attribute("data-label", "track_order")
    screenshot(page, "chat")
    assert tab.log.unexpected(playground.first_load("/models/intents")) == []


def test_the_recommender_shows_items_that_lead_to_their_own(playground: Playground, tab: BrowserPage) -> None:
    page = playground.open(tab, "/ui/models/wines")

    page.get_by_role("button", name="Predict").click()
    items = page.get_by_role("list", name="Recommended items").get_by_role("button")
    expect(items).to_have_text(["Item 20", "Item 56", "Item 40", "Item 54", "Item 7"])
    items.first.click()

    expect(page.get_by_label("item_id")).to_have_value("20")
    expect(items.first).not_to_have_text("Item 20")
    screenshot(page, "recommendations")
    assert tab.log.unexpected(playground.first_load("/models/wines")) == []


def test_the_form_is_readable_at_phone_width(playground: Playground, browser: Browser) -> None:
    context = browser.new_context(viewport=PHONE)
    log = BrowserLog()
    page = context.new_page()
    page.on("console", log.on_console)
    page.on("pageerror", log.on_page_error)
    try:
        playground.open(BrowserPage(page, log), "/ui/models/iris")
        page.get_by_role("button", name="Predict").click()
        expect(page.locator("#result .bars li")).to_have_count(3)

        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "phone")
        assert log.unexpected(playground.first_load("/models/iris")) == []
    finally:
        context.close()
