"""The authorisation matrix: every route, by every kind of key, by every way of naming a model.

The routes come from the built app's ``url_map``, as in ``tests/security/test_routes.py``;
here each is also called with its model (or path) written every way a client can
write it: percent-encoded (``%69ris``, ``iris%2F..``), with dot segments
(``/models/../models/iris/predict``, ``/v2/models/./iris/infer``), in another case,
with a trailing or doubled slash, and with ``X-Model-Name`` naming another model
(``/invocations`` reads it; the routes that name their model in the path must not).
Each request goes with no key, an unknown key, a revoked key, every key without the
scope it needs and every key with it.

The expected answer of each cell is worked out here from the route's declared access
and the key's scopes, independently of ``security/auth.py``:

* a request without a valid key gets 401 unless it reaches an open route;
* a valid key without the scope gets 403 from a route it reaches;
* a key with the scope never gets 401 or 403, and the plain spelling gets a success;
* a prediction answered with a success names (``X-Model-Name``) the very model the
  key was checked against, so authentication and the prediction edge agree;
* nothing gets a 5xx.

The Flask test client decodes percent-escapes before routing, as WSGI servers do;
the raw-HTTP cases at the end send the paths and headers exactly as written to real
two-worker servers (gunicorn and granian), whose own parsing is then under test.

A revoked key is tested as it applies to an app built after the revocation: the key
file is read once at start-up, so a running server honours ``flaskserve keys revoke``
only once restarted.
"""

from __future__ import annotations

import http.client
import re
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from flaskserve.access import MODEL_NAME_HEADER, Access, ModelFrom
from flaskserve.app import create_app
from flaskserve.security.keys import KeyStore
from flaskserve.settings import Settings
from flaskserve.web.routing import declared_access
from live_server import RunningServer

#: The model requests name, the server's default model, and a model only admin routes name.
MODEL = "iris"
DEFAULT = "linear"
ADMIN_MODEL = "diabetes"
#: One row each model predicts from, in feature order.
ROWS = {"iris": [5.1, 3.5, 1.4, 0.2], "linear": [1.0, 2.0], "diabetes": [0.01] * 10}

#: The keys of the matrix by name, with their scopes; ``predict-IRIS`` is scoped to a name that
#: differs from a served model only in case.
KEY_SCOPES = {
    "predict-iris": ("predict:iris",),
    "predict-linear": ("predict:linear",),
    "predict-IRIS": ("predict:IRIS",),
    "predict-all": ("predict",),
    "read": ("read",),
    "metrics": ("metrics",),
    "read-metrics": ("read", "metrics"),
    "admin": ("admin",),
}
#: A key with every permission, revoked before the app is built.
REVOKED = "revoked-admin"
KEY_KINDS = ("no key", "bad key", "revoked key", "wrong scope", "right scope")

_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def allows(scopes: tuple[str, ...], scope: str, model: str | None) -> bool:
    """What a key with ``scopes`` may do, written from the scope table in ``docs/security.md``."""
    if scope == "open" or "admin" in scopes:
        return True
    if scope == "predict":
        return "predict" in scopes or f"predict:{model}" in scopes
    return scope in scopes


@dataclass(frozen=True)
class Naming:
    """One way of writing a request to a route: its path as sent, and headers that name a model."""

    variant: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Key:
    """A key as a request presents it: its kind in the matrix, its name, the secret and its scopes."""

    kind: str
    name: str
    secret: str | None
    scopes: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.kind not in ("no key", "bad key", "revoked key")

    def headers(self) -> tuple[tuple[str, str], ...]:
        return () if self.secret is None else (("Authorization", f"Bearer {self.secret}"),)


@dataclass
class Verdict:
    """What the matrix sent and what it found wrong."""

    requests: int = 0
    wrong: list[str] = field(default_factory=list)


