"""Settings that carry credentials, and the one way they are shown.

A storage URL such as ``redis://:s3cret@cache:6379/0`` holds a password. The
setting keeps the whole URL (the server needs it to connect), while everything
that shows settings — ``flaskserve check``, the startup log, error messages —
shows :func:`redact_url`'s form, where the password and any credential-looking
query parameter are replaced by ``***``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import PlainSerializer

__all__ = ["REDACTED", "SecretUrl", "redact_url", "scrub"]

REDACTED = "***"
#: Query parameters whose values are credentials, by a part of their (lower-cased) name.
_SECRET_PARAMETERS = ("pass", "secret", "token", "key", "auth")


def redact_url(url: str) -> str:
    """``url`` with its password and credential query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # Not parseable as a URL: show nothing of it rather than risk a password.
        return REDACTED
    netloc = parts.hostname or ""
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:{REDACTED}@{netloc}" if parts.password is not None else f"{user}@{netloc}"
    query = urlencode(
        [
            (name, REDACTED if any(part in name.lower() for part in _SECRET_PARAMETERS) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def scrub(text: str, url: str) -> str:
    """``text`` (a library's error message, say) with ``url`` and its password redacted."""
    text = text.replace(url, redact_url(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, REDACTED) if password else text


SecretUrl = Annotated[str, PlainSerializer(redact_url, return_type=str, when_used="json")]
"""A URL setting that may carry a password: the value is whole, its printed (JSON) form is redacted."""
