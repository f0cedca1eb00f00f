"""A cache hit answered from the request's own bytes: what is kept for it, and the key that finds it.

A hit through the prediction cache alone still decodes and validates the request
(to find the rows its answer is stored under) and encodes the answer again, and
for a small request those are most of the work. So beside each cached answer the
service keeps, per *request form* that asked for it, the encoded reply and what
monitoring is told of a prediction (:class:`Replay`). A later request with the
same form is answered with that reply, skipping decoding, validation, the
service's lookup and encoding; everything around the prediction (keys, rate
limits, metrics, logs, drift, headers) runs as for any other request.

The form (:func:`form_key`) is everything the reply depends on once the model
version is fixed (forms are kept per model version, in its cache): the protocol,
whether the route explains, the body's media type and its parameters, the
request headers the protocol reads (``answer_headers``), and the body's bytes.
A byte-different body for the same rows is another form; it hits the same
answer through the cache as before, and then keeps its own form beside it.

A form lives and dies with its answer (:meth:`~flaskserve.inference.cache.PredictionCache.attach`):
a new version, an unload or a reload drops the version's cache, forms included,
and an expired or evicted answer takes its forms with it.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
import orjson

from flaskserve.protocols.wire import WireResponse

__all__ = ["Replay", "form_key"]

_DIGEST_BYTES = 16


@dataclass(frozen=True)
class Replay:
    """A request form's answer, ready to send again, and what monitoring is told of it."""

    reply: WireResponse
    #: The one method the request ran (requests that run several are not replayed).
    method: str
    #: The validated rows (read-only), for drift and the inference log.
    matrix: npt.NDArray[Any]
    #: The answer by method, holding the cache's own read-only array.
    results: Mapping[str, npt.NDArray[Any]]

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held beyond the cached answer itself: the reply and the rows (texts by their own size)."""
        headers = sum(len(name) + len(value) for name, value in self.reply.headers.items())
        rows = int(self.matrix.nbytes)
        if self.matrix.dtype.kind == "O":
            rows += sum(map(sys.getsizeof, self.matrix.reshape(-1).tolist()))
        return len(self.reply.body) + headers + rows


def form_key(
    protocol: str,
    explains: bool,
    mimetype: str,
    mimetype_params: Mapping[str, str],
    headers: tuple[str | None, ...],
    body: bytes,
) -> bytes:
    """The key of a request form: a BLAKE2b digest of everything but the body, then the body."""
    digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    # JSON keeps the parts apart unambiguously (strings quoted, None as null).
    head = [protocol, explains, mimetype, sorted(mimetype_params.items()), headers]
    digest.update(orjson.dumps(head))
    digest.update(b"\0")
    digest.update(body)
    return digest.digest()