def body_for(model: str, path: str) -> bytes:
    """A body ``model`` predicts from, in the protocol of ``path``: a request that reaches it succeeds."""
    row = ROWS.get(model, ROWS[MODEL])
    if path.startswith("/v2/"):
        tensor = {"name": "input", "datatype": "FP64", "shape": [1, len(row)], "data": row}
        return orjson.dumps({"inputs": [tensor]})
    return orjson.dumps({"instances": [row]})


def _encode_first(text: str) -> str:
    return f"%{ord(text[0]):02X}{text[1:]}"


def namings(rule: Rule) -> list[Naming]:
    """Every way the matrix writes a request to ``rule``."""
    access = declared_access(rule)
    name = ADMIN_MODEL if access is not None and access.scope == "admin" else MODEL
    values = {"name": name, "version": "1", "filename": "docs.js"}
    path = _VARIABLE.sub(lambda match: values.get(match.group(1), "x"), rule.rule)
    first, _, rest = path.lstrip("/").partition("/")
    found = [
        Naming("as served", path),
        Naming("dot segment", f"/./{path.lstrip('/')}"),
        Naming("path in capitals", path.upper()),
    ]
    # A path that begins with // names a host to the test client: those are sent over raw HTTP below.
    if first:
        found.append(Naming("parent segment", f"/{first}/../{path.lstrip('/')}"))
        found.append(Naming("trailing slash", path + "/"))
    if rest:
        found.append(Naming("doubled slash", f"/{first}//{rest}"))
    if first and first[0].isalpha():
        found.append(Naming("percent-encoded path", f"/{_encode_first(path.lstrip('/'))}"))
    if "name" in rule.arguments:
        spelled = {
            "percent-encoded name": _encode_first(name),
            "name fully percent-encoded": "".join(f"%{ord(c):02X}" for c in name),
            "name in capitals": name.upper(),
            "name capitalised": name.capitalize(),
            "name then %2F..": f"{name}%2F..",
            "name, %2F%2E%2E%2F, another model": f"{name}%2F%2E%2E%2F{DEFAULT}",
            "another model, %2F..%2F, the name": f"{DEFAULT}%2F..%2F{name}",
            "dot segment before the name": f"./{name}",
            "another model, .., the name": f"{DEFAULT}/../{name}",
        }
        for variant, written in spelled.items():
            found.append(Naming(variant, path.replace(f"/{name}", f"/{written}", 1)))
    if access is not None and access.model_from is ModelFrom.HEADER:
        found += header_namings(path)
    elif access is not None and access.model_from is not None:
        # Routes that name their model in the path (or use the default) must ignore the header.
        other = MODEL if access.model_from is ModelFrom.DEFAULT else DEFAULT
        found.append(Naming("header names another model", path, ((MODEL_NAME_HEADER, other),)))
    return found


def header_namings(path: str) -> list[Naming]:
    """``/invocations``: the model named by ``X-Model-Name`` every way it can be written."""
    header = MODEL_NAME_HEADER
    return [
        Naming("header names the model", path, ((header, MODEL),)),
        Naming("header name in lower case", path, (("x-model-name", MODEL),)),
        Naming("header with underscores", path, (("X_Model_Name", MODEL),)),
        Naming("header value in capitals", path, ((header, MODEL.upper()),)),
        Naming("header value padded", path, ((header, f" {MODEL} "),)),
        Naming("header value percent-encoded", path, ((header, _encode_first(MODEL)),)),
        Naming("header empty", path, ((header, ""),)),
        Naming("header twice, model first", path, ((header, MODEL), (header, DEFAULT))),
        Naming("header twice, model last", path, ((header, DEFAULT), (header, MODEL))),
        Naming("header names the model and a version", path, ((header, MODEL), ("X-Model-Version", "2"))),
    ]


