"""Multipart uploads: the ``file`` field of an HTML form becomes the request body.

A browser (or ``curl -F file=@seven.png``) sends an image as
``multipart/form-data``; the prediction edge calls :func:`unwrap_upload` on the
body :func:`~flaskserve.web.bodies.read_body` already read within every size
limit, and hands the protocol the file's bytes with the file's media type, as
if they had been sent as the body. A part sent without an image media type is
named by its first bytes (PNG or JPEG), else it keeps the type it came with,
which the protocol refuses with 415.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from flaskserve.errors import MalformedRequest
from flaskserve.protocols.image import is_image, sniff

__all__ = ["MULTIPART", "UPLOAD_FIELD", "unwrap_upload"]

MULTIPART = "multipart/form-data"
#: The form field that carries the uploaded file.
UPLOAD_FIELD = "file"
#: Form fields beside the file (a method name, say) are few and small.
_MAX_PARTS = 16
_MAX_FIELD_BYTES = 64 * 1024


def unwrap_upload(body: bytes, mimetype: str, params: Mapping[str, str]) -> tuple[bytes, str]:
    """``(body, mimetype)`` unchanged, or, for a multipart body, its uploaded file and that file's type."""
    if mimetype != MULTIPART:
        return body, mimetype
    parser = FormDataParser(
        max_form_memory_size=_MAX_FIELD_BYTES,
        max_content_length=len(body),
        max_form_parts=_MAX_PARTS,
        silent=False,
    )
    try:
        _, _, files = parser.parse(io.BytesIO(body), mimetype, len(body), dict(params))
    except ValueError:
        raise MalformedRequest(
            "the multipart body could not be parsed; send it as an HTML form would"
        ) from None
    except RequestEntityTooLarge:
        raise MalformedRequest(
            f"the multipart body has too many or too large fields; send the image alone in '{UPLOAD_FIELD}'"
        ) from None
    try:
        upload = files.get(UPLOAD_FIELD)
        if upload is None:
            raise MalformedRequest(
                f"a multipart upload must carry its image in a field named '{UPLOAD_FIELD}'"
            )
        data = upload.read()
        declared = (upload.mimetype or "").lower()
    finally:
        # Werkzeug may spool a part to a temporary file; close every one now, not at garbage collection.
        for part in files.values():
            part.close()
    return data, declared if is_image(declared) else (sniff(data) or declared)
