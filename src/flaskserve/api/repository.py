"""Routes of the model repository extension: list, load, unload, pin and unpin models while serving.

The work is done by :class:`~flaskserve.lifecycle.reloader.Reloader`; these views
parse, call it, write the audit record and render. A load that fails answers
400 with the loader's own code (``untrusted_model``, ``model_load_failed``): at
start-up a bad file is the operator's error and stops the server, but asked for
through the API it is a request the server cannot carry out, while it goes on
serving what it had.

:func:`init_app` wires the reloader into an app: the routes, and — only when the
server has a run directory shared by its workers — the ``before_request`` hook
that repeats other workers' actions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import Blueprint, Flask, Response, current_app

from flaskserve.access import ADMIN, READ
from flaskserve.errors import FlaskserveError, JournalUnavailable, ModelLoadError, UntrustedModel
from flaskserve.lifecycle.reloader import Reloader
from flaskserve.models.served import ServedModel
from flaskserve.observability.context import note
from flaskserve.protocols.openapi import Link, Operation
from flaskserve.protocols.v2 import repository as wire
from flaskserve.runtime import get_runtime
from flaskserve.security import audit
from flaskserve.web.bodies import json_response, read_optional_json
from flaskserve.web.errors import error_response

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("repository", __name__)


def init_app(app: Flask, reloader: Reloader) -> None:
    """Serve the repository routes with ``reloader``; follow its journal if it has one.

    The hook is registered only with a journal, so an app without one (tests,
    ``flask run``, a single process) pays nothing per request.
    """
    if reloader.journal is not None:
        app.before_request(reloader.before_request)
    app.register_blueprint(blueprint)


def _reloader() -> Reloader:
    return get_runtime(current_app).reloader


def _optional_json() -> Any:
    """The parsed body, or ``{}`` when there is none: both bodies are optional, but not ``null``."""
    return read_optional_json(get_runtime(current_app).settings.limits.max_json_depth, absent={})


_EMPTY = {"application/json": {"type": "object", "maxProperties": 0}}
_BY_NAME = (400, 404, 415)
#: The model the answered request named.
_SAME_MODEL = {"name": "$request.path.name"}
#: What a client may do with a model it has just loaded.
_AFTER_LOAD = (
    Link("infer", "POST", "/v2/models/<name>/infer", _SAME_MODEL, "Predict with the model just loaded."),
    Link("metadata", "GET", "/v2/models/<name>", _SAME_MODEL, "Its inputs and outputs."),
    Link("ready", "GET", "/v2/models/<name>/ready", _SAME_MODEL, "Its readiness: ready."),
    Link("unload", "POST", "/v2/repository/models/<name>/unload", _SAME_MODEL, "Stop serving it again."),
)
#: What a client may do with a model it has just pinned.
_AFTER_PIN = (
    Link("infer", "POST", "/v2/models/<name>/infer", _SAME_MODEL, "Predict with the pinned version."),
    Link("unpin", "POST", "/v2/repository/models/<name>/unpin", _SAME_MODEL, "Serve by the policy again."),
)
#: What a client may do with a model it has just unloaded.
_AFTER_UNLOAD = (
    Link("load", "POST", "/v2/repository/models/<name>/load", _SAME_MODEL, "Serve it again."),
    Link("ready", "GET", "/v2/models/<name>/ready", _SAME_MODEL, "Its readiness: no longer served (404)."),
)


@blueprint.post(
    "/v2/repository/index",
    access=READ,
    operation=Operation(
        "Model repository: every model version, served or only on disk, with its state",
        "v2",
        request={"application/json": wire.RepositoryIndexRequest},
        request_required=False,
        response={"application/json": wire.RepositoryIndex},
        errors=(400, 415),
        description='The body is optional; {"ready": true} lists only the versions that are ready.',
    ),
)
def index() -> Response:
    wanted = wire.decode_index_request(_optional_json())
    rows = _reloader().index(ready_only=wanted.ready)
    document = wire.index_document(
        {
            "name": r.name,
            "version": r.version,
            "state": r.state.value,
            "reason": r.reason,
            "policy": r.policy or None,
            "policy_source": r.policy_source or None,
        }
        for r in rows
    )
    return json_response(document)


@blueprint.post(
    "/v2/repository/models/<name>/load",
    access=ADMIN,
    operation=Operation(
        "Model repository: load or reload every version of a model",
        "v2",
        request={"application/json": wire.LoadRequest},
        request_required=False,
        response=_EMPTY,
        errors=_BY_NAME,
        links=_AFTER_LOAD,
        description=(
            "Rescans the model's folder and loads every version with the server's trust policy and "
            "settings, then serves them all at once. On failure (400) the versions served before "
            "keep serving. Needs the admin scope."
        ),
    ),
)
def load(name: str) -> Response:
    """Load, or reload, every version of a model from the repository."""
    wire.decode_load_request(_optional_json())
    return _audited("load", name, None, lambda: _reloader().load(name))


@blueprint.post(
    "/v2/repository/models/<name>/unload",
    access=ADMIN,
    operation=Operation(
        "Model repository: stop serving every version of a model",
        "v2",
        request={"application/json": wire.LoadRequest},
        request_required=False,
        response=_EMPTY,
        errors=_BY_NAME,
        links=_AFTER_UNLOAD,
        description="A model that is not loaded answers 404. Needs the admin scope.",
    ),
)
def unload(name: str) -> Response:
    """Stop serving every version of a model."""
    wire.decode_load_request(_optional_json())
    try:
        removed = _reloader().unload(name)
    except JournalUnavailable as exc:
        audit.record("unload", model=name, outcome="failed", reason=exc.message)
        raise
    for entry in removed:
        sha256 = entry.model.sha256 if entry.model is not None else None
        audit.record("unload", model=name, version=entry.version, sha256=sha256)
    return json_response({})


@blueprint.post(
    "/v2/repository/models/<name>/pin",
    access=ADMIN,
    operation=Operation(
        "Model repository: serve one version of a model alone (a rollback)",
        "v2",
        request={"application/json": wire.PinRequest},
        request_required=False,
        response=_EMPTY,
        errors=_BY_NAME,
        links=_AFTER_PIN,
        description=(
            'The body names the version, {"version": "3"}; without one, the version that answers '
            "unversioned requests now is pinned (a rollout frozen). It is loaded and verified if it is "
            "not served yet, then served alone by every worker, whatever the model's version policy says, "
            "until it is unpinned, the model is unloaded, or the model's settings file changes "
            "(docs/operations.md). A version the model's folder does not hold answers 404; one that "
            "fails to load, 400, and the versions served before keep serving. Needs the admin scope."
        ),
    ),
)
def pin(name: str) -> Response:
    """Serve one version of a model alone, over its version policy."""
    wanted = wire.decode_pin_request(_optional_json())
    return _audited("pin", name, wanted.version, lambda: _reloader().pin(name, wanted.version))


@blueprint.post(
    "/v2/repository/models/<name>/unpin",
    access=ADMIN,
    operation=Operation(
        "Model repository: lift a pin made through the API",
        "v2",
        request={"application/json": wire.LoadRequest},
        request_required=False,
        response=_EMPTY,
        errors=_BY_NAME,
        links=_AFTER_LOAD,
        description=(
            "The model's version policy chooses its versions again, in every worker. A model not "
            "pinned through the API is left as it is; a pin written in its settings file is lifted "
            "by editing the file (flaskserve unpin). Needs the admin scope."
        ),
    ),
)
def unpin(name: str) -> Response:
    """Lift the API's pin of a model."""
    wire.decode_load_request(_optional_json())
    return _audited("unpin", name, None, lambda: _reloader().unpin(name))


def _audited(
    action: str, name: str, version: str | None, change: Callable[[], Sequence[ServedModel]]
) -> Response:
    """Run one repository change and audit it, whatever its outcome.

    A model that fails to load answers 400 with the loader's own code (the versions
    served before keep serving); every other refusal goes to the one error handler.
    """
    try:
        models = change()
    except ModelLoadError as exc:
        outcome: audit.Outcome = "refused" if isinstance(exc, UntrustedModel) else "failed"
        audit.record(action, model=name, version=version, outcome=outcome, reason=exc.message)
        return error_response(400, exc.code, exc.message)
    except FlaskserveError as exc:
        audit.record(action, model=name, version=version, outcome="failed", reason=exc.message)
        raise
    note(model=name)
    for model in models:
        audit.record(action, model=name, version=model.version, sha256=model.sha256)
    return json_response({})
