"""Which scope each route of the built app needs, as its declaration says."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from flaskserve.access import PREDICT_FROM_PATH, READ, Access, ModelFrom, Scope, required_scope
from flaskserve.app import FlaskserveApp
from flaskserve.web.routing import declared_access

IRIS = {"name": "iris"}
IRIS_V2 = {"name": "iris", "version": "2"}


def declared(app: Flask, rule: str) -> Rule:
    """The app's rule written as ``rule`` (converters ignored)."""
    plain = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
    [found] = [r for r in app.url_map.iter_rules() if plain.sub(r"<\1>", r.rule) == plain.sub(r"<\1>", rule)]
    return found


@pytest.mark.parametrize(
    ("rule", "method", "view_args", "scope"),
    [
        # The simple protocol and the catalogue.
        pytest.param("/", "GET", {}, Scope("read"), id="index"),
        pytest.param("/models", "GET", {}, Scope("read"), id="model list"),
        pytest.param("/models/<name>", "GET", IRIS, Scope("read"), id="model metadata"),
        pytest.param(
            "/models/<name>/versions/<version>", "GET", IRIS_V2, Scope("read"), id="version metadata"
        ),
        pytest.param("/predict", "POST", {}, Scope("predict", None), id="predict on the default model"),
        pytest.param(
            "/models/<name>/predict", "POST", IRIS, Scope("predict", "iris"), id="predict on a model"
        ),
        pytest.param(
            "/models/<name>/versions/<version>/predict",
            "POST",
            IRIS_V2,
            Scope("predict", "iris"),
            id="predict on a version",
        ),
        # Probes.
        pytest.param("/livez", "GET", {}, Scope("open"), id="livez"),
        pytest.param("/readyz", "GET", {}, Scope("open"), id="readyz"),
        pytest.param("/ping", "GET", {}, Scope("open"), id="sagemaker ping"),
        pytest.param("/health", "GET", {}, Scope("open"), id="health"),
        pytest.param("/v2/health/live", "GET", {}, Scope("open"), id="v2 live"),
        pytest.param("/v2/health/ready", "GET", {}, Scope("open"), id="v2 ready"),
        pytest.param("/v2/models/<name>/ready", "GET", IRIS, Scope("open"), id="v2 model ready"),
        pytest.param(
            "/v2/models/<name>/versions/<version>/ready", "GET", IRIS_V2, Scope("open"), id="v2 version ready"
        ),
        # Open inference protocol (v2).
        pytest.param("/v2", "GET", {}, Scope("read"), id="v2 server metadata"),
        pytest.param("/v2/models/<name>", "GET", IRIS, Scope("read"), id="v2 model metadata"),
        pytest.param(
            "/v2/models/<name>/versions/<version>", "GET", IRIS_V2, Scope("read"), id="v2 version metadata"
        ),
        pytest.param("/v2/models/<name>/infer", "POST", IRIS, Scope("predict", "iris"), id="v2 infer"),
        pytest.param(
            "/v2/models/<name>/versions/<version>/infer",
            "POST",
            IRIS_V2,
            Scope("predict", "iris"),
            id="v2 version infer",
        ),
        pytest.param("/v2/repository/index", "POST", {}, Scope("read"), id="v2 repository index"),
        pytest.param("/v2/repository/models/<name>/load", "POST", IRIS, Scope("admin"), id="v2 load"),
        pytest.param("/v2/repository/models/<name>/unload", "POST", IRIS, Scope("admin"), id="v2 unload"),
        # KServe v1.
        pytest.param("/v1/models", "GET", {}, Scope("read"), id="v1 model list"),
        pytest.param("/v1/models/<name>", "GET", IRIS, Scope("read"), id="v1 model"),
        pytest.param("/v1/models/<name>:predict", "POST", IRIS, Scope("predict", "iris"), id="v1 predict"),
        pytest.param(
            "/v1/models/<name>/versions/<version>:predict",
            "POST",
            IRIS_V2,
            Scope("predict", "iris"),
            id="v1 version predict",
        ),
        # The rest.
        pytest.param("/invocations", "POST", {}, Scope("predict", None), id="invocations default model"),
        pytest.param("/version", "GET", {}, Scope("read"), id="version"),
        pytest.param("/metrics", "GET", {}, Scope("metrics"), id="metrics"),
        pytest.param("/openapi.json", "GET", {}, Scope("read"), id="openapi"),
        pytest.param("/docs", "GET", {}, Scope("open"), id="docs page shell"),
        pytest.param(
            "/docs/static/<path:filename>",
            "GET",
            {"filename": "docs.js"},
            Scope("open"),
            id="docs page assets",
        ),
    ],
)
def test_each_route_needs_its_scope(
    app: Flask, rule: str, method: str, view_args: dict[str, Any], scope: Scope
) -> None:
    assert required_scope(declared_access(declared(app, rule)), method, view_args, {}) == scope


def test_invocations_predicts_on_the_model_the_request_names(app: Flask) -> None:
    access = declared_access(declared(app, "/invocations"))

    assert required_scope(access, "POST", {}, {"X-Model-Name": "wine"}) == Scope("predict", "wine")


def test_a_route_declared_without_access_needs_admin_even_for_a_preflight() -> None:
    app = FlaskserveApp("undeclared")
    app.add_url_rule("/admin/reset", "reset", lambda: "")
    rule = declared(app, "/admin/reset")

    assert required_scope(declared_access(rule), "GET", {}, {}) == Scope("admin")
    assert required_scope(declared_access(rule), "OPTIONS", {}, {}) == Scope("admin")


def test_preflight_requests_to_declared_routes_are_open() -> None:
    assert required_scope(PREDICT_FROM_PATH, "OPTIONS", IRIS, {}) == Scope("open")


def test_the_method_does_not_open_a_protected_route() -> None:
    assert required_scope(READ, "HEAD", {}, {}) == Scope("read")


@pytest.mark.parametrize(
    ("scope", "model_from"),
    [
        pytest.param("predict", None, id="predict without a model source"),
        pytest.param("read", ModelFrom.PATH, id="a model source on a read route"),
    ],
)
def test_only_predict_routes_say_where_their_model_comes_from(
    scope: str, model_from: ModelFrom | None
) -> None:
    with pytest.raises(ValueError, match="predict route"):
        Access(scope, model_from)
