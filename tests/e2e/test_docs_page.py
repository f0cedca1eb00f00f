"""The API page (``GET /docs``) in a real headless Chromium, driven with Playwright.

The browser, its fixtures and the error log every page keeps are described in
``chromium.py``; a test fails on any console error or page exception it did not
cause on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from chromium import BrowserPage, needs_chromium
from flaskserve.security.keys import KeyStore
from live_server import RunningServer

pytestmark = [pytest.mark.e2e, needs_chromium]


def open_docs(tab: BrowserPage, server: RunningServer) -> None:
    response = tab.page.goto(server.url + "/docs")
    assert response is not None
    assert response.status == 200
    # The page must work under the policy real users get, not a relaxed one.
    assert "default-src 'self'" in response.headers["content-security-policy"]


def choose(page: Page, verb: str, path: str) -> None:
    """Click the route ``verb path`` in the list, and wait for its form."""
    page.locator("#routes button").filter(has=page.locator(".verb", has_text=verb)).filter(
        has=page.get_by_text(path, exact=True)
    ).click()
    expect(page.locator("#operation h2")).to_have_text(f"{verb} {path}")


def send(page: Page, body: str) -> tuple[str, str]:
    """Send ``body`` to the chosen route; return the status line and the body the page shows."""
    page.locator("#body").fill(body)
    page.get_by_role("button", name="Send").click()
    status = page.locator("#response .status")
    expect(status).not_to_have_text("Sending…")
    return status.inner_text(), page.locator("#response .response-body").inner_text()


def test_the_page_lists_the_routes_of_the_document(shared_server: RunningServer, tab: BrowserPage) -> None:
    open_docs(tab, shared_server)

    page = tab.page
    expect(page.locator("#info")).to_contain_text("OpenAPI 3.1")
    paths = page.locator("#routes .path")
    for path in ("/predict", "/models/{name}/predict", "/v2/models/{name}/infer", "/invocations"):
        expect(paths.get_by_text(path, exact=True).first).to_be_visible()
    assert tab.log.unexpected() == []


def test_a_prediction_sent_from_the_page_is_shown(shared_server: RunningServer, tab: BrowserPage) -> None:
    open_docs(tab, shared_server)

    choose(tab.page, "POST", "/predict")
    status, body = send(tab.page, '{"x": 1, "y": 2}')

    assert status.startswith("200 ")
    assert json.loads(body)["prediction"] == pytest.approx(7.0, abs=0.01)
    assert tab.log.unexpected() == []


def test_a_model_picked_from_the_list_predicts(shared_server: RunningServer, tab: BrowserPage) -> None:
    open_docs(tab, shared_server)
    page = tab.page
    choose(page, "POST", "/models/{name}/predict")
    page.get_by_label("name (path)").select_option("linear")

    status, body = send(page, '{"instances": [{"x": 1, "y": 2}, {"x": 0, "y": 0}]}')

    assert status.startswith("200 ")
    assert json.loads(body)["predictions"] == pytest.approx([7.0, 1.0], abs=0.01)
    assert tab.log.unexpected() == []


def test_a_bad_body_shows_the_json_error_and_status(shared_server: RunningServer, tab: BrowserPage) -> None:
    open_docs(tab, shared_server)

    choose(tab.page, "POST", "/predict")
    status, body = send(tab.page, '{"x": 1,')

    assert status.startswith("400 ")
    assert tab.page.locator("#response .status").get_attribute("class") == "status status-error"
    error = json.loads(body)
    assert error["code"] == "malformed_request"
    assert error["error"]
    # Chromium reports any 4xx answer to a fetch as a console error: that one is expected.
    assert tab.log.unexpected((400, shared_server.url + "/predict")) == []


def test_with_api_keys_the_page_sends_the_key_typed_into_it(
    start_server: Callable[..., RunningServer], tab: BrowserPage, tmp_path: Path
) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key = store.create("docs-reader", ["read", "predict"])
    store.save()
    server = start_server("--keys-file", str(store.path), workers=1)
    page = tab.page
    # A browser cannot put a bearer key on the page it opens, though a proxy in front of
    # the server could. Add it to the page and its assets only: every call the page's
    # script makes must then carry the key typed into its field, or be refused.
    shell = {"document", "stylesheet", "script"}

    def authorize_shell(route: Route) -> None:
        request = route.request
        if request.resource_type in shell:
            route.continue_(headers={**request.headers, "authorization": f"Bearer {key}"})
        else:
            route.continue_()

    page.route(server.url + "/**", authorize_shell)
    open_docs(tab, server)

    expect(page.locator("#info")).to_contain_text("401")
    expect(page.locator("#info")).to_contain_text("API key")
    expect(page.locator("#routes button")).to_have_count(0)

    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#info")).to_contain_text("OpenAPI 3.1")
    choose(page, "POST", "/predict")
    status, body = send(page, '{"x": 1, "y": 2}')

    assert status.startswith("200 ")
    assert json.loads(body)["prediction"] == pytest.approx(7.0, abs=0.01)
    # The key stays in the page's memory: not in its address, cookies or storage.
    assert key not in page.url
    assert page.evaluate("() => [document.cookie, localStorage.length, sessionStorage.length]") == ["", 0, 0]
    assert tab.log.unexpected((401, server.url + "/openapi.json")) == []
