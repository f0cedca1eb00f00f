"""A WSGI app with no model that answers every request with the same small JSON.

Served under the same gunicorn settings as the others, it is the ceiling for a Python server
on this machine: whatever a model server does beyond this costs throughput.  It reads the
request body like a real server must, so the bytes on the wire match the other servers'.
"""

from collections.abc import Iterable
from typing import Any

BODY = b'{"prediction":[0.0]}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", HEADERS)
    return [BODY]
