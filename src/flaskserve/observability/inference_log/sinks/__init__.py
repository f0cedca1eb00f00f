"""Sinks by URL scheme: the table :func:`sink_factory` reads.

==================  ==========================================================
``postgresql://``   a table (``?table=NAME``, default ``inference_log``) created
                    on first use; each batch one ``COPY``  (:mod:`.postgres`)
``file://DIR``      JSON Lines, one file per worker, rotated by size
                    (``?max_bytes=N``, ``?gzip=1``)  (:mod:`.files`)
``http(s)://``      CloudEvents in binary mode, a request and a response event
                    per record sharing its id  (:mod:`.cloudevents`)
==================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flaskserve.errors import ConfigError
from flaskserve.observability.inference_log.writer import Sink

__all__ = ["SCHEMES", "check_url", "sink_factory"]

SCHEMES = ("postgresql", "postgres", "file", "http", "https")


def check_url(url: str) -> None:
    """Refuse a URL no sink takes, at start-up rather than on the first record."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ConfigError(
            f"inference_log: unknown scheme '{scheme}://'; use postgresql://, file://DIR or http(s)://"
        )
    if scheme in ("postgresql", "postgres"):
        from flaskserve.observability.inference_log.sinks.postgres import require_psycopg

        require_psycopg()


def sink_factory(url: str) -> Callable[[], Sink]:
    """A function that opens the sink of ``url`` (called on the writer's thread)."""
    check_url(url)
    scheme = urlsplit(url).scheme

    def open_sink() -> Sink:
        if scheme in ("postgresql", "postgres"):
            from flaskserve.observability.inference_log.sinks.postgres import PostgresSink

            return PostgresSink(url)
        if scheme == "file":
            from flaskserve.observability.inference_log.sinks.files import JsonLinesSink

            return JsonLinesSink.from_url(url)
        from flaskserve.observability.inference_log.sinks.cloudevents import CloudEventsSink

        return CloudEventsSink(url)

    return open_sink
