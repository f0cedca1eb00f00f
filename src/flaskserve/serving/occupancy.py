"""Count the requests inside the process, for the batcher's "is anyone else coming?" test."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flaskserve.inference.batcher import Occupancy

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def count_requests(app: WSGIApp, occupancy: Occupancy) -> WSGIApp:
    """Wrap a WSGI app so that ``occupancy`` counts the requests it is handling.

    A request counts from the moment the app is called until it returns its body
    iterable: the model work is done by then, only the writing is left.
    """

    def counted(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        occupancy.enter()
        try:
            return app(environ, start_response)
        finally:
            occupancy.leave()

    return counted