@dataclass(frozen=True)
class Cell:
    """A request as the server will see it: the rule it reaches, its declared scope, the model it names."""

    naming: Naming
    method: str
    reached: Rule | None
    scope: str | None
    model: str | None
    body: bytes | None

    @classmethod
    def of(cls, app: Flask, rule: Rule, method: str, naming: Naming) -> Cell:
        """Werkzeug parses the request as the server does; the model is read as the route declares."""
        environ = EnvironBuilder(path=naming.path, method=method, headers=list(naming.headers)).get_environ()
        try:
            reached, arguments = app.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:
            reached, arguments = None, {}
        access = declared_access(reached) if reached is not None else None
        scope = None if reached is None else "admin" if access is None else access.scope
        model = None
        if access is not None and access.model_from is ModelFrom.PATH:
            model = str(arguments["name"])
        elif access is not None and access.model_from is not None:
            named = (
                Request(environ).headers.get(MODEL_NAME_HEADER)
                if access.model_from is ModelFrom.HEADER
                else None
            )
            model = named or DEFAULT
        # A prediction route gets a body its model predicts from, wherever the request lands.
        declared = declared_access(rule)
        body = None
        if declared is not None and declared.model_from is not None:
            body = body_for(model or _route_model(declared), naming.path)
        return cls(naming, method, reached, scope, model, body)

    @property
    def predicts(self) -> bool:
        access = declared_access(self.reached) if self.reached is not None else None
        return access is not None and access.model_from is not None

    def expected(self, key: Key, status: int, answered_by: str | None) -> str | None:
        """What is wrong with ``status`` for this cell and ``key``, or None."""
        if status >= 500:
            return f"answered {status}"
        if self.scope == "open":
            return None if status not in (401, 403) else f"an open route answered {status}"
        if not key.valid:
            return None if status == 401 else f"expected 401, got {status}"
        if self.scope is None:
            return None if status in (308, 404, 405) else f"reaches no route, yet got {status}"
        if not allows(key.scopes, self.scope, self.model):
            return (
                None
                if status == 403
                else f"needs {self.scope} {self.model or ''}: expected 403, got {status}"
            )
        if status in (401, 403):
            return f"the key may ({self.scope} {self.model or ''}), yet got {status}"
        if self.predicts and 200 <= status < 300 and answered_by != self.model:
            return f"authorised for {self.model!r} but answered by {answered_by!r}"
        if self.naming.variant == "as served" and not 200 <= status < 300:
            return f"the plain request with a permitted key got {status}"
        return None


def _route_model(access: Access) -> str:
    """The model a prediction route uses when the request names none it reaches."""
    return DEFAULT if access.model_from in (ModelFrom.DEFAULT, ModelFrom.HEADER) else MODEL


def keys_of(kind: str, cell: Cell, store_keys: dict[str, str]) -> list[Key]:
    if kind == "no key":
        return [Key(kind, kind, None)]
    if kind == "bad key":
        return [Key(kind, kind, "fs_" + secrets.token_urlsafe(32))]
    if kind == "revoked key":
        return [Key(kind, REVOKED, store_keys[REVOKED], ("admin",))]
    scope = cell.scope or "admin"
    wanted = kind == "right scope"
    return [
        Key(kind, name, store_keys[name], scopes)
        for name, scopes in KEY_SCOPES.items()
        if allows(scopes, scope, cell.model) == wanted
    ]


@pytest.fixture
def keyed(make_settings: Callable[..., Settings], tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """Settings with a key file holding every key of the matrix, and the revoked key already revoked."""
    store = KeyStore(tmp_path / "keys.json")
    secrets_by_name = {name: store.create(name, scopes) for name, scopes in KEY_SCOPES.items()}
    secrets_by_name[REVOKED] = store.create(REVOKED, ["admin"])
    store.save()
    store = KeyStore.load(tmp_path / "keys.json")
    store.revoke(REVOKED)
    store.save()
    return make_settings(keys_file=tmp_path / "keys.json"), secrets_by_name


def routes(app: Flask) -> list[tuple[Rule, str]]:
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods or ())
        if method not in ("HEAD", "OPTIONS")
    ]


