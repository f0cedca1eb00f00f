"""Request forms: the key of everything a kept reply depends on, and what a kept reply costs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flaskserve.inference.replay import Replay, form_key
from flaskserve.protocols.wire import WireResponse

BASE: dict[str, Any] = {
    "protocol": "v2",
    "explains": False,
    "mimetype": "application/json",
    "mimetype_params": {"charset": "utf-8"},
    "headers": (None,),
    "body": b'{"x": 1, "y": 2}',
}


def key(**changed: Any) -> bytes:
    return form_key(**{**BASE, **changed})


def test_the_same_request_has_the_same_key_whatever_the_order_of_its_parameters() -> None:
    params = {"charset": "utf-8", "boundary": "b"}
    assert key() == key()
    assert key(mimetype_params=params) == key(mimetype_params=dict(reversed(params.items())))


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"protocol": "v1"}, id="another protocol"),
        pytest.param({"explains": True}, id="an explanation"),
        pytest.param({"mimetype": "text/csv"}, id="another media type"),
        pytest.param({"mimetype_params": {"charset": "latin-1"}}, id="another charset"),
        pytest.param({"headers": ("",)}, id="an empty header, not an absent one"),
        pytest.param({"headers": ("16",)}, id="another header value"),
        pytest.param({"body": b'{"x": 1,"y": 2}'}, id="a byte-different body"),
    ],
)
def test_anything_the_reply_depends_on_changes_the_key(changed: dict[str, Any]) -> None:
    assert key(**changed) != key()


def test_a_kept_reply_costs_its_bytes_and_its_rows() -> None:
    reply = WireResponse(b"0123456789", "application/octet-stream", {"Inference-Header-Content-Length": "4"})
    numbers = Replay(reply, "predict", np.zeros((2, 2)), {})
    texts = Replay(reply, "predict", np.array([["where is my parcel"]], dtype=object), {})

    assert numbers.nbytes == 10 + len("Inference-Header-Content-Length") + 1 + 32
    assert numbers.rows == 2
    assert texts.nbytes > 10 + len("where is my parcel")
