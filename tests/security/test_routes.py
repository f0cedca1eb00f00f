"""Every route of the fully built app, against its declared access: declared, and guarded as declared.

The routes come from the app's own ``url_map``, so a route added anywhere is checked
here without editing this file: first that it declares its access, then that it
answers 401, 403 or neither with each kind of key, and that the security guide
tells the same scope.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from flaskserve.access import Scope, required_scope
from flaskserve.app import create_app
from flaskserve.security.keys import SCOPES, KeyStore
from flaskserve.settings import Settings
from flaskserve.web.routing import declared_access

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


def canonical(rule: str) -> str:
    """The rule without converters, as the security guide writes it: ``<path:f>`` is ``<f>``."""
    return _VARIABLE.sub(lambda match: f"<{match.group(1)}>", rule)


def needed(rule: Rule, method: str) -> Scope:
    values = {k: URL_VALUES.get(k, "x") for k in rule.arguments}
    scope = required_scope(declared_access(rule), method, values, {})
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


def test_every_route_declares_its_access(keyed_settings: Settings) -> None:
    app, _ = build_app(keyed_settings)

    undeclared = sorted({rule.rule for rule in app.url_map.iter_rules() if declared_access(rule) is None})

    assert undeclared == [], f"declare access= on these routes: {undeclared}"


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
def test_every_route_answers_each_kind_of_key_as_it_declares(keyed_settings: Settings, case: str) -> None:
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


#: How the guide's scope column begins for each scope name.
GUIDE_SCOPE = {"open": ("none (open)", "open:"), "read": ("`read`",), "metrics": ("`metrics`",)}
GUIDE_SCOPE |= {"admin": ("`admin`",), "predict": ("`predict`",)}
_GUIDE_ROW = re.compile(r"^\| `(/[^`]*)` \| (.+?) \|$", re.MULTILINE)


def test_the_security_guide_tells_the_declared_scope_of_every_route(keyed_settings: Settings) -> None:
    app, _ = build_app(keyed_settings)
    guide = (Path(__file__).parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    written = dict(_GUIDE_ROW.findall(guide))

    wrong = {}
    for rule, method in routes(app):
        scope = needed(rule, method).name
        row = written.get(canonical(rule.rule))
        if row is None or not row.startswith(GUIDE_SCOPE[scope]):
            wrong[canonical(rule.rule)] = (scope, row)

    assert wrong == {}, f"fix these rows of the scope table in docs/security.md: {wrong}"