@pytest.mark.parametrize("kind", [pytest.param(kind, id=kind) for kind in KEY_KINDS])
def test_no_request_without_the_scope_reaches_a_route_or_a_model(
    keyed: tuple[Settings, dict[str, str]], kind: str
) -> None:
    settings, store_keys = keyed
    app = create_app(settings)
    client = app.test_client()
    verdict = Verdict()
    for rule, method in routes(app):
        for naming in namings(rule):
            cell = Cell.of(app, rule, method, naming)
            for key in keys_of(kind, cell, store_keys):
                headers = [*naming.headers, *key.headers()]
                if cell.body is not None:
                    headers.append(("Content-Type", "application/json"))
                with client.open(naming.path, method=method, headers=headers, data=cell.body) as response:
                    status, answered_by = response.status_code, response.headers.get(MODEL_NAME_HEADER)
                verdict.requests += 1
                problem = cell.expected(key, status, answered_by)
                if problem:
                    verdict.wrong.append(
                        f"{method} {naming.path} {dict(naming.headers)} [{key.name}]: {problem}"
                    )

    print(f"\n{kind}: {verdict.requests} requests, {len(verdict.wrong)} wrong")
    assert verdict.wrong == []
    assert verdict.requests > 0


# -- Raw HTTP: the paths and headers exactly as written, parsed by the real servers ------------------

#: (what, request target, headers, the model a bypass would reach). ``{origin}`` is the server's.
RAW_CASES: list[tuple[str, str, tuple[tuple[str, str], ...], str]] = [
    ("percent-encoded letter", "/models/%69ris/predict", (), MODEL),
    ("percent-encoded name", "/models/%69%72%69%73/predict", (), MODEL),
    ("name then %2F..", "/models/iris%2F../predict", (), MODEL),
    ("another model, %2F..%2F, the name", "/models/linear%2F..%2Firis/predict", (), MODEL),
    ("another model, .., the name", "/models/linear/../iris/predict", (), MODEL),
    ("parent segment", "/models/../models/iris/predict", (), MODEL),
    ("dot segment, simple", "/models/./iris/predict", (), MODEL),
    ("dot segment, v2", "/v2/models/./iris/infer", (), MODEL),
    ("encoded dots, v2", "/v2/models/linear/%2E%2E/iris/infer", (), MODEL),
    ("encoded colon, v1", "/v1/models/iris%3Apredict", (), MODEL),
    ("dots across the verb, v1", "/v1/models/linear:predict/../../iris:predict", (), MODEL),
    ("name in capitals", "/models/IRIS/predict", (), MODEL),
    ("trailing slash", "/models/iris/predict/", (), MODEL),
    ("leading double slash", "//models/iris/predict", (), MODEL),
    ("inner double slash", "/models//iris/predict", (), MODEL),
    ("absolute form", "{origin}/models/iris/predict", (), MODEL),
    ("query naming another model", "/models/iris/predict?name=linear", (), MODEL),
    ("encoded NUL after the name", "/models/iris%00/predict", (), MODEL),
    ("encoded space after the name", "/models/iris%20/predict", (), MODEL),
    (
        "path route, header names another model",
        "/models/linear/predict",
        ((MODEL_NAME_HEADER, MODEL),),
        MODEL,
    ),
    ("default route, header names another model", "/predict", ((MODEL_NAME_HEADER, MODEL),), MODEL),
    ("default route, key for another model", "/predict", (), DEFAULT),
    ("invocations, header names the model", "/invocations", ((MODEL_NAME_HEADER, MODEL),), MODEL),
    ("invocations, header name in lower case", "/invocations", (("x-model-name", MODEL),), MODEL),
    ("invocations, header with underscores", "/invocations", (("X_Model_Name", MODEL),), MODEL),
    ("invocations, header padded", "/invocations", ((MODEL_NAME_HEADER, f"  {MODEL}  "),), MODEL),
    ("invocations, header in capitals", "/invocations", ((MODEL_NAME_HEADER, "IRIS"),), MODEL),
    ("invocations, header percent-encoded", "/invocations", ((MODEL_NAME_HEADER, "%69ris"),), MODEL),
    (
        "invocations, header twice, model first",
        "/invocations",
        ((MODEL_NAME_HEADER, MODEL), (MODEL_NAME_HEADER, DEFAULT)),
        MODEL,
    ),
    (
        "invocations, header twice, model last",
        "/invocations",
        ((MODEL_NAME_HEADER, DEFAULT), (MODEL_NAME_HEADER, MODEL)),
        MODEL,
    ),
    ("invocations, header folded", "/invocations", ((MODEL_NAME_HEADER, f"{DEFAULT}\r\n {MODEL}"),), MODEL),
]
SERVERS = [pytest.param("gunicorn", id="gunicorn"), pytest.param("granian", id="granian")]


