"""Every route of the fully built app, against the scope table: known, and guarded as the table says.

The routes come from the app's own ``url_map``, so a route added anywhere is checked
here without editing this file: first that the table has a row for it, then that it
answers 401, 403 or neither with each kind of key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from flaskserve.app import create_app
from flaskserve.security.keys import SCOPES, KeyStore
from flaskserve.security.scopes import ROUTE_SCOPES, Scope, is_known_rule, required_scope
from flaskserve.settings import Settings

MODEL = "linear"
#: Values for URL variables: a served model, its version, and a file name for static routes.
URL_VALUES = {"name": MODEL, "version": "1", "filename": "missing.css"}
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


@pytest.fixture
def keyed_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return make_settings(keys_file=tmp_path / "keys.json")


def build_app(settings: Settings) -> tuple[Flask, dict[tuple[str, str], str]]:
    """The app, and one key per (case, scope name): the narrowest key with it, the widest without."""
    store = KeyStore(settings.keys_file)
    keys = {}
    for scope in (Scope("predict", MODEL), Scope("read"), Scope("metrics"), Scope("admin")):
        keys["with scope", scope.name] = store.create(f"with-{scope.name}", scopes_with(scope))
        keys["without scope", scope.name] = store.create(f"without-{scope.name}", scopes_without(scope))
    store.save()
    return create_app(settings), keys


def routes(app: Flask) -> list[tuple[Rule, str]]:
    """Every (rule, method) the app answers, minus the methods Flask adds by itself."""
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods or ())
        if method not in ("HEAD", "OPTIONS")
    ]


def url_for(rule: Rule) -> str:
    return _VARIABLE.sub(lambda match: URL_VALUES.get(match.group(1), "x"), rule.rule)


def needed(rule: Rule, method: str) -> Scope:
    scope = required_scope(rule.rule, method, {k: URL_VALUES.get(k, "x") for k in rule.arguments})
    return Scope("predict", MODEL) if scope == Scope("predict") else scope


def scopes_with(scope: Scope) -> list[str]:
    """The narrowest scopes that allow ``scope``."""
    if scope.name == "predict":
        return [f"predict:{scope.model}"] if scope.model else ["predict"]
    return [scope.name]


def scopes_without(scope: Scope) -> list[str]:
    """The widest scopes that do not allow ``scope`` (every other scope, never ``admin``)."""
    others = [name for name in SCOPES if name not in ("admin", scope.name)]
    if scope.name == "predict":
        others.append("predict:some-other-model")
    return others


def test_every_route_has_a_row_in_the_scope_table(keyed_settings: Settings) -> None:
    app, _ = build_app(keyed_settings)

    unknown = sorted({rule.rule for rule in app.url_map.iter_rules() if not is_known_rule(rule.rule)})

    assert unknown == [], f"add these routes to ROUTE_SCOPES in flaskserve/security/scopes.py: {unknown}"


def _send(app: Flask, rule: Rule, method: str, headers: dict[str, str]) -> int:
    client = app.test_client()
    extra: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.open(url_for(rule), method=method, headers=headers, **extra).status_code


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("no key", id="no key: 401 except probes"),
        pytest.param("bad key", id="unknown key: 401 except probes"),
        pytest.param("without scope", id="key without the scope: 403 except probes"),
        pytest.param("with scope", id="key with the scope: neither 401 nor 403"),
    ],
)
def test_every_route_answers_each_kind_of_key_as_the_table_says(keyed_settings: Settings, case: str) -> None:
    app, keys = build_app(keyed_settings)
    wrong: dict[str, tuple[str, int]] = {}
    for rule, method in routes(app):
        scope = needed(rule, method)
        if case == "no key":
            headers: dict[str, str] = {}
        elif case == "bad key":
            headers = {"Authorization": "Bearer fs_not-a-key-this-server-issued"}
        elif scope.name == "open":
            headers = {"Authorization": f"Bearer {keys[case, 'read']}"}
        else:
            headers = {"Authorization": f"Bearer {keys[case, scope.name]}"}
        status = _send(app, rule, method, headers)
        if scope.name == "open" or case == "with scope":
            expected = "not 401/403"
            ok = status not in (401, 403) and status < 500
        else:
            expected = "403" if case == "without scope" else "401"
            ok = status == int(expected)
        if not ok:
            wrong[f"{method} {rule.rule} (needs {scope.name})"] = (expected, status)

    assert wrong == {}


def test_the_security_guide_lists_every_row_of_the_scope_table() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "security.md").read_text(encoding="utf-8")

    missing = [rule for rule in ROUTE_SCOPES if f"| `{rule}` |" not in guide]

    assert missing == [], f"add these rows to the scope table in docs/security.md: {missing}"
