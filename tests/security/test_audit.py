"""The audit trail: admin actions name their actor; refused model files are logged with their digest."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask, g

from flaskserve import testing
from flaskserve.errors import UntrustedModel
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.trust import file_sha256
from flaskserve.security import audit
from flaskserve.settings import load_settings


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == audit.AUDIT_LOGGER]


def test_an_admin_action_names_the_key_that_did_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=audit.AUDIT_LOGGER)
    with Flask("audit-test").test_request_context():
        g.api_key_name = "deployer"
        audit.record("load", model="iris", version="2", sha256="ab" * 32)

    (entry,) = audit_records(caplog)
    assert (entry.actor, entry.action, entry.model, entry.version, entry.outcome) == (  # type: ignore[attr-defined]
        "deployer",
        "load",
        "iris",
        "2",
        "ok",
    )
    assert entry.sha256 == "ab" * 32  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("context", "actor"),
    [
        pytest.param("none", audit.OPERATOR, id="outside a request: the operator"),
        pytest.param("anonymous", audit.ANONYMOUS, id="a request without a key: anonymous"),
    ],
)
def test_the_actor_without_a_key(context: str, actor: str) -> None:
    if context == "none":
        assert audit.actor() == actor
        return
    with Flask("audit-test").test_request_context():
        assert audit.actor() == actor


def test_refusals_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    audit.record("unload", model="iris", outcome="refused", reason="model is in use")

    (entry,) = audit_records(caplog)
    assert entry.levelno == logging.WARNING


def test_an_untrusted_model_file_is_refused_with_its_digest_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = testing.save_model(testing.train_linear_xy(), tmp_path / "linear.joblib")
    settings = load_settings(None, model_path=path, keys_file=tmp_path / "keys.json")

    with pytest.raises(UntrustedModel):
        load_registry(settings, default_loaders())

    (refused,) = [r for r in caplog.records if r.getMessage() == "model refused"]
    assert refused.sha256 == file_sha256(path)  # type: ignore[attr-defined]
    assert refused.model == "linear"  # type: ignore[attr-defined]