def exchange(
    server: RunningServer, target: str, headers: tuple[tuple[str, str], ...], body: bytes
) -> tuple[int, str | None]:
    """POST ``body`` to ``target`` on a new connection, sent byte for byte; the status and X-Model-Name."""
    address = urlsplit(server.url)
    lines = [
        f"POST {target.format(origin=server.url)} HTTP/1.1",
        f"Host: {address.netloc}",
        "Connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(raw)
        response = http.client.HTTPResponse(connection)
        response.begin()
        response.read()
        return response.status, response.getheader(MODEL_NAME_HEADER)


@pytest.fixture
def raw_keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A key file with a key per model, one with every scope revoked, and their secrets."""
    path = tmp_path / "raw-keys.json"
    store = KeyStore(path)
    secrets_by_name = {
        "predict-iris": store.create("predict-iris", ["predict:iris"]),
        "predict-linear": store.create("predict-linear", ["predict:linear"]),
        REVOKED: store.create(REVOKED, ["admin"]),
    }
    store.revoke(REVOKED)
    store.save()
    return path, secrets_by_name


@pytest.mark.e2e
@pytest.mark.parametrize("server_kind", SERVERS)
def test_paths_and_headers_as_written_reach_no_model_without_the_scope(
    start_server: Callable[..., RunningServer], raw_keys: tuple[Path, dict[str, str]], server_kind: str
) -> None:
    keys_file, store_keys = raw_keys
    server = start_server("--keys-file", str(keys_file), "--server", server_kind, workers=2)
    other = {MODEL: "predict-linear", DEFAULT: "predict-iris"}
    wrong: list[str] = []
    sent = 0
    for model in (MODEL, DEFAULT):
        # The plain request with the key for the model succeeds: the bodies are good ones.
        plain = "/predict" if model == DEFAULT else f"/models/{model}/predict"
        bearer = (("Authorization", f"Bearer {store_keys[f'predict-{model}']}"),)
        assert exchange(server, plain, bearer, body_for(model, plain)) == (200, model)
    for what, target, headers, sneaked in RAW_CASES:
        body = body_for(sneaked, target)
        for key_name in (None, REVOKED, other[sneaked]):
            presented = () if key_name is None else (("Authorization", f"Bearer {store_keys[key_name]}"),)
            status, answered_by = exchange(server, target, (*headers, *presented), body)
            sent += 1
            allowed = {"predict-iris": MODEL, "predict-linear": DEFAULT}.get(key_name or "")
            if status >= 500:
                wrong.append(f"{what} [{key_name}]: {status}")
            elif 200 <= status < 300 and (answered_by is None or answered_by != allowed):
                wrong.append(f"{what} [{key_name}]: {status} answered by {answered_by!r}")
            elif key_name in (None, REVOKED) and status not in (400, 401):
                wrong.append(f"{what} [{key_name}]: {status}, expected 401 (or 400 from the server itself)")

    print(f"\n{server_kind}: {sent} raw requests, {len(wrong)} wrong")
    assert wrong == []
