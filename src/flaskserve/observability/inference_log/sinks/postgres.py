"""The PostgreSQL sink: one row per prediction, written in batches with ``COPY``.

The table is created on first use (the first worker to get there creates it,
under an advisory lock so that two workers starting together do not collide),
with an index by time and one by model and time: the two ways records are read
back ("what happened at 14:03", "what did churn answer yesterday").

A batch is one ``COPY`` in one transaction: it is in the table whole or not at
all, so a record is never written twice by a retry (there are none: a failed
batch is dropped and counted by the writer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from flaskserve.errors import ConfigError
from flaskserve.observability.inference_log.record import InferenceRecord

__all__ = ["DEFAULT_TABLE", "PostgresSink", "require_psycopg"]

DEFAULT_TABLE = "inference_log"
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Seconds to wait for the database to accept a connection before the batch is dropped.
CONNECT_TIMEOUT_S = 3
#: Arbitrary, fixed: the advisory lock every flaskserve takes to create its table.
_CREATE_LOCK = 7_302_215_516

_COLUMNS = (
    "time",
    "request_id",
    "model",
    "version",
    "protocol",
    "method",
    "key_name",
    "status",
    "latency_ms",
    "inputs",
    "outputs",
)


def require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ConfigError(
            "inference_log: a postgresql:// sink needs psycopg; pip install 'flaskserve[postgres]'"
        ) from None


def split_url(url: str) -> tuple[str, str]:
    """The connection URL psycopg takes, and the table named by ``?table=``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    table = next((value for key, value in query if key == "table"), DEFAULT_TABLE)
    if not _TABLE_NAME.fullmatch(table):
        raise ConfigError(f"inference_log: table name {table!r} must be lower-case letters, digits and _")
    kept = urlencode([(key, value) for key, value in query if key != "table"])
    return urlunsplit(parts._replace(query=kept)), table


class PostgresSink:
    def __init__(self, url: str) -> None:
        import psycopg

        conninfo, self.table = split_url(url)
        self._connection = psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_S, autocommit=False)
        self._create_table()

    def _create_table(self) -> None:
        table = self.table
        with self._connection.transaction(), self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            cursor.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {table} (
                    time timestamptz NOT NULL,
                    request_id text NOT NULL,
                    model text NOT NULL,
                    version text NOT NULL,
                    protocol text NOT NULL,
                    method text NOT NULL,
                    key_name text,
                    status integer NOT NULL,
                    latency_ms double precision NOT NULL,
                    inputs jsonb,
                    outputs jsonb
                )
                """
            )
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {table}_time ON {table} USING brin (time)")
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {table}_model_time ON {table} (model, time)")

    def write(self, records: Sequence[InferenceRecord]) -> None:
        columns = ", ".join(_COLUMNS)
        with (
            self._connection.transaction(),
            self._connection.cursor() as cursor,
            cursor.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy,
        ):
            for record in records:
                copy.write_row(_row(record))

    def close(self) -> None:
        self._connection.close()


def _row(record: InferenceRecord) -> tuple[Any, ...]:
    inputs = record.input_rows()
    outputs = record.output_lists()
    return (
        record.timestamp,
        record.request_id,
        record.model,
        record.version,
        record.protocol,
        record.method,
        record.key_name,
        record.status,
        record.latency_ms,
        None if inputs is None else orjson.dumps(inputs).decode(),
        None if outputs is None else orjson.dumps(outputs).decode(),
    )
