"""The route table: which scope each route needs."""

from __future__ import annotations

from typing import Any

import pytest

from flaskserve.security.scopes import Scope, is_known_rule, required_scope

IRIS = {"name": "iris"}
IRIS_V2 = {"name": "iris", "version": "2"}


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
        pytest.param("/docs/<path:filename>", "GET", {"filename": "x.js"}, Scope("read"), id="docs assets"),
        pytest.param("/ui", "GET", {}, Scope("read"), id="ui"),
        pytest.param("/ui/", "GET", {}, Scope("read"), id="ui with slash"),
        pytest.param("/ui/<path:page>", "GET", {"page": "a"}, Scope("read"), id="ui pages"),
        pytest.param("/static/<path:filename>", "GET", {"filename": "a.css"}, Scope("read"), id="static"),
    ],
)
def test_each_route_needs_its_scope(rule: str, method: str, view_args: dict[str, Any], scope: Scope) -> None:
    assert required_scope(rule, method, view_args) == scope


def test_invocations_predicts_on_the_model_the_request_names() -> None:
    assert required_scope("/invocations", "POST", {}, requested_model="wine") == Scope("predict", "wine")


def test_converters_do_not_change_the_scope() -> None:
    assert required_scope("/models/<string:name>/versions/<int:version>/predict", "POST", IRIS_V2) == Scope(
        "predict", "iris"
    )


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param("/admin/reset", id="unknown route"),
        pytest.param("/models/<name>/delete", id="unknown route under a known one"),
        pytest.param("/uiadmin", id="prefix of a read route without a slash"),
        pytest.param("/metrics/<path:rest>", id="below a route that is not a prefix"),
    ],
)
def test_unknown_routes_need_admin(rule: str) -> None:
    assert required_scope(rule, "GET", {}) == Scope("admin")
    assert not is_known_rule(rule)


def test_preflight_requests_to_known_routes_are_open() -> None:
    assert required_scope("/models/<name>/predict", "OPTIONS", IRIS) == Scope("open")


def test_preflight_requests_to_unknown_routes_still_need_admin() -> None:
    assert required_scope("/admin/reset", "OPTIONS", {}) == Scope("admin")


def test_the_method_does_not_open_a_protected_route() -> None:
    assert required_scope("/metrics", "HEAD", {}) == Scope("metrics")


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param("/v1/models/<name>:predict", id="table row"),
        pytest.param("/docs/<path:filename>", id="read prefix"),
    ],
)
def test_known_rules_are_recognised(rule: str) -> None:
    assert is_known_rule(rule)
