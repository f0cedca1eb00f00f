"""The lane's answer headers behave as Werkzeug's do for what the response policies ask of them."""

from __future__ import annotations

from werkzeug.datastructures import Headers

from flaskserve.web.header_list import HeaderList

PAIRS = [("Content-Type", "application/json"), ("X-Cache", "MISS"), ("x-cache", "HIT"), ("Vary", "Origin")]


def test_setting_a_header_replaces_it_in_place_whatever_its_case_as_werkzeug_does() -> None:
    ours, theirs = HeaderList(PAIRS), Headers(PAIRS)

    ours["X-CACHE"] = "HIT"
    theirs["X-CACHE"] = "HIT"

    assert ours == theirs.to_wsgi_list()
    assert ours.get("x-cache") == theirs.get("x-cache") == "HIT"


def test_setdefault_keeps_a_present_header_and_adds_a_missing_one() -> None:
    headers = HeaderList(PAIRS)

    assert headers.setdefault("vary", "Accept") == "Origin"
    assert headers.setdefault("Cache-Control", "no-store") == "no-store"
    assert headers[-1] == ("Cache-Control", "no-store")
    assert headers.get("Missing") is None
